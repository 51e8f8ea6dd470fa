using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace SecureFed.Crypto;

/// <summary>
/// Element-wise arithmetic on vectors of words modulo 2^b (1 &lt;= b &lt;= 32), vectorised with <see cref="Vector{T}"/>.
/// Inputs may carry bits above b (they are reduced); outputs are always in [0, 2^b).
/// </summary>
public static class ModularVector
{
    /// <summary>accumulator[i] = (accumulator[i] + values[i]) mod 2^b.</summary>
    /// <exception cref="ArgumentException">The lengths differ.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bitWidth"/> is outside 1..32.</exception>
    public static void Add(Span<uint> accumulator, ReadOnlySpan<uint> values, int bitWidth)
    {
        uint mask = CheckedMask(bitWidth);
        CheckLengths(accumulator.Length, values.Length);
        AddUnchecked(accumulator, values, mask);
    }

    /// <summary>accumulator[i] = (accumulator[i] - values[i]) mod 2^b.</summary>
    /// <inheritdoc cref="Add" path="/exception"/>
    public static void Subtract(Span<uint> accumulator, ReadOnlySpan<uint> values, int bitWidth)
    {
        uint mask = CheckedMask(bitWidth);
        CheckLengths(accumulator.Length, values.Length);
        SubtractUnchecked(accumulator, values, mask);
    }

    /// <summary>values[i] = (-values[i]) mod 2^b.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bitWidth"/> is outside 1..32.</exception>
    public static void Negate(Span<uint> values, int bitWidth)
    {
        uint mask = CheckedMask(bitWidth);
        ref uint a = ref MemoryMarshal.GetReference(values);
        int length = values.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var m = new Vector<uint>(mask);
            for (; i <= length - Vector<uint>.Count; i += Vector<uint>.Count)
            {
                ((Vector<uint>.Zero - Vector.LoadUnsafe(ref a, (nuint)i)) & m).StoreUnsafe(ref a, (nuint)i);
            }
        }

        for (; i < length; i++)
        {
            Unsafe.Add(ref a, i) = (0u - Unsafe.Add(ref a, i)) & mask;
        }
    }

    /// <summary>values[i] = values[i] mod 2^b (clears the bits above b).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bitWidth"/> is outside 1..32.</exception>
    public static void Reduce(Span<uint> values, int bitWidth) => AndInPlace(values, CheckedMask(bitWidth));

    /// <summary>
    /// The signed (two's complement) value of <paramref name="word"/> modulo 2^b: in [-2^(b-1), 2^(b-1) - 1].
    /// Bits of <paramref name="word"/> above b are ignored.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="bitWidth"/> is outside 1..32.</exception>
    public static long ToSigned(uint word, int bitWidth)
    {
        uint mask = CheckedMask(bitWidth);
        long value = word & mask;
        long half = 1L << (bitWidth - 1);
        return value >= half ? value - (1L << bitWidth) : value;
    }

    /// <summary>2^b - 1 for 1 &lt;= b &lt;= 32 (no validation).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static uint Mask(int bitWidth) => bitWidth >= 32 ? uint.MaxValue : (1u << bitWidth) - 1;

    internal static uint CheckedMask(int bitWidth)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bitWidth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitWidth, 32);
        return Mask(bitWidth);
    }

    internal static void AndInPlace(Span<uint> values, uint mask)
    {
        ref uint a = ref MemoryMarshal.GetReference(values);
        int length = values.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var m = new Vector<uint>(mask);
            for (; i <= length - (4 * Vector<uint>.Count); i += 4 * Vector<uint>.Count)
            {
                nuint o = (nuint)i;
                (Vector.LoadUnsafe(ref a, o) & m).StoreUnsafe(ref a, o);
                (Vector.LoadUnsafe(ref a, o + (nuint)Vector<uint>.Count) & m).StoreUnsafe(ref a, o + (nuint)Vector<uint>.Count);
                (Vector.LoadUnsafe(ref a, o + (nuint)(2 * Vector<uint>.Count)) & m).StoreUnsafe(ref a, o + (nuint)(2 * Vector<uint>.Count));
                (Vector.LoadUnsafe(ref a, o + (nuint)(3 * Vector<uint>.Count)) & m).StoreUnsafe(ref a, o + (nuint)(3 * Vector<uint>.Count));
            }

            for (; i <= length - Vector<uint>.Count; i += Vector<uint>.Count)
            {
                (Vector.LoadUnsafe(ref a, (nuint)i) & m).StoreUnsafe(ref a, (nuint)i);
            }
        }

        for (; i < length; i++)
        {
            Unsafe.Add(ref a, i) &= mask;
        }
    }

    internal static void AddUnchecked(Span<uint> accumulator, ReadOnlySpan<uint> values, uint mask)
    {
        ref uint a = ref MemoryMarshal.GetReference(accumulator);
        ref uint b = ref MemoryMarshal.GetReference(values);
        int length = accumulator.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var m = new Vector<uint>(mask);
            for (; i <= length - Vector<uint>.Count; i += Vector<uint>.Count)
            {
                ((Vector.LoadUnsafe(ref a, (nuint)i) + Vector.LoadUnsafe(ref b, (nuint)i)) & m).StoreUnsafe(ref a, (nuint)i);
            }
        }

        for (; i < length; i++)
        {
            Unsafe.Add(ref a, i) = (Unsafe.Add(ref a, i) + Unsafe.Add(ref b, i)) & mask;
        }
    }

    internal static void SubtractUnchecked(Span<uint> accumulator, ReadOnlySpan<uint> values, uint mask)
    {
        ref uint a = ref MemoryMarshal.GetReference(accumulator);
        ref uint b = ref MemoryMarshal.GetReference(values);
        int length = accumulator.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var m = new Vector<uint>(mask);
            for (; i <= length - Vector<uint>.Count; i += Vector<uint>.Count)
            {
                ((Vector.LoadUnsafe(ref a, (nuint)i) - Vector.LoadUnsafe(ref b, (nuint)i)) & m).StoreUnsafe(ref a, (nuint)i);
            }
        }

        for (; i < length; i++)
        {
            Unsafe.Add(ref a, i) = (Unsafe.Add(ref a, i) - Unsafe.Add(ref b, i)) & mask;
        }
    }

    private static void CheckLengths(int accumulatorLength, int valuesLength)
    {
        if (accumulatorLength != valuesLength)
        {
            throw new ArgumentException(
                $"The vectors must have the same length: the accumulator has {accumulatorLength} words, the values {valuesLength}.",
                "values");
        }
    }
}
