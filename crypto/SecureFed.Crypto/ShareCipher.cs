using System.Security.Cryptography;

namespace SecureFed.Crypto;

/// <summary>
/// AES-256-GCM for encrypted secret shares. The sealed form is nonce (12) || ciphertext || tag (16) with a random
/// 96-bit nonce; bind sender, recipient, session and round through the associated data (see <see cref="DomainLabel"/>).
/// </summary>
public static class ShareCipher
{
    /// <summary>Nonce size in bytes (96 bits).</summary>
    public const int NonceSize = 12;

    /// <summary>Authentication tag size in bytes (128 bits).</summary>
    public const int TagSize = 16;

    /// <summary>Key size in bytes (AES-256).</summary>
    public const int KeySize = 32;

    /// <summary>Bytes added by <see cref="Seal"/>: nonce + tag.</summary>
    public const int Overhead = NonceSize + TagSize;

    /// <summary>Encrypts <paramref name="plaintext"/> under a fresh random nonce; returns nonce || ciphertext || tag.</summary>
    /// <exception cref="ArgumentException">The key is not 32 bytes.</exception>
    public static byte[] Seal(ReadOnlySpan<byte> key, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, IRandomSource? random = null)
    {
        CheckKey(key);
        byte[] sealedMessage = new byte[Overhead + plaintext.Length];
        Span<byte> nonce = sealedMessage.AsSpan(0, NonceSize);
        (random ?? SystemRandomSource.Instance).Fill(nonce);
        Encrypt(key, nonce, plaintext, sealedMessage.AsSpan(NonceSize, plaintext.Length), sealedMessage.AsSpan(NonceSize + plaintext.Length, TagSize), associatedData);
        return sealedMessage;
    }

    /// <summary>Authenticates and decrypts a message produced by <see cref="Seal"/>.</summary>
    /// <exception cref="ArgumentException">The key is not 32 bytes or the message is shorter than 28 bytes.</exception>
    /// <exception cref="AuthenticationTagMismatchException">Any bit of nonce, ciphertext, tag or associated data changed, or the key is wrong.</exception>
    public static byte[] Open(ReadOnlySpan<byte> key, ReadOnlySpan<byte> sealedMessage, ReadOnlySpan<byte> associatedData)
    {
        CheckKey(key);
        if (sealedMessage.Length < Overhead)
        {
            throw new ArgumentException(
                $"A sealed share is at least {Overhead} bytes (nonce + tag), got {sealedMessage.Length}: it is truncated.", nameof(sealedMessage));
        }

        int length = sealedMessage.Length - Overhead;
        byte[] plaintext = new byte[length];
        try
        {
            Decrypt(key, sealedMessage[..NonceSize], sealedMessage.Slice(NonceSize, length), sealedMessage[(NonceSize + length)..], plaintext, associatedData);
        }
        catch
        {
            CryptographicOperations.ZeroMemory(plaintext);
            throw;
        }

        return plaintext;
    }

    /// <summary>Low-level AES-256-GCM encryption with an explicit 12-byte nonce (for known-answer tests).</summary>
    /// <exception cref="ArgumentException">A size is wrong.</exception>
    public static void Encrypt(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
    {
        CheckKey(key);
        CheckSizes(nonce.Length, tag.Length);
        if (ciphertext.Length != plaintext.Length)
        {
            throw new ArgumentException($"The ciphertext buffer must be {plaintext.Length} bytes, got {ciphertext.Length}.", nameof(ciphertext));
        }

        using var gcm = new AesGcm(key, TagSize);
        gcm.Encrypt(nonce, plaintext, ciphertext, tag, associatedData);
    }

    /// <summary>Low-level AES-256-GCM decryption with an explicit 12-byte nonce.</summary>
    /// <exception cref="ArgumentException">A size is wrong.</exception>
    /// <exception cref="AuthenticationTagMismatchException">The tag does not verify; <paramref name="plaintext"/> is cleared.</exception>
    public static void Decrypt(ReadOnlySpan<byte> key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        CheckKey(key);
        CheckSizes(nonce.Length, tag.Length);
        if (ciphertext.Length != plaintext.Length)
        {
            throw new ArgumentException($"The plaintext buffer must be {ciphertext.Length} bytes, got {plaintext.Length}.", nameof(plaintext));
        }

        using var gcm = new AesGcm(key, TagSize);
        gcm.Decrypt(nonce, ciphertext, tag, plaintext, associatedData);
    }

    private static void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"A share cipher key is {KeySize} bytes (AES-256), got {key.Length}.", nameof(key));
        }
    }

    private static void CheckSizes(int nonceLength, int tagLength)
    {
        if (nonceLength != NonceSize)
        {
            throw new ArgumentException($"The GCM nonce is {NonceSize} bytes, got {nonceLength}.", "nonce");
        }

        if (tagLength != TagSize)
        {
            throw new ArgumentException($"The GCM tag is {TagSize} bytes, got {tagLength}.", "tag");
        }
    }
}
