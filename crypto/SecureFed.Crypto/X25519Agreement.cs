using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// Many X25519 agreements with one private key on one thread (<see cref="X25519KeyPair.CreateAgreement"/>): with the
/// OpenSSL backend the derive context is created and initialised once instead of once per peer, and a prepared
/// <see cref="X25519PeerKey"/> is not imported again. Same results as <see cref="X25519KeyPair.DeriveSharedSecret(ReadOnlySpan{byte}, Span{byte})"/>
/// (tested). Not thread-safe: one agreement per thread; the key pair must outlive it.
/// </summary>
public sealed class X25519Agreement : IDisposable
{
    private readonly X25519KeyPair _key;
    private readonly EvpPrivateKeyHandle? _context;

    internal X25519Agreement(X25519KeyPair key, EvpPrivateKeyHandle? nativeKey)
    {
        _key = key;
        _context = nativeKey is null ? null : OpenSslX25519.CreateDeriveContext(nativeKey);
    }

    /// <summary>The raw shared secret with <paramref name="peer"/> into <paramref name="sharedSecret"/> (32 bytes).</summary>
    /// <exception cref="ArgumentException">The buffer is not 32 bytes.</exception>
    /// <exception cref="CryptographicException">The result is all zero (a low-order peer).</exception>
    public void DeriveSharedSecret(X25519PeerKey peer, Span<byte> sharedSecret)
    {
        ArgumentNullException.ThrowIfNull(peer);
        CheckOutput(sharedSecret);
        if (_context is not null && peer.Native is EvpPrivateKeyHandle native)
        {
            Finish(OpenSslX25519.TryDerive(_context, native, sharedSecret), sharedSecret);
        }
        else
        {
            _key.DeriveSharedSecret(peer.PublicKey, sharedSecret);
        }
    }

    /// <summary>The raw shared secret with the 32-byte <paramref name="peerPublicKey"/> (validated first).</summary>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    /// <exception cref="CryptographicException">The peer key is invalid or of low order (all-zero result).</exception>
    public void DeriveSharedSecret(ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedSecret)
    {
        CheckOutput(sharedSecret);
        if (_context is null)
        {
            _key.DeriveSharedSecret(peerPublicKey, sharedSecret);
            return;
        }

        X25519.ValidatePublicKey(peerPublicKey);
        using EvpPrivateKeyHandle peer = OpenSslX25519.ImportPublicKey(peerPublicKey);
        Finish(OpenSslX25519.TryDerive(_context, peer, sharedSecret), sharedSecret);
    }

    /// <summary>BouncyCastle's result for the same agreement; for cross-checking tests.</summary>
    internal byte[] DeriveSharedSecretManaged(ReadOnlySpan<byte> peerPublicKey) => _key.DeriveSharedSecretManaged(peerPublicKey);

    /// <summary>Whether the OpenSSL context path is in use.</summary>
    internal bool IsNative => _context is not null;

    /// <inheritdoc />
    public void Dispose() => _context?.Dispose();

    private static void CheckOutput(Span<byte> sharedSecret)
    {
        if (sharedSecret.Length != X25519.KeySize)
        {
            throw new ArgumentException($"The shared secret buffer must be {X25519.KeySize} bytes, got {sharedSecret.Length}.", nameof(sharedSecret));
        }
    }

    private static void Finish(bool derived, Span<byte> sharedSecret)
    {
        if (!derived)
        {
            CryptographicOperations.ZeroMemory(sharedSecret);
            throw new CryptographicException(
                "OpenSSL refused the X25519 agreement: the peer public key is a low-order point (all-zero shared secret).");
        }

        if (X25519.IsAllZero(sharedSecret))
        {
            throw new CryptographicException("The X25519 shared secret is all zero: the peer public key is a low-order point.");
        }
    }
}
