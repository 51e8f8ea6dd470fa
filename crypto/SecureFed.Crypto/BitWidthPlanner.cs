namespace SecureFed.Crypto;

/// <summary>Chooses the word width for secure aggregation so that the modular sum never wraps.</summary>
public static class BitWidthPlanner
{
    /// <summary>
    /// The smallest b &lt;= 32 such that every possible sum of <paramref name="inputs"/> quantized vectors, each
    /// coordinate in [-maxAbs, maxAbs], plus noise of magnitude at most <paramref name="noiseHeadroom"/>, fits in b-bit
    /// two's complement: n * maxAbs + headroom &lt;= 2^(b-1) - 1.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative bound or headroom, or fewer than one input.</exception>
    /// <exception cref="InvalidOperationException">The sum needs more than 32 bits.</exception>
    public static int ForSum(long maxAbsPerInput, int inputs, long noiseHeadroom)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxAbsPerInput);
        ArgumentOutOfRangeException.ThrowIfLessThan(inputs, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(noiseHeadroom);

        const long Limit32 = int.MaxValue;
        Int128 range = ((Int128)maxAbsPerInput * inputs) + noiseHeadroom;
        if (range > Limit32)
        {
            throw new InvalidOperationException(
                $"A sum of {inputs} inputs with |coordinate| <= {maxAbsPerInput} plus noise headroom {noiseHeadroom} spans " +
                $"[-{range}, {range}], which needs more than 32 bits; lower the scale or clip bound, or aggregate fewer inputs.");
        }

        int b = 1;
        while (range > (1L << (b - 1)) - 1)
        {
            b++;
        }

        return b;
    }
}
