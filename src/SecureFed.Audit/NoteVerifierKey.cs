using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

using SecureFed.Crypto;

namespace SecureFed.Audit;

/// <summary>
/// A signed-note Ed25519 verifier key (c2sp.org/signed-note, golang.org/x/mod/sumdb/note):
/// the string <c>name+hash+base64(0x01 || public key)</c>, where hash is the 8-hex-digit key ID
/// <c>SHA-256(name || "\n" || 0x01 || public key)[:4]</c>.
/// </summary>
public sealed class NoteVerifierKey
{
    /// <summary>The signed-note signature type byte of Ed25519.</summary>
    public const byte Ed25519SignatureType = 0x01;

    private readonly byte[] _publicKey;

    private NoteVerifierKey(string name, byte[] publicKey)
    {
        Name = name;
        _publicKey = publicKey;
        KeyId = ComputeKeyId(name, publicKey);
    }

    /// <summary>The key name (for an audit log, its origin).</summary>
    public string Name { get; }

    /// <summary>The 32-bit key ID that prefixes every signature by this key.</summary>
    public uint KeyId { get; }

    /// <summary>A copy of the 32-byte Ed25519 public key.</summary>
    public byte[] PublicKey => (byte[])_publicKey.Clone();

    /// <summary>Creates the verifier key for an Ed25519 public key under <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">The name is not a valid key name or the key is not 32 bytes.</exception>
    public static NoteVerifierKey FromEd25519(string name, ReadOnlySpan<byte> publicKey)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsValidKeyName(name))
        {
            throw new ArgumentException($"'{name}' is not a valid signed-note key name (non-empty, no spaces, no '+').", nameof(name));
        }

        if (publicKey.Length != Ed25519.PublicKeySize)
        {
            throw new ArgumentException($"An Ed25519 public key is {Ed25519.PublicKeySize} bytes, got {publicKey.Length}.", nameof(publicKey));
        }

        return new NoteVerifierKey(name, publicKey.ToArray());
    }

    /// <summary>Parses a verifier key string <c>name+hash+base64(0x01 || public key)</c>.</summary>
    /// <exception cref="FormatException">The string is malformed, uses another algorithm, or its hash does not match.</exception>
    public static NoteVerifierKey Parse(string verifierKey)
    {
        ArgumentNullException.ThrowIfNull(verifierKey);
        string text = verifierKey.Trim();
        string[] parts = text.Split('+', 3);
        if (parts.Length != 3 || parts[2].Any(char.IsWhiteSpace))
        {
            throw new FormatException($"A verifier key is 'name+hash+base64key' (three fields separated by '+', no spaces).");
        }

        string name = parts[0];
        if (!IsValidKeyName(name))
        {
            throw new FormatException($"Verifier key name '{name}' is not a valid signed-note key name.");
        }

        if (parts[1].Length != 8 || !uint.TryParse(parts[1], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint hash)
            || parts[1].Any(char.IsUpper))
        {
            throw new FormatException($"Verifier key hash '{parts[1]}' must be 8 lowercase hex digits.");
        }

        byte[] key;
        try
        {
            key = Convert.FromBase64String(parts[2]);
        }
        catch (FormatException)
        {
            throw new FormatException("Verifier key material is not valid base64.");
        }

        if (key.Length == 0 || key[0] != Ed25519SignatureType)
        {
            throw new FormatException("Verifier key is not an Ed25519 key (its first byte must be 0x01).");
        }

        if (key.Length != 1 + Ed25519.PublicKeySize)
        {
            throw new FormatException($"Verifier key must hold a {Ed25519.PublicKeySize}-byte Ed25519 public key, got {key.Length - 1} bytes.");
        }

        var result = new NoteVerifierKey(name, key[1..]);
        if (result.KeyId != hash)
        {
            throw new FormatException($"Verifier key hash {parts[1]} does not match its name and public key (expected {result.KeyId:x8}).");
        }

        return result;
    }

    /// <summary>Computes the signed-note key ID of an Ed25519 key: the first 4 bytes (big-endian) of SHA-256(name || 0x0A || 0x01 || key).</summary>
    public static uint ComputeKeyId(string name, ReadOnlySpan<byte> publicKey)
    {
        ArgumentNullException.ThrowIfNull(name);
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        byte[] input = new byte[nameBytes.Length + 2 + publicKey.Length];
        nameBytes.CopyTo(input, 0);
        input[nameBytes.Length] = 0x0A;
        input[nameBytes.Length + 1] = Ed25519SignatureType;
        publicKey.CopyTo(input.AsSpan(nameBytes.Length + 2));
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(input, digest);
        return BinaryPrimitives.ReadUInt32BigEndian(digest);
    }

    /// <summary>Whether <paramref name="name"/> is a valid signed-note key name: non-empty, no Unicode spaces, no '+'.</summary>
    public static bool IsValidKeyName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Contains('+', StringComparison.Ordinal))
        {
            return false;
        }

        foreach (char c in name)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c) || char.IsSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Verifies an Ed25519 <paramref name="signature"/> by this key over <paramref name="message"/>.</summary>
    public bool Verify(ReadOnlySpan<byte> message, ReadOnlySpan<byte> signature) =>
        signature.Length == Ed25519.SignatureSize && Ed25519.Verify(_publicKey, message, signature);

    /// <summary>The verifier key string <c>name+hash+base64(0x01 || public key)</c>.</summary>
    public override string ToString()
    {
        byte[] material = new byte[1 + _publicKey.Length];
        material[0] = Ed25519SignatureType;
        _publicKey.CopyTo(material, 1);
        return string.Create(CultureInfo.InvariantCulture, $"{Name}+{KeyId:x8}+{Convert.ToBase64String(material)}");
    }
}
