using System.Runtime.CompilerServices;

namespace SecureFed.Crypto.Internal;

/// <summary>Arithmetic in GF(p) for the Mersenne prime p = 2^61 - 1. All inputs and outputs are in [0, p).</summary>
internal static class MersenneField
{
    public const ulong P = (1UL << 61) - 1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Add(ulong a, ulong b)
    {
        ulong r = a + b;
        return r >= P ? r - P : r;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Subtract(ulong a, ulong b) => a >= b ? a - b : a + P - b;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Multiply(ulong a, ulong b)
    {
        // a, b < 2^61, so the 122-bit product is hi * 2^64 + lo with hi < 2^58.
        ulong hi = Math.BigMul(a, b, out ulong lo);

        // 2^61 = 1 (mod p): product = (product >> 61) + (product & p) (mod p); each part < 2^61.
        ulong r = (lo & P) + ((hi << 3) | (lo >> 61));
        r = (r & P) + (r >> 61);
        return r >= P ? r - P : r;
    }

    public static ulong Power(ulong value, ulong exponent)
    {
        ulong result = 1;
        ulong b = value;
        while (exponent != 0)
        {
            if ((exponent & 1) != 0)
            {
                result = Multiply(result, b);
            }

            b = Multiply(b, b);
            exponent >>= 1;
        }

        return result;
    }

    /// <summary>The multiplicative inverse (Fermat: a^(p-2)); <paramref name="value"/> must be non-zero.</summary>
    public static ulong Inverse(ulong value)
    {
        if (value == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(value), "Zero has no inverse in GF(2^61 - 1).");
        }

        return Power(value, P - 2);
    }
}
