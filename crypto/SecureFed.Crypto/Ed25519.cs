using Rfc8032 = Org.BouncyCastle.Math.EC.Rfc8032.Ed25519;

namespace SecureFed.Crypto;

/// <summary>Ed25519 signature verification (RFC 8032, pure Ed25519, no context).</summary>
public static class Ed25519
{
    /// <summary>Size in bytes of a public key.</summary>
    public const int PublicKeySize = 32;

    /// <summary>Size in bytes of a private key seed.</summary>
    public const int SeedSize = 32;

    /// <summary>Size in bytes of a signature.</summary>
    public const int SignatureSize = 64;

    /// <summary>
    /// Verifies <paramref name="signature"/> over <paramref name="message"/> with <paramref name="publicKey"/>.
    /// Returns <see langword="false"/> for any invalid signature, including a public key that is not a valid point.
    /// </summary>
    /// <exception cref="ArgumentException">The key or signature has the wrong length.</exception>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != PublicKeySize)
        {
            throw new ArgumentException($"An Ed25519 public key is {PublicKeySize} bytes, got {publicKey.Length}.", nameof(publicKey));
        }

        if (signature.Length != SignatureSize)
        {
            throw new ArgumentException($"An Ed25519 signature is {SignatureSize} bytes, got {signature.Length}.", nameof(signature));
        }

        byte[] pk = publicKey.ToArray();
        byte[] sig = signature.ToArray();
        byte[] msg = message.ToArray();
        try
        {
            return Rfc8032.Verify(sig, 0, pk, 0, msg, 0, msg.Length);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}
