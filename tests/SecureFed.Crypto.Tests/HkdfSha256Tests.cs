namespace SecureFed.Crypto.Tests;

public sealed class HkdfSha256Tests
{
    // RFC 5869 appendix A, test cases 1-3 (SHA-256): IKM, salt, info, L, PRK, OKM.
    public static TheoryData<string, string, string, int, string, string> Rfc5869Vectors => new()
    {
        {
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "000102030405060708090a0b0c",
            "f0f1f2f3f4f5f6f7f8f9",
            42,
            "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        },
        {
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
            82,
            "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"
        },
        {
            "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
            "",
            "",
            42,
            "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        },
    };

    [Theory]
    [MemberData(nameof(Rfc5869Vectors))]
    public void DeriveKey_Rfc5869_MatchesOkm(string ikm, string salt, string info, int length, string prk, string okm)
    {
        _ = prk;
        byte[] result = HkdfSha256.DeriveKey(Convert.FromHexString(ikm), Convert.FromHexString(salt), Convert.FromHexString(info), length);

        Assert.Equal(okm, Convert.ToHexStringLower(result));
    }

    [Theory]
    [MemberData(nameof(Rfc5869Vectors))]
    public void ExtractThenExpand_Rfc5869_MatchesPrkAndOkm(string ikm, string salt, string info, int length, string prk, string okm)
    {
        byte[] extracted = HkdfSha256.Extract(Convert.FromHexString(ikm), Convert.FromHexString(salt));
        Span<byte> output = new byte[length];
        HkdfSha256.Expand(extracted, Convert.FromHexString(info), output);

        Assert.Equal(prk, Convert.ToHexStringLower(extracted));
        Assert.Equal(okm, Convert.ToHexStringLower(output));
    }

    [Fact]
    public void DeriveKey_RandomLengths_EqualsPlatformHkdf()
    {
        // The managed HKDF against the platform's, over block boundaries of ikm, salt (including > 64 bytes, which
        // HMAC hashes first), info and output (several Expand blocks).
        var random = new Random(5869);
        int[] outputLengths = [1, 16, 31, 32, 33, 64, 65, 100, 255, 1000, 8160];
        for (int i = 0; i < 400; i++)
        {
            byte[] ikm = new byte[random.Next(0, 200)];
            byte[] salt = new byte[i % 4 == 0 ? 0 : random.Next(1, 150)];
            byte[] info = new byte[random.Next(0, 300)];
            random.NextBytes(ikm);
            random.NextBytes(salt);
            random.NextBytes(info);
            int length = i < outputLengths.Length ? outputLengths[i] : random.Next(1, 97);
            byte[] expected = new byte[length];
            byte[] actual = new byte[length];
            System.Security.Cryptography.HKDF.DeriveKey(System.Security.Cryptography.HashAlgorithmName.SHA256, ikm, expected, salt, info);

            HkdfSha256.DeriveKey(ikm, salt, info, actual);

            Assert.True(expected.AsSpan().SequenceEqual(actual), $"case {i}: ikm {ikm.Length}, salt {salt.Length}, info {info.Length}, output {length}");
        }
    }

    [Fact]
    public void DeriveKey_OneBitOfIkmFlipped_OutputChanges()
    {
        byte[] ikm = new byte[32];
        byte[] info = System.Text.Encoding.ASCII.GetBytes("securefed/v1/pair-mask-seed");
        byte[] a = new byte[32];
        byte[] b = new byte[32];
        HkdfSha256.DeriveKey(ikm, default, info, a);
        ikm[17] ^= 0x04;

        HkdfSha256.DeriveKey(ikm, default, info, b);

        Assert.False(a.AsSpan().SequenceEqual(b));
    }

    [Fact]
    public void DeriveKey_SpanOverload_EqualsArrayOverload()
    {
        byte[] ikm = [1, 2, 3];
        byte[] info = DomainLabel.Encode("test", "a");
        byte[] expected = HkdfSha256.DeriveKey(ikm, [], info, 64);
        byte[] actual = new byte[64];

        HkdfSha256.DeriveKey(ikm, [], info, actual);

        Assert.Equal(expected, actual);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8161)]
    public void DeriveKey_OutputLengthOutOfRange_Throws(int length)
    {
        Assert.ThrowsAny<ArgumentException>(() => HkdfSha256.DeriveKey([1], [], [], length));
    }

    [Fact]
    public void Expand_ShortPrk_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => HkdfSha256.Expand(new byte[16], [], 32));
        Assert.Contains("PRK", ex.Message, StringComparison.Ordinal);
    }
}
