using System.Security.Cryptography;

using SecureFed.Crypto.Internal;

using Rfc7748 = Org.BouncyCastle.Math.EC.Rfc7748.X25519;

namespace SecureFed.Crypto;

/// <summary>
/// An X25519 key pair (RFC 7748) for pairwise key agreement; the private key is wiped on dispose. Agreements use the
/// system OpenSSL when it is available (<see cref="X25519.Backend"/>), BouncyCastle otherwise; the results are identical.
/// Safe to use from several threads at once for <see cref="DeriveSharedSecret(ReadOnlySpan{byte}, Span{byte})"/>.
/// </summary>
public sealed class X25519KeyPair : IDisposable
{
    private readonly byte[] _privateKey;
    private readonly Lock _nativeGate = new();
    private EvpPrivateKeyHandle? _native;
    private bool _disposed;

    private X25519KeyPair(byte[] privateKey)
    {
        _privateKey = privateKey;
        PublicKey = new byte[X25519.KeySize];
        Rfc7748.ScalarMultBase(_privateKey, 0, PublicKey, 0);
    }

    /// <summary>The 32-byte public key (RFC 7748 little-endian u-coordinate).</summary>
    public byte[] PublicKey { get; }

    /// <summary>Generates a fresh key pair from <paramref name="random"/> (the system CSPRNG by default).</summary>
    public static X25519KeyPair Generate(IRandomSource? random = null)
    {
        byte[] privateKey = new byte[X25519.KeySize];
        (random ?? SystemRandomSource.Instance).Fill(privateKey);
        return new X25519KeyPair(privateKey);
    }

    /// <summary>Imports a 32-byte private key (the RFC 7748 scalar; clamping is applied when it is used).</summary>
    /// <exception cref="ArgumentException">The key is not 32 bytes.</exception>
    public static X25519KeyPair FromPrivateKey(ReadOnlySpan<byte> privateKey)
    {
        if (privateKey.Length != X25519.KeySize)
        {
            throw new ArgumentException($"An X25519 private key is {X25519.KeySize} bytes, got {privateKey.Length}.", nameof(privateKey));
        }

        return new X25519KeyPair(privateKey.ToArray());
    }

    /// <summary>Copies the 32-byte private key into <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentException">The destination is shorter than 32 bytes.</exception>
    public void ExportPrivateKey(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (destination.Length < X25519.KeySize)
        {
            throw new ArgumentException($"The destination must hold {X25519.KeySize} bytes, got {destination.Length}.", nameof(destination));
        }

        _privateKey.CopyTo(destination);
    }

    /// <summary>
    /// Computes the raw X25519 shared secret with <paramref name="peerPublicKey"/> into <paramref name="sharedSecret"/>
    /// (32 bytes). Feed it to <see cref="HkdfSha256"/> with a <see cref="DomainLabel"/>; never use it as a key directly.
    /// </summary>
    /// <exception cref="ArgumentException">A length is wrong.</exception>
    /// <exception cref="CryptographicException">The peer key is invalid or of low order (all-zero result).</exception>
    public void DeriveSharedSecret(ReadOnlySpan<byte> peerPublicKey, Span<byte> sharedSecret)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (sharedSecret.Length != X25519.KeySize)
        {
            throw new ArgumentException($"The shared secret buffer must be {X25519.KeySize} bytes, got {sharedSecret.Length}.", nameof(sharedSecret));
        }

        X25519.ValidatePublicKey(peerPublicKey);
        byte[] result = new byte[X25519.KeySize];
        try
        {
            if (OpenSslX25519.IsAvailable)
            {
                // OpenSSL refuses an all-zero result (a low-order peer) itself; known low-order encodings were already
                // refused by ValidatePublicKey above.
                if (!OpenSslX25519.TryDerive(NativeKey(), peerPublicKey, result))
                {
                    throw new CryptographicException(
                        "OpenSSL refused the X25519 agreement: the peer public key is a low-order point (all-zero shared secret).");
                }
            }
            else
            {
                Rfc7748.ScalarMult(_privateKey, 0, peerPublicKey.ToArray(), 0, result, 0);
            }

            if (X25519.IsAllZero(result))
            {
                throw new CryptographicException("The X25519 shared secret is all zero: the peer public key is a low-order point.");
            }

            result.CopyTo(sharedSecret);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(result);
        }
    }

    /// <summary>
    /// An agreement context for many peers on one thread (see <see cref="X25519Agreement"/>); dispose it before this key.
    /// </summary>
    public X25519Agreement CreateAgreement()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new X25519Agreement(this, OpenSslX25519.IsAvailable ? NativeKey() : null);
    }

    /// <summary>BouncyCastle's result for the same agreement, whatever the backend; for cross-checking tests.</summary>
    internal byte[] DeriveSharedSecretManaged(ReadOnlySpan<byte> peerPublicKey)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        byte[] result = new byte[X25519.KeySize];
        Rfc7748.ScalarMult(_privateKey, 0, peerPublicKey.ToArray(), 0, result, 0);
        return result;
    }

    /// <summary>Computes the 32-byte raw shared secret with <paramref name="peerPublicKey"/>.</summary>
    /// <inheritdoc cref="DeriveSharedSecret(ReadOnlySpan{byte}, Span{byte})" path="/exception"/>
    public byte[] DeriveSharedSecret(ReadOnlySpan<byte> peerPublicKey)
    {
        byte[] secret = new byte[X25519.KeySize];
        DeriveSharedSecret(peerPublicKey, secret);
        return secret;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_disposed)
        {
            CryptographicOperations.ZeroMemory(_privateKey);
            lock (_nativeGate)
            {
                _native?.Dispose();
                _native = null;
            }

            _disposed = true;
        }
    }

    /// <summary>The OpenSSL key object for this private key, imported on first use.</summary>
    private EvpPrivateKeyHandle NativeKey()
    {
        lock (_nativeGate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _native ??= OpenSslX25519.ImportPrivateKey(_privateKey);
        }
    }
}
