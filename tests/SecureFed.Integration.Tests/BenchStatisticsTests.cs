using SecureFed.Cli.Commands;

namespace SecureFed.Integration.Tests;

/// <summary>The one median every <c>securefed bench</c> command reports.</summary>
public sealed class BenchStatisticsTests
{
    [Theory]
    [InlineData(new[] { 5.0 }, 5.0)]
    [InlineData(new[] { 3.0, 1.0, 2.0 }, 2.0)]
    [InlineData(new[] { 4.0, 1.0, 3.0, 2.0 }, 2.5)]
    [InlineData(new[] { -1.0, 7.0 }, 3.0)]
    [InlineData(new[] { 2.0, 2.0, 9.0, 2.0 }, 2.0)]
    public void Median_OddAndEvenCounts_MiddleValueOrMeanOfTheTwo(double[] samples, double expected)
    {
        Assert.Equal(expected, BenchStatistics.Median(samples));
    }

    [Fact]
    public void Median_LeavesTheCallersOrderAlone()
    {
        var samples = new List<double> { 9, 1, 5, 3 };
        Assert.Equal(4.0, BenchStatistics.Median(samples));
        Assert.Equal([9.0, 1, 5, 3], samples);
    }

    [Fact]
    public void Median_NoSamples_ErrorSaysNothingWasMeasured()
    {
        var error = Assert.Throws<ArgumentException>(() => BenchStatistics.Median([]));
        Assert.Contains("measured nothing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Median_NaNSample_ErrorNamesIt()
    {
        var error = Assert.Throws<ArgumentException>(() => BenchStatistics.Median([1.0, double.NaN, 2.0]));
        Assert.Contains("NaN", error.Message, StringComparison.Ordinal);
    }
}
