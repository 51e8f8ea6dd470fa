using System.Runtime.InteropServices;
using System.Security.Cryptography;

using SecureFed.Crypto;

namespace SecureFed.Privacy.Internal;

/// <summary>
/// Exact integer randomness on top of an <see cref="IRandomSource"/>: buffered 64-bit words (each wiped once used),
/// unbiased uniform integers and exact Bernoulli(n/d) by lazy comparison of binary expansions. No floating point.
/// </summary>
internal sealed class RandomWords
{
    private readonly IRandomSource _source;
    private readonly ulong[] _buffer = new ulong[64];
    private int _next;
    private ulong _bits;
    private int _bitCount;

    public RandomWords(IRandomSource source)
    {
        _source = source;
        _next = _buffer.Length;
    }

    /// <summary>A uniform 64-bit word.</summary>
    public ulong NextWord()
    {
        if (_next == _buffer.Length)
        {
            _source.Fill(MemoryMarshal.AsBytes(_buffer.AsSpan()));
            _next = 0;
        }

        ulong value = _buffer[_next];
        _buffer[_next++] = 0;
        return value;
    }

    /// <summary>A fair coin.</summary>
    public bool NextBit() => NextBits(1) != 0;

    /// <summary>The next <paramref name="count"/> (1..32) uniform bits from a wiped-as-used reservoir.</summary>
    public uint NextBits(int count)
    {
        if (_bitCount < count)
        {
            _bits = NextWord();
            _bitCount = 64;
        }

        uint value = (uint)(_bits & ((1UL << count) - 1));
        _bits >>= count;
        _bitCount -= count;
        return value;
    }

    /// <summary>A uniform integer in [0, n) by Lemire's unbiased multiply-and-reject.</summary>
    public ulong Uniform(ulong n)
    {
        UInt128 m = (UInt128)NextWord() * n;
        ulong low = (ulong)m;
        if (low < n)
        {
            ulong threshold = (0 - n) % n;
            while (low < threshold)
            {
                m = (UInt128)NextWord() * n;
                low = (ulong)m;
            }
        }

        return (ulong)(m >> 64);
    }

    /// <summary>Bernoulli(numerator / denominator) exactly, for 0 &lt;= numerator and 0 &lt; denominator.</summary>
    public bool Bernoulli(ulong numerator, ulong denominator)
    {
        if (numerator >= denominator)
        {
            return true;
        }

        if (denominator < (1UL << 47))
        {
            // 16 binary digits at a time: a tie (probability 2^-16) moves on to the next 16.
            ulong rem = numerator;
            while (rem != 0)
            {
                ulong scaled = rem << 16;
                ulong digit = scaled / denominator;
                rem = scaled - (digit * denominator);
                uint u = NextBits(16);
                if (u != digit)
                {
                    return u < digit;
                }
            }

            return false;
        }

        ulong remainder = numerator;
        while (remainder != 0)
        {
            // Next 64 binary digits of remainder / denominator versus 64 fresh uniform bits.
            UInt128 scaled = (UInt128)remainder << 64;
            ulong digit = (ulong)(scaled / denominator);
            remainder = (ulong)(scaled % denominator);
            ulong u = NextWord();
            if (u != digit)
            {
                return u < digit;
            }
        }

        return false;
    }

    /// <summary>Bernoulli(numerator / denominator) exactly, for 0 &lt;= numerator and 0 &lt; denominator &lt; 2^110.</summary>
    public bool Bernoulli(UInt128 numerator, UInt128 denominator)
    {
        if (numerator >= denominator)
        {
            return true;
        }

        UInt128 remainder = numerator;
        while (remainder != UInt128.Zero)
        {
            UInt128 scaled = remainder << 16;
            UInt128 digit = scaled / denominator;
            remainder = scaled - (digit * denominator);
            uint u = NextBits(16);
            if (u != (uint)digit)
            {
                return u < (uint)digit;
            }
        }

        return false;
    }

    /// <summary>Bernoulli(numerator / denominator) exactly for big integers, 0 &lt;= numerator, 0 &lt; denominator.</summary>
    public bool Bernoulli(System.Numerics.BigInteger numerator, System.Numerics.BigInteger denominator)
    {
        if (numerator >= denominator)
        {
            return true;
        }

        System.Numerics.BigInteger remainder = numerator;
        while (!remainder.IsZero)
        {
            System.Numerics.BigInteger digit = System.Numerics.BigInteger.DivRem(remainder << 16, denominator, out remainder);
            uint u = NextBits(16);
            uint d = (uint)digit;
            if (u != d)
            {
                return u < d;
            }
        }

        return false;
    }

    /// <summary>Wipes the unread buffered randomness.</summary>
    public void Clear()
    {
        CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(_buffer.AsSpan()));
        _next = _buffer.Length;
        _bits = 0;
        _bitCount = 0;
    }
}
