using SecureFed.Experiments;

namespace SecureFed.Integration.Tests;

/// <summary>Iterate averaging of the global models (<c>--server-average-from</c>, <c>--server-average-sweep</c>).</summary>
public sealed class ModelAveragesTests
{
    private static readonly float[][] Models = [[1f, -2f], [2f, 0f], [6f, 4f], [3f, 10f]];

    [Theory]
    [InlineData(1, 3f, 3f)]
    [InlineData(2, 11f / 3, 14f / 3)]
    [InlineData(4, 3f, 10f)]
    public void Tail_FromRound_IsTheUniformMeanOfThoseRounds(int from, float first, float second)
    {
        float[] mean = ModelAverages.Tail(Models, from);

        Assert.Equal(first, mean[0], 5);
        Assert.Equal(second, mean[1], 5);
    }

    [Fact]
    public void TailAccumulator_RunningMean_NullBeforeTheFirstRoundThenEqualsTail()
    {
        var tail = new ModelAverages.TailAccumulator(from: 2);

        Assert.Null(tail.Add(1, Models[0]));
        for (int round = 2; round <= Models.Length; round++)
        {
            float[] running = tail.Add(round, Models[round - 1])!;
            float[] expected = ModelAverages.Tail(Models.Take(round).ToArray(), 2);
            Assert.Equal(expected[0], running[0], 5);
            Assert.Equal(expected[1], running[1], 5);
        }
    }

    [Fact]
    public void Ema_BiasCorrected_IsTheGeometricallyWeightedMeanWithoutPullTowardZero()
    {
        const double decay = 0.5;
        // Σ β^(t−s) x_s / Σ β^(t−s) with weights 1/8, 1/4, 1/2, 1 for rounds 1..4.
        double w = 0.125 + 0.25 + 0.5 + 1;
        float expected0 = (float)(((0.125 * 1) + (0.25 * 2) + (0.5 * 6) + (1 * 3)) / w);
        float expected1 = (float)(((0.125 * -2) + (0.25 * 0) + (0.5 * 4) + (1 * 10)) / w);

        float[] ema = ModelAverages.Ema(Models, decay);

        Assert.Equal(expected0, ema[0], 5);
        Assert.Equal(expected1, ema[1], 5);
        Assert.Equal([5f, 7f], ModelAverages.Ema([[5f, 7f], [5f, 7f]], 0.99));
    }

    [Fact]
    public void Tail_FromAfterTheLastRound_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => ModelAverages.Tail(Models, 5));

    [Theory]
    [InlineData(201, 0.0, "--server-average-from")]
    [InlineData(-1, 0.0, "--server-average-from")]
    [InlineData(100, 0.9, "--server-ema")]
    public void Validate_BadServerAverageFrom_RefusedNamingTheOption(int from, double ema, string named)
    {
        var options = new ExperimentOptions { DataDirectory = "/nonexistent", Rounds = 200, ServerAverageFrom = from, ServerWeightAverage = ema };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }
}
