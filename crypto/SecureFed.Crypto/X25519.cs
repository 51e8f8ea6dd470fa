using System.Security.Cryptography;

namespace SecureFed.Crypto;

/// <summary>X25519 (RFC 7748) constants and public-key validation.</summary>
public static class X25519
{
    /// <summary>Size in bytes of private keys, public keys and shared secrets.</summary>
    public const int KeySize = 32;

    // libsodium's blacklist (crypto_scalarmult_curve25519 has_small_order): u-coordinates of small order on the curve
    // or its twist, plus the non-canonical encodings p, p+1 of 0 and 1. Compared with bit 255 ignored, because
    // RFC 7748 decoding masks that bit, so each entry also covers its twin with the top bit set.
    private static readonly byte[][] s_smallOrder =
    [
        // 0 (order 4 point (0, 0))
        Convert.FromHexString("0000000000000000000000000000000000000000000000000000000000000000"),

        // 1 (order 1)
        Convert.FromHexString("0100000000000000000000000000000000000000000000000000000000000000"),

        // order-8 points
        Convert.FromHexString("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
        Convert.FromHexString("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),

        // p - 1 (order 2 on the twist)
        Convert.FromHexString("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),

        // p (= 0, non-canonical)
        Convert.FromHexString("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),

        // p + 1 (= 1, non-canonical)
        Convert.FromHexString("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
    ];

    /// <summary>
    /// Which implementation computes agreements: <c>"openssl (libcrypto.so.3)"</c> when the system OpenSSL is present and
    /// passes its RFC 7748 self-test, <c>"bouncycastle"</c> otherwise or when <c>SECUREFED_X25519=managed</c> is set.
    /// </summary>
    public static string Backend => Internal.OpenSslX25519.IsAvailable
        ? $"openssl ({Internal.OpenSslX25519.LibraryName})"
        : "bouncycastle";

    /// <summary>The blacklisted small-order encodings (bit 255 clear); for tests and documentation.</summary>
    internal static IReadOnlyList<byte[]> SmallOrderPoints => s_smallOrder;

    /// <summary>
    /// Checks that <paramref name="publicKey"/> is a usable X25519 public key: 32 bytes, not all zero, and not one of
    /// the known small-order points (the libsodium / RFC 7748 section 7 list, with or without bit 255 set).
    /// </summary>
    /// <exception cref="ArgumentException">The key is not 32 bytes.</exception>
    /// <exception cref="CryptographicException">The key is all zero or a small-order point.</exception>
    public static void ValidatePublicKey(ReadOnlySpan<byte> publicKey)
    {
        if (publicKey.Length != KeySize)
        {
            throw new ArgumentException($"An X25519 public key is {KeySize} bytes, got {publicKey.Length}.", nameof(publicKey));
        }

        if (IsAllZero(publicKey))
        {
            throw new CryptographicException("The X25519 public key is all zero (the point of order 4); it is refused.");
        }

        foreach (byte[] bad in s_smallOrder)
        {
            int diff = 0;
            for (int i = 0; i < KeySize - 1; i++)
            {
                diff |= publicKey[i] ^ bad[i];
            }

            diff |= (publicKey[KeySize - 1] & 0x7f) ^ bad[KeySize - 1];
            if (diff == 0)
            {
                throw new CryptographicException(
                    $"The X25519 public key {Convert.ToHexStringLower(publicKey)} is a small-order point; " +
                    "it would force a predictable shared secret and is refused.");
            }
        }
    }

    /// <summary>Constant-time check that every byte is zero.</summary>
    internal static bool IsAllZero(ReadOnlySpan<byte> value)
    {
        int acc = 0;
        foreach (byte b in value)
        {
            acc |= b;
        }

        return acc == 0;
    }
}
