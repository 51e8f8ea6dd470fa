using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto;

/// <summary>
/// A peer's X25519 public key, validated (<see cref="X25519.ValidatePublicKey"/>) and, with the OpenSSL backend,
/// imported into an OpenSSL key object once, for a party that agrees with the same peer many times (the aggregator
/// unmasking: every dropped neighbour of a survivor agrees with that survivor's key). Read-only after creation and
/// safe to use from several threads at once.
/// </summary>
public sealed class X25519PeerKey : IDisposable
{
    private readonly byte[] _publicKey;
    private readonly EvpPrivateKeyHandle? _native;

    /// <summary>Validates and imports <paramref name="publicKey"/>.</summary>
    /// <exception cref="ArgumentException">The key is not 32 bytes.</exception>
    /// <exception cref="System.Security.Cryptography.CryptographicException">The key is all zero or a small-order point.</exception>
    public X25519PeerKey(ReadOnlySpan<byte> publicKey)
    {
        X25519.ValidatePublicKey(publicKey);
        _publicKey = publicKey.ToArray();
        _native = OpenSslX25519.IsAvailable ? OpenSslX25519.ImportPublicKey(publicKey) : null;
    }

    /// <summary>The 32-byte public key.</summary>
    public ReadOnlySpan<byte> PublicKey => _publicKey;

    /// <summary>The OpenSSL key object, or null with the managed backend.</summary>
    internal EvpPrivateKeyHandle? Native => _native;

    /// <inheritdoc />
    public void Dispose() => _native?.Dispose();
}
