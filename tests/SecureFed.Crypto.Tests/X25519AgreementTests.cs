using System.Security.Cryptography;

using SecureFed.Crypto.Internal;
using SecureFed.Testing;

namespace SecureFed.Crypto.Tests;

public sealed class X25519AgreementTests
{
    [Theory]
    [MemberData(nameof(X25519Tests.Rfc7748ScalarMultVectors), MemberType = typeof(X25519Tests))]
    public void DeriveSharedSecret_Rfc7748Section52_MatchesVectorWithBytesAndPeerKey(string scalar, string u, string expected)
    {
        using X25519KeyPair key = X25519KeyPair.FromPrivateKey(Convert.FromHexString(scalar));
        using X25519Agreement agreement = key.CreateAgreement();
        using var peer = new X25519PeerKey(Convert.FromHexString(u));
        byte[] fromBytes = new byte[32];
        byte[] fromPeer = new byte[32];

        agreement.DeriveSharedSecret(Convert.FromHexString(u), fromBytes);
        agreement.DeriveSharedSecret(peer, fromPeer);

        Assert.Equal(expected, Convert.ToHexStringLower(fromBytes));
        Assert.Equal(expected, Convert.ToHexStringLower(fromPeer));
    }

    [Fact]
    public void CreateAgreement_OpenSslAvailable_UsesTheReusedContext()
    {
        using X25519KeyPair key = X25519KeyPair.Generate();
        using X25519Agreement agreement = key.CreateAgreement();

        Assert.Equal(OpenSslX25519.IsAvailable, agreement.IsNative);
    }

    [Fact]
    public void DeriveSharedSecret_OneContextManyRandomPeers_MatchesBouncyCastleAndPerCallPath()
    {
        // One context, many peers in a row (the context's peer is replaced each time), including twist points,
        // bit 255 set and non-canonical u >= p; every result must equal BouncyCastle's and the per-call path's.
        using var random = new DeterministicRandomSource(2026);
        byte[] privateKey = new byte[32];
        byte[] peerBytes = new byte[32];
        int compared = 0;
        for (int k = 0; k < 6; k++)
        {
            random.Fill(privateKey);
            using X25519KeyPair key = X25519KeyPair.FromPrivateKey(privateKey);
            using X25519Agreement agreement = key.CreateAgreement();
            for (int i = 0; i < 150; i++)
            {
                random.Fill(peerBytes);
                if (i % 25 == 0)
                {
                    peerBytes.AsSpan(1).Fill(0xff);
                    peerBytes[0] = (byte)(0xed + (i / 25 % 18));
                }

                byte[] expected = key.DeriveSharedSecretManaged(peerBytes);
                if (X25519.IsAllZero(expected))
                {
                    continue;
                }

                using var peer = new X25519PeerKey(peerBytes);
                byte[] viaBytes = new byte[32];
                byte[] viaPeer = new byte[32];
                agreement.DeriveSharedSecret(peerBytes, viaBytes);
                agreement.DeriveSharedSecret(peer, viaPeer);

                Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(viaBytes));
                Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(viaPeer));
                Assert.Equal(Convert.ToHexStringLower(expected), Convert.ToHexStringLower(key.DeriveSharedSecret(peerBytes)));
                compared++;
            }
        }

        Assert.True(compared > 850, $"only {compared} agreements compared");
    }

    [Fact]
    public void DeriveSharedSecret_SharedPeerKeysFromManyThreads_AllResultsCorrect()
    {
        // Peer keys are shared read-only between threads; each thread has its own agreement (the aggregator's pattern).
        using var random = new DeterministicRandomSource(17);
        X25519KeyPair[] keys = [.. Enumerable.Range(0, 8).Select(_ => X25519KeyPair.Generate(random))];
        X25519PeerKey[] peers = [.. Enumerable.Range(0, 16).Select(_ =>
        {
            using X25519KeyPair p = X25519KeyPair.Generate(random);
            return new X25519PeerKey(p.PublicKey);
        })];
        try
        {
            string[,] results = new string[keys.Length, peers.Length];
            Parallel.For(0, keys.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, k =>
            {
                using X25519Agreement agreement = keys[k].CreateAgreement();
                byte[] shared = new byte[32];
                for (int i = 0; i < peers.Length; i++)
                {
                    agreement.DeriveSharedSecret(peers[i], shared);
                    results[k, i] = Convert.ToHexStringLower(shared);
                }
            });

            for (int k = 0; k < keys.Length; k++)
            {
                for (int i = 0; i < peers.Length; i++)
                {
                    Assert.Equal(Convert.ToHexStringLower(keys[k].DeriveSharedSecretManaged(peers[i].PublicKey)), results[k, i]);
                }
            }
        }
        finally
        {
            foreach (X25519KeyPair key in keys)
            {
                key.Dispose();
            }

            foreach (X25519PeerKey peer in peers)
            {
                peer.Dispose();
            }
        }
    }

    [Theory]
    [MemberData(nameof(X25519Tests.SmallOrderPoints), MemberType = typeof(X25519Tests))]
    public void PeerKey_SmallOrderPoint_ThrowsCryptographicException(string point)
    {
        Assert.Throws<CryptographicException>(() => new X25519PeerKey(Convert.FromHexString(point)));
    }

    [Theory]
    [MemberData(nameof(X25519Tests.SmallOrderPoints), MemberType = typeof(X25519Tests))]
    public void DeriveSharedSecret_SmallOrderPeerBytes_ThrowsCryptographicException(string point)
    {
        using X25519KeyPair key = X25519KeyPair.Generate();
        using X25519Agreement agreement = key.CreateAgreement();

        Assert.Throws<CryptographicException>(() => agreement.DeriveSharedSecret(Convert.FromHexString(point), new byte[32]));
    }

    [Theory]
    [InlineData(31)]
    [InlineData(33)]
    public void DeriveSharedSecret_WrongOutputLength_ThrowsArgumentException(int length)
    {
        using X25519KeyPair key = X25519KeyPair.Generate();
        using X25519KeyPair other = X25519KeyPair.Generate();
        using X25519Agreement agreement = key.CreateAgreement();
        using var peer = new X25519PeerKey(other.PublicKey);

        Assert.Throws<ArgumentException>(() => agreement.DeriveSharedSecret(other.PublicKey, new byte[length]));
        Assert.Throws<ArgumentException>(() => agreement.DeriveSharedSecret(peer, new byte[length]));
    }

    [Fact]
    public void CreateAgreement_AfterDispose_ThrowsObjectDisposedException()
    {
        var key = X25519KeyPair.Generate();
        key.Dispose();

        Assert.Throws<ObjectDisposedException>(() => key.CreateAgreement());
    }
}
