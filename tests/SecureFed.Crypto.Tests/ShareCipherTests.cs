using System.Security.Cryptography;

using SecureFed.Testing;

namespace SecureFed.Crypto.Tests;

public sealed class ShareCipherTests
{
    private const string Key15 = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
    private const string Plain15 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    private const string Cipher15 = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";

    // McGrew-Viega GCM specification test cases 13-16 (AES-256, 96-bit IV): key, IV, plaintext, AD, ciphertext, tag.
    // (Cases 17 and 18 use 64-bit and 480-bit IVs, which a 96-bit-nonce API cannot express.)
    public static TheoryData<string, string, string, string, string, string> GcmVectors => new()
    {
        { new string('0', 64), new string('0', 24), "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
        { new string('0', 64), new string('0', 24), new string('0', 32), "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
        { Key15, "cafebabefacedbaddecaf888", Plain15, "", Cipher15, "b094dac5d93471bdec1a502270e3cc6c" },
        { Key15, "cafebabefacedbaddecaf888", Plain15[..120], "feedfacedeadbeeffeedfacedeadbeefabaddad2", Cipher15[..120], "76fc6ece0f4e1768cddf8853bb2d551b" },
    };

    [Theory]
    [MemberData(nameof(GcmVectors))]
    public void Encrypt_GcmSpecVector_MatchesCiphertextAndTag(string key, string nonce, string plaintext, string ad, string ciphertext, string tag)
    {
        byte[] pt = Convert.FromHexString(plaintext);
        byte[] ct = new byte[pt.Length];
        byte[] t = new byte[ShareCipher.TagSize];

        ShareCipher.Encrypt(Convert.FromHexString(key), Convert.FromHexString(nonce), pt, ct, t, Convert.FromHexString(ad));

        Assert.Equal(ciphertext, Convert.ToHexStringLower(ct));
        Assert.Equal(tag, Convert.ToHexStringLower(t));
    }

    [Theory]
    [MemberData(nameof(GcmVectors))]
    public void Open_GcmSpecVectorAsSealedMessage_RecoversPlaintext(string key, string nonce, string plaintext, string ad, string ciphertext, string tag)
    {
        byte[] sealedMessage = Convert.FromHexString(nonce + ciphertext + tag);

        byte[] opened = ShareCipher.Open(Convert.FromHexString(key), sealedMessage, Convert.FromHexString(ad));

        Assert.Equal(plaintext, Convert.ToHexStringLower(opened));
    }

    [Fact]
    public void Seal_ThenOpen_RoundTrips()
    {
        using var random = new DeterministicRandomSource(3);
        byte[] key = RandomBytes(random, 32);
        byte[] share = RandomBytes(random, 40);
        byte[] ad = DomainLabel.Encode("share", "session-1", 4, "hospital-a", "hospital-b");

        byte[] sealedMessage = ShareCipher.Seal(key, share, ad, random);

        Assert.Equal(share.Length + ShareCipher.Overhead, sealedMessage.Length);
        Assert.Equal(share, ShareCipher.Open(key, sealedMessage, ad));
    }

    [Fact]
    public void Seal_TwiceWithSystemRandom_UsesDifferentNonces()
    {
        byte[] key = new byte[32];
        byte[] a = ShareCipher.Seal(key, [1, 2, 3], []);
        byte[] b = ShareCipher.Seal(key, [1, 2, 3], []);

        Assert.NotEqual(a.AsSpan(0, ShareCipher.NonceSize).ToArray(), b.AsSpan(0, ShareCipher.NonceSize).ToArray());
    }

    [Fact]
    public void Open_EveryBitOfNonceCiphertextAndTagFlipped_Throws()
    {
        using var random = new DeterministicRandomSource(5);
        byte[] key = RandomBytes(random, 32);
        byte[] ad = DomainLabel.Encode("share", "s", 1, "a", "b");
        byte[] sealedMessage = ShareCipher.Seal(key, RandomBytes(random, 24), ad, random);

        for (int bit = 0; bit < sealedMessage.Length * 8; bit++)
        {
            sealedMessage[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Throws<AuthenticationTagMismatchException>(() => ShareCipher.Open(key, sealedMessage, ad));
            sealedMessage[bit / 8] ^= (byte)(1 << (bit % 8));
        }

        Assert.NotNull(ShareCipher.Open(key, sealedMessage, ad));
    }

    [Fact]
    public void Open_EveryBitOfAssociatedDataFlipped_Throws()
    {
        using var random = new DeterministicRandomSource(6);
        byte[] key = RandomBytes(random, 32);
        byte[] ad = DomainLabel.Encode("share", "session", 9, "sender", "recipient");
        byte[] sealedMessage = ShareCipher.Seal(key, RandomBytes(random, 16), ad, random);

        for (int bit = 0; bit < ad.Length * 8; bit++)
        {
            ad[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.Throws<AuthenticationTagMismatchException>(() => ShareCipher.Open(key, sealedMessage, ad));
            ad[bit / 8] ^= (byte)(1 << (bit % 8));
        }
    }

    [Fact]
    public void Open_SwappedSenderAndRecipient_Throws()
    {
        byte[] key = new byte[32];
        byte[] sealedMessage = ShareCipher.Seal(key, [42], DomainLabel.Encode("share", "s", 1, "a", "b"));

        Assert.ThrowsAny<CryptographicException>(() => ShareCipher.Open(key, sealedMessage, DomainLabel.Encode("share", "s", 1, "b", "a")));
    }

    [Fact]
    public void Open_WrongKey_Throws()
    {
        byte[] key = new byte[32];
        byte[] sealedMessage = ShareCipher.Seal(key, [42], []);
        key[31] = 1;

        Assert.ThrowsAny<CryptographicException>(() => ShareCipher.Open(key, sealedMessage, []));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(12)]
    [InlineData(27)]
    public void Open_TruncatedMessage_ThrowsArgumentException(int length)
    {
        var ex = Assert.Throws<ArgumentException>(() => ShareCipher.Open(new byte[32], new byte[length], []));
        Assert.Contains("truncated", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(24)]
    [InlineData(33)]
    public void SealAndOpen_WrongKeySize_ThrowArgumentException(int keySize)
    {
        Assert.Throws<ArgumentException>(() => ShareCipher.Seal(new byte[keySize], [1], []));
        Assert.Throws<ArgumentException>(() => ShareCipher.Open(new byte[keySize], new byte[40], []));
    }

    private static byte[] RandomBytes(IRandomSource random, int length)
    {
        byte[] bytes = new byte[length];
        random.Fill(bytes);
        return bytes;
    }
}
