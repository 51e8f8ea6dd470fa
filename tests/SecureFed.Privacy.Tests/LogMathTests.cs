using SecureFed.Privacy.Internal;

namespace SecureFed.Privacy.Tests;

public sealed class LogMathTests
{
    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.5, 0.4795001221869535)]
    [InlineData(1.0, 0.15729920705028513)]
    [InlineData(1.999, 0.004698443348629488)]
    [InlineData(2.0, 0.004677734981047266)]
    [InlineData(3.0, 2.209049699858544e-05)]
    [InlineData(5.0, 1.5374597944280349e-12)]
    [InlineData(10.0, 2.088487583762545e-45)]
    [InlineData(-1.0, 1.8427007929497148)]
    public void Erfc_ReferenceValues_MatchToTwelveDigits(double x, double expected)
    {
        Assert.Equal(expected, LogMath.Erfc(x), Math.Abs(expected) * 1e-12);
        Assert.Equal(Math.Log(expected), LogMath.LogErfc(x), 1e-11);
    }

    [Fact]
    public void LogErfc_FarTail_MatchesAsymptoticSeries()
    {
        // erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6)); error ~ 1e-10 at x = 30.
        double x = 30;
        double series = 1 - (1 / (2 * x * x)) + (3 / (4 * Math.Pow(x, 4))) - (15 / (8 * Math.Pow(x, 6)));
        double expected = -(x * x) - Math.Log(x * Math.Sqrt(Math.PI)) + Math.Log(series);

        Assert.Equal(expected, LogMath.LogErfc(x), 1e-9);
    }

    [Fact]
    public void LogAddAndLogSub_AreInverse()
    {
        double sum = LogMath.LogAdd(Math.Log(3), Math.Log(5));

        Assert.Equal(Math.Log(8), sum, 14);
        Assert.Equal(Math.Log(3), LogMath.LogSub(sum, Math.Log(5)), 13);
        Assert.Equal(double.NegativeInfinity, LogMath.LogSub(1.0, 1.0));
        Assert.Throws<InvalidOperationException>(() => LogMath.LogSub(1.0, 2.0));
    }
}
