using SecureFed.Aggregator;
using Xunit;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The pause between round attempts that keep failing (<see cref="AggregatorOptions.MaxRetryPauseSeconds"/>): none for
/// the first two, then doubling from 1 s up to the cap; 0 turns it off.
/// </summary>
public sealed class RetryPauseTests
{
    [Theory]
    [InlineData(0, 30, 0)]
    [InlineData(1, 30, 0)]
    [InlineData(2, 30, 1)]
    [InlineData(3, 30, 2)]
    [InlineData(6, 30, 16)]
    [InlineData(7, 30, 30)]
    [InlineData(1_000_000, 30, 30)]
    [InlineData(9, 3_600, 128)]
    [InlineData(50, 0, 0)]
    public void RetryPause_DoublesFromTheThirdFailureUpToTheCap(int failedInARow, int max, double seconds)
    {
        Assert.Equal(TimeSpan.FromSeconds(seconds), RoundCoordinator.RetryPause(failedInARow, max));
    }

    [Fact]
    public void Validate_MaxRetryPauseOutOfRange_Named()
    {
        var options = new AggregatorOptions { MaxRetryPauseSeconds = -1 };

        Assert.Contains(options.Validate(), e => e.Contains("MaxRetryPauseSeconds", StringComparison.Ordinal));
    }
}
