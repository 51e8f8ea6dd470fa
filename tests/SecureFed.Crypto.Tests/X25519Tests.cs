using System.Security.Cryptography;

using SecureFed.Crypto.Internal;
using SecureFed.Testing;

using Rfc7748 = Org.BouncyCastle.Math.EC.Rfc7748.X25519;

namespace SecureFed.Crypto.Tests;

public sealed class X25519Tests
{
    // RFC 7748 section 5.2: scalar, input u-coordinate, output u-coordinate.
    public static TheoryData<string, string, string> Rfc7748ScalarMultVectors => new()
    {
        {
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
        },
        {
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"
        },
    };

    // RFC 7748 section 5.2, the iterated test: k = u = 9; k, u = X25519(k, u), k.
    public static TheoryData<int, string> Rfc7748IteratedVectors => new()
    {
        { 1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079" },
        { 1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51" },
    };

    public static TheoryData<string> SmallOrderPoints
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (byte[] point in X25519.SmallOrderPoints)
            {
                data.Add(Convert.ToHexStringLower(point));
                byte[] high = (byte[])point.Clone();
                high[31] |= 0x80;
                data.Add(Convert.ToHexStringLower(high));
            }

            return data;
        }
    }

    [Theory]
    [MemberData(nameof(Rfc7748ScalarMultVectors))]
    public void DeriveSharedSecret_Rfc7748Section52_MatchesVector(string scalar, string u, string expected)
    {
        using X25519KeyPair key = X25519KeyPair.FromPrivateKey(Convert.FromHexString(scalar));

        byte[] result = key.DeriveSharedSecret(Convert.FromHexString(u));

        Assert.Equal(expected, Convert.ToHexStringLower(result));
    }

    [Theory]
    [MemberData(nameof(Rfc7748IteratedVectors))]
    public void DeriveSharedSecret_Rfc7748Iterated_MatchesVector(int iterations, string expected)
    {
        byte[] k = new byte[32];
        k[0] = 9;
        byte[] u = (byte[])k.Clone();

        for (int i = 0; i < iterations; i++)
        {
            using X25519KeyPair key = X25519KeyPair.FromPrivateKey(k);
            byte[] result = key.DeriveSharedSecret(u);
            u = k;
            k = result;
        }

        Assert.Equal(expected, Convert.ToHexStringLower(k));
    }

    [Fact]
    public void DeriveSharedSecret_Rfc7748Section61AliceAndBob_AgreeOnVector()
    {
        using X25519KeyPair alice = X25519KeyPair.FromPrivateKey(Convert.FromHexString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
        using X25519KeyPair bob = X25519KeyPair.FromPrivateKey(Convert.FromHexString("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"));

        Assert.Equal("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", Convert.ToHexStringLower(alice.PublicKey));
        Assert.Equal("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", Convert.ToHexStringLower(bob.PublicKey));
        const string Shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        Assert.Equal(Shared, Convert.ToHexStringLower(alice.DeriveSharedSecret(bob.PublicKey)));
        Assert.Equal(Shared, Convert.ToHexStringLower(bob.DeriveSharedSecret(alice.PublicKey)));
    }

    [Fact]
    public void Generate_TwoParties_DeriveTheSameSecret()
    {
        using var random = new DeterministicRandomSource(7);
        using X25519KeyPair a = X25519KeyPair.Generate(random);
        using X25519KeyPair b = X25519KeyPair.Generate(random);

        Assert.NotEqual(a.PublicKey, b.PublicKey);
        Assert.Equal(a.DeriveSharedSecret(b.PublicKey), b.DeriveSharedSecret(a.PublicKey));
    }

    [Theory]
    [MemberData(nameof(SmallOrderPoints))]
    public void SmallOrderPoints_RawScalarMultiplication_GivesAllZero(string point)
    {
        // Independent evidence that each blacklisted encoding really is of small order: a clamped scalar is a
        // multiple of 8, so the raw (unchecked) ladder lands on the identity, encoded as u = 0.
        using var random = new DeterministicRandomSource(11);
        byte[] scalar = new byte[32];
        random.Fill(scalar);
        byte[] result = new byte[32];

        Rfc7748.ScalarMult(scalar, 0, Convert.FromHexString(point), 0, result, 0);

        Assert.All(result, b => Assert.Equal(0, b));
    }

    [Theory]
    [MemberData(nameof(SmallOrderPoints))]
    public void ValidatePublicKey_SmallOrderPoint_ThrowsCryptographicException(string point)
    {
        var ex = Assert.Throws<CryptographicException>(() => X25519.ValidatePublicKey(Convert.FromHexString(point)));
        Assert.Contains("X25519 public key", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(SmallOrderPoints))]
    public void DeriveSharedSecret_SmallOrderPeer_ThrowsCryptographicException(string point)
    {
        using X25519KeyPair key = X25519KeyPair.Generate();

        Assert.Throws<CryptographicException>(() => key.DeriveSharedSecret(Convert.FromHexString(point)));
    }

    [Fact]
    public void ValidatePublicKey_AllZero_NamesTheProblem()
    {
        var ex = Assert.Throws<CryptographicException>(() => X25519.ValidatePublicKey(new byte[32]));
        Assert.Contains("all zero", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public void ValidatePublicKey_WrongLength_ThrowsArgumentException(int length)
    {
        var ex = Assert.Throws<ArgumentException>(() => X25519.ValidatePublicKey(new byte[length]));
        Assert.Contains($"got {length}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidatePublicKey_GeneratedKey_Accepted()
    {
        using X25519KeyPair key = X25519KeyPair.Generate();

        X25519.ValidatePublicKey(key.PublicKey);
    }

    [Fact]
    public void FromPrivateKey_WrongLength_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => X25519KeyPair.FromPrivateKey(new byte[16]));
    }

    [Fact]
    public void ExportPrivateKey_RoundTrip_GivesSamePublicKey()
    {
        using X25519KeyPair key = X25519KeyPair.Generate();
        byte[] exported = new byte[32];
        key.ExportPrivateKey(exported);

        using X25519KeyPair again = X25519KeyPair.FromPrivateKey(exported);

        Assert.Equal(key.PublicKey, again.PublicKey);
    }

    [Fact]
    public void ExportPrivateKey_AfterDispose_ThrowsObjectDisposedException()
    {
        X25519KeyPair key = X25519KeyPair.Generate();
        key.Dispose();

        Assert.Throws<ObjectDisposedException>(() => key.ExportPrivateKey(new byte[32]));
    }

    [Fact]
    public void Backend_LinuxWithLibcrypto_UsesOpenSsl()
    {
        // The fast path must really be active where the benchmarks run; elsewhere BouncyCastle is the documented backend.
        bool libcryptoPresent = OperatingSystem.IsLinux()
            && System.Runtime.InteropServices.NativeLibrary.TryLoad("libcrypto.so.3", out _)
            && !string.Equals(Environment.GetEnvironmentVariable("SECUREFED_X25519"), "managed", StringComparison.OrdinalIgnoreCase);

        Assert.Equal(libcryptoPresent, OpenSslX25519.IsAvailable);
        Assert.StartsWith(libcryptoPresent ? "openssl (libcrypto" : "bouncycastle", X25519.Backend, StringComparison.Ordinal);
    }

    [Fact]
    public void DeriveSharedSecret_RandomKeysAndPoints_MatchesBouncyCastle()
    {
        // Random 32-byte strings as peer keys cover points on the twist, bit 255 set and non-canonical u >= p.
        using var random = new DeterministicRandomSource(2025);
        byte[] privateKey = new byte[32];
        byte[] peer = new byte[32];
        int compared = 0;
        for (int i = 0; i < 1500; i++)
        {
            random.Fill(privateKey);
            random.Fill(peer);
            if (i % 50 == 0)
            {
                peer.AsSpan(1).Fill(0xff);
                peer[0] = (byte)(0xed + (i / 50 % 18)); // u in [p, 2^255 + 17] with bit 255 set
            }

            using X25519KeyPair key = X25519KeyPair.FromPrivateKey(privateKey);
            byte[] expected = key.DeriveSharedSecretManaged(peer);
            if (X25519.IsAllZero(expected))
            {
                continue;
            }

            Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(key.DeriveSharedSecret(peer)));
            compared++;
        }

        Assert.True(compared > 1400, $"only {compared} agreements compared");
    }

    [Fact]
    public void DeriveSharedSecret_SameKeyFromManyThreads_AllResultsCorrect()
    {
        using var random = new DeterministicRandomSource(99);
        using X25519KeyPair key = X25519KeyPair.Generate(random);
        byte[][] peers = new byte[64][];
        for (int i = 0; i < peers.Length; i++)
        {
            using X25519KeyPair peer = X25519KeyPair.Generate(random);
            peers[i] = peer.PublicKey;
        }

        string[] results = new string[peers.Length];
        Parallel.For(0, peers.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            results[i] = Convert.ToHexStringLower(key.DeriveSharedSecret(peers[i])));

        for (int i = 0; i < peers.Length; i++)
        {
            Assert.Equal(Convert.ToHexStringLower(key.DeriveSharedSecretManaged(peers[i])), results[i]);
        }
    }

    [Theory]
    [MemberData(nameof(SmallOrderPoints))]
    public void OpenSslTryDerive_SmallOrderPeer_Refuses(string point)
    {
        if (!OpenSslX25519.IsAvailable)
        {
            return; // BouncyCastle backend: covered by DeriveSharedSecret_SmallOrderPeer_ThrowsCryptographicException
        }

        using var random = new DeterministicRandomSource(5);
        byte[] scalar = new byte[32];
        random.Fill(scalar);
        using EvpPrivateKeyHandle key = OpenSslX25519.ImportPrivateKey(scalar);
        byte[] result = new byte[32];

        // Bypasses ValidatePublicKey: OpenSSL itself must refuse the all-zero shared secret.
        Assert.False(OpenSslX25519.TryDerive(key, Convert.FromHexString(point), result));
    }

    [Fact]
    public void DeriveSharedSecret_AfterDispose_ThrowsObjectDisposedException()
    {
        using X25519KeyPair peer = X25519KeyPair.Generate();
        X25519KeyPair key = X25519KeyPair.Generate();
        key.DeriveSharedSecret(peer.PublicKey);
        key.Dispose();

        Assert.Throws<ObjectDisposedException>(() => key.DeriveSharedSecret(peer.PublicKey));
    }
}
