using System.Buffers.Binary;
using System.Security.Cryptography;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// A <see cref="Random"/> whose every draw comes from the operating system's CSPRNG (<see cref="RandomNumberGenerator"/>),
/// for the parts of DP-SGD whose secrecy the privacy proof assumes: which examples a Poisson-sampled step includes and
/// which tokens word dropout hides. A seeded <see cref="Random"/> is predictable by anyone who knows the seed. Not
/// thread-safe (like <see cref="Random"/>); one instance per training call.
/// </summary>
internal sealed class CryptoRandom : Random
{
    private readonly byte[] _buffer = new byte[4096];
    private int _used;

    public CryptoRandom()
        : base(0)
    {
        _used = _buffer.Length;
    }

    /// <summary>A uniform double in [0, 1) with 53 random bits.</summary>
    public override double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    public override float NextSingle() => (NextUInt64() >> 40) * (1.0f / (1U << 24));

    public override int Next() => Next(0, int.MaxValue);

    public override int Next(int maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return Next(0, maxValue);
    }

    public override int Next(int minValue, int maxValue) => (int)NextInt64(minValue, maxValue);

    public override long NextInt64() => NextInt64(0, long.MaxValue);

    public override long NextInt64(long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxValue);
        return NextInt64(0, maxValue);
    }

    /// <summary>A uniform integer in [<paramref name="minValue"/>, <paramref name="maxValue"/>), without modulo bias (rejection sampling).</summary>
    public override long NextInt64(long minValue, long maxValue)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minValue, maxValue);
        ulong range = (ulong)(maxValue - minValue);
        if (range <= 1)
        {
            return minValue;
        }

        ulong limit = ulong.MaxValue - (ulong.MaxValue % range);
        ulong draw;
        do
        {
            draw = NextUInt64();
        }
        while (draw >= limit);

        return minValue + (long)(draw % range);
    }

    public override void NextBytes(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        RandomNumberGenerator.Fill(buffer);
    }

    public override void NextBytes(Span<byte> buffer) => RandomNumberGenerator.Fill(buffer);

    protected override double Sample() => NextDouble();

    /// <summary>64 fresh bits (a seed for torch's generator, for instance).</summary>
    public ulong NextUInt64()
    {
        if (_used > _buffer.Length - sizeof(ulong))
        {
            RandomNumberGenerator.Fill(_buffer);
            _used = 0;
        }

        ulong value = BinaryPrimitives.ReadUInt64LittleEndian(_buffer.AsSpan(_used));
        _used += sizeof(ulong);
        return value;
    }
}
