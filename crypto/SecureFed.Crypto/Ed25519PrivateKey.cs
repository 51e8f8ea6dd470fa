using System.Security.Cryptography;
using Rfc8032 = Org.BouncyCastle.Math.EC.Rfc8032.Ed25519;

namespace SecureFed.Crypto;

/// <summary>An Ed25519 private key (the 32-byte RFC 8032 seed); wiped on dispose.</summary>
public sealed class Ed25519PrivateKey : IDisposable
{
    private readonly byte[] _seed;
    private bool _disposed;

    private Ed25519PrivateKey(byte[] seed)
    {
        _seed = seed;
        PublicKey = new byte[Ed25519.PublicKeySize];
        Rfc8032.GeneratePublicKey(_seed, 0, PublicKey, 0);
    }

    /// <summary>The 32-byte public key.</summary>
    public byte[] PublicKey { get; }

    /// <summary>Generates a fresh key from <paramref name="random"/> (the system CSPRNG by default).</summary>
    public static Ed25519PrivateKey Generate(IRandomSource? random = null)
    {
        byte[] seed = new byte[Ed25519.SeedSize];
        (random ?? SystemRandomSource.Instance).Fill(seed);
        return new Ed25519PrivateKey(seed);
    }

    /// <summary>Imports a key from its 32-byte seed (the RFC 8032 private key).</summary>
    /// <exception cref="ArgumentException">The seed is not 32 bytes.</exception>
    public static Ed25519PrivateKey FromSeed(ReadOnlySpan<byte> seed)
    {
        if (seed.Length != Ed25519.SeedSize)
        {
            throw new ArgumentException($"An Ed25519 private key seed is {Ed25519.SeedSize} bytes, got {seed.Length}.", nameof(seed));
        }

        return new Ed25519PrivateKey(seed.ToArray());
    }

    /// <summary>Copies the 32-byte seed into <paramref name="destination"/>.</summary>
    public void ExportSeed(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (destination.Length < Ed25519.SeedSize)
        {
            throw new ArgumentException($"Destination must hold {Ed25519.SeedSize} bytes.", nameof(destination));
        }

        _seed.CopyTo(destination);
    }

    /// <summary>Signs <paramref name="message"/> into <paramref name="signature"/> (64 bytes).</summary>
    public void Sign(ReadOnlySpan<byte> message, Span<byte> signature)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (signature.Length < Ed25519.SignatureSize)
        {
            throw new ArgumentException($"Destination must hold {Ed25519.SignatureSize} bytes.", nameof(signature));
        }

        byte[] msg = message.ToArray();
        byte[] sig = new byte[Ed25519.SignatureSize];
        Rfc8032.Sign(_seed, 0, msg, 0, msg.Length, sig, 0);
        sig.CopyTo(signature);
    }

    /// <summary>Signs <paramref name="message"/> and returns the 64-byte signature.</summary>
    public byte[] Sign(ReadOnlySpan<byte> message)
    {
        byte[] signature = new byte[Ed25519.SignatureSize];
        Sign(message, signature);
        return signature;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_disposed)
        {
            CryptographicOperations.ZeroMemory(_seed);
            _disposed = true;
        }
    }
}
