using SecureFed.Experiments;
using SecureFed.Testing;

namespace SecureFed.Integration.Tests;

/// <summary>Public-data-assisted server steps (<c>--public-mix</c>, <c>--public-mix-until</c>).</summary>
public sealed class PublicMixTests
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private static readonly long[] Examples = [300, 700, 1000];

    [Theory]
    [InlineData(0, 1, 2.0)]
    [InlineData(0, 101, 1.0)]
    [InlineData(0, 200, 0.01)]
    [InlineData(100, 51, 1.0)]
    [InlineData(100, 100, 0.02)]
    [InlineData(100, 101, 0.0)]
    public void PublicMixWeight_DecaysLinearlyToZeroAfterTheLastRound(int until, int round, double expected)
    {
        var options = new ExperimentOptions { Rounds = 200, PublicMix = 2, PublicMixUntil = until };

        Assert.Equal(expected, options.PublicMixWeight(round), 9);
    }

    [Fact]
    public void PublicMixWeight_Off_IsZero() =>
        Assert.Equal(0, new ExperimentOptions { Rounds = 200 }.PublicMixWeight(1));

    [Fact]
    public void RunRound_ServerUpdate_IsAddedToTheAveragedUpdateBeforeTheServerStep()
    {
        const int d = 64;
        float[] initial = [.. Enumerable.Range(0, d).Select(j => 0.01f * j)];
        float[][] deltas = [.. Sites.Select((_, i) => Enumerable.Range(0, d).Select(j => 0.001f * (((i + 1) * j) % 7)).ToArray())];
        double[] server = [.. Enumerable.Range(0, d).Select(j => j % 2 == 0 ? 0.05 : -0.03)];
        const double serverLr = 0.5;

        float[] without = Round(initial, deltas, null, serverLr);
        float[] with = Round(initial, deltas, server, serverLr);

        for (int j = 0; j < d; j++)
        {
            Assert.Equal(without[j] + (serverLr * server[j]), with[j], 1e-6);
        }

        Assert.NotEqual(without, with);
    }

    [Fact]
    public void RunRound_ServerUpdateOfTheWrongLength_Throws() =>
        Assert.Throws<ArgumentException>(() => Round(new float[8], [.. Sites.Select(_ => new float[8])], new double[7], 1));

    [Theory]
    [InlineData(-1.0, 0, true, "--public-mix")]
    [InlineData(double.NaN, 0, true, "--public-mix")]
    [InlineData(1.0, 0, false, "--warm-start")]
    [InlineData(1.0, 201, true, "--public-mix-until")]
    public void Validate_BadPublicMix_RefusedNamingTheOption(double mix, int until, bool warmStart, string named)
    {
        var options = new ExperimentOptions
        {
            DataDirectory = "/nonexistent/ncbi",
            WarmStartDirectory = warmStart ? "/nonexistent/bc5cdr" : null,
            Rounds = 200,
            PublicMix = mix,
            PublicMixUntil = until,
        };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(named, error.Message, StringComparison.Ordinal);
    }

    private static float[] Round(float[] initial, float[][] deltas, double[]? server, double serverLr)
    {
        float[][] copies = [.. deltas.Select(x => (float[])x.Clone())];
        var random = Sites.Select((_, i) => new DeterministicRandomSource(100 + i)).ToArray();
        try
        {
            using var secAgg = new InProcessSecureAggregation("public-mix-test", Sites, l2Clip: 10, siteNoiseMultiplier: 0, weightCap: 1000, serverLearningRate: serverLr);
            return secAgg.RunRound(1, initial, copies, Examples, random, serverUpdate: server);
        }
        finally
        {
            foreach (DeterministicRandomSource r in random)
            {
                r.Dispose();
            }
        }
    }
}
