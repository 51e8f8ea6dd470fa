using System.Security.Cryptography;
using System.Text;

using SecureFed.Crypto;
using SecureFed.Federation.Internal;

namespace SecureFed.Federation;

/// <summary>
/// Reads and writes a party's Ed25519 identity key: the 32-byte seed in a PEM-like text
/// (<c>-----BEGIN SECUREFED ED25519 PRIVATE KEY-----</c>), file mode 0600.
/// </summary>
public static class IdentityKeyFile
{
    /// <summary>The PEM label.</summary>
    public const string Label = "SECUREFED ED25519 PRIVATE KEY";

    /// <summary>Writes <paramref name="key"/> to <paramref name="path"/> atomically with mode 0600; all buffers are wiped.</summary>
    public static void Write(string path, Ed25519PrivateKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] seed = new byte[Ed25519.SeedSize];
        char[]? pem = null;
        byte[]? bytes = null;
        try
        {
            key.ExportSeed(seed);
            pem = PemEncoding.Write(Label, seed);
            bytes = new byte[Encoding.ASCII.GetByteCount(pem) + 1];
            int n = Encoding.ASCII.GetBytes(pem, bytes);
            bytes[n] = (byte)'\n';
            AtomicFile.WriteAllBytes(path, bytes, AtomicFile.SecretFileMode);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
            if (pem is not null)
            {
                CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(pem.AsSpan()));
            }

            if (bytes is not null)
            {
                CryptographicOperations.ZeroMemory(bytes);
            }
        }
    }

    /// <summary>Reads an identity key written by <see cref="Write"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a SecureFed Ed25519 key, is larger than 64 KiB, or (on Unix) its
    /// group or other users may access it (owner only, 0600; 0640 when root owns it); the message names the path.</exception>
    /// <exception cref="IOException">The file cannot be read, or it is not a regular file (a named pipe, a device).</exception>
    public static Ed25519PrivateKey Read(string path) => Read(path, acceptReadable: false, optOut: null, out _);

    /// <summary>
    /// Reads an identity key as <see cref="Read(string)"/>; with <paramref name="acceptReadable"/> (<c>AcceptReadableKeys</c>) a
    /// key its group or other users may only read is accepted and named in <paramref name="readable"/>, for a warning;
    /// <paramref name="optOut"/> is how the caller's opt-out is turned on, for the refusal (null: it has none).
    /// </summary>
    internal static Ed25519PrivateKey Read(string path, bool acceptReadable, string? optOut, out ReadableKeyFile? readable)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        byte[] bytes = RegularFile.ReadAllBytes(path, RegularFile.KeyFileLimit, "Identity key");
        char[] text = new char[bytes.Length];
        byte[] seed = new byte[Ed25519.SeedSize + 3];
        try
        {
            int chars = Encoding.ASCII.GetChars(bytes, text);
            ReadOnlySpan<char> span = text.AsSpan(0, chars);
            if (!PemEncoding.TryFind(span, out PemFields fields) || !span[fields.Label].SequenceEqual(Label))
            {
                throw new InvalidDataException($"Identity key '{path}' is not a '{Label}' PEM block.");
            }

            if (!Convert.TryFromBase64Chars(span[fields.Base64Data], seed, out int written) || written != Ed25519.SeedSize)
            {
                throw new InvalidDataException($"Identity key '{path}' must hold a {Ed25519.SeedSize}-byte seed.");
            }

            readable = PrivateKeyMode.EnsureOwnerOnly(path, "Identity key", acceptReadable, optOut);
            return Ed25519PrivateKey.FromSeed(seed.AsSpan(0, Ed25519.SeedSize));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
            CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(text.AsSpan()));
            CryptographicOperations.ZeroMemory(seed);
        }
    }
}
