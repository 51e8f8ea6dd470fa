using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Agent;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// What the end-to-end server-Adam tests of the cluster's coordinator share (<see cref="CoordinatorAdamTakeoverTests"/>,
/// <see cref="CoordinatorModelRetentionTests"/>): the real round coordinator with the adam rule under a fence, and what
/// one uninterrupted rule computes from the agents' recorded inputs, to compare the saved models with bit for bit.
/// </summary>
internal static class AdamCoordinatorRuns
{
    /// <summary>How long starting, running or stopping the aggregator and its agents may take.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromMinutes(2);

    /// <summary>The rule the runs configure (learning rate 0.05, τ 1e-3, default betas).</summary>
    public static ServerOptimizerOptions Rule { get; } = new() { Kind = ServerOptimizerKind.Adam, LearningRate = 0.05, Tau = 1e-3, Beta1 = 0.9, Beta2 = 0.99 };

    /// <summary>
    /// Runs the aggregator with the adam rule on <paramref name="data"/> under <paramref name="fence"/> until
    /// <paramref name="rounds"/> rounds completed, with the agents; <paramref name="settings"/> are added to the
    /// configuration and <paramref name="atStart"/> sees the state before the host starts.
    /// </summary>
    public static async Task RunAsync(FrontFederation fed, string data, int rounds, ICoordinatorFence fence, IReadOnlyDictionary<string, string?>? settings = null, Action<AggregatorState>? atStart = null)
    {
        Dictionary<string, string?> all = FrontFederation.Flatten(fed.AggregatorSettings(data, 0, rounds));
        all["SecureFed:Federation"] = fed.Federation;
        all["SecureFed:ModelSpecSha256"] = FrontFederation.SpecSha;
        all["SecureFed:ServerOptimizer"] = "adam";
        all["SecureFed:ServerLearningRate"] = "0.05";
        all["SecureFed:ServerTau"] = "0.001";
        foreach ((string key, string? value) in settings ?? new Dictionary<string, string?>())
        {
            all[key] = value;
        }

        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(all).Build();
        WebApplication app = AggregatorHost.Build(configuration, (Func<float[]>?)null, roundServers: null, fence, logging => logging.SetMinimumLevel(LogLevel.Warning));
        await using (app)
        {
            atStart?.Invoke(app.Services.GetRequiredService<AggregatorState>());
            await app.StartAsync().WaitAsync(Timeout);
            RoundCoordinator coordinator = app.Services.GetRequiredService<RoundCoordinator>();
            fed.StartAgents(AggregatorHost.BoundAddress(app), "agents");
            await coordinator.Finished.WaitAsync(Timeout);
            Assert.Null(coordinator.Failure);
            await fed.AgentsFinishedAsync(Timeout);
            await fed.StopAgentsAsync();
            await app.StopAsync().WaitAsync(Timeout);
        }
    }

    /// <summary>The round's unmasked sum: the contributors' privatized inputs added (the masks cancel), reduced to the bit width.</summary>
    public static uint[] Sum(FrontFederation fed, RoundRecord round)
    {
        UpdateCodec codec = Codec(round);
        uint[] sum = new uint[codec.VectorLength];
        foreach (string site in round.Participants)
        {
            uint[] input = fed.Inputs[(site, round.Round)];
            for (int i = 0; i < sum.Length; i++)
            {
                sum[i] += input[i];
            }
        }

        uint mask = codec.BitWidth == 32 ? uint.MaxValue : (1u << codec.BitWidth) - 1;
        for (int i = 0; i < sum.Length; i++)
        {
            sum[i] &= mask;
        }

        return sum;
    }

    /// <summary>The codec of <paramref name="round"/> as the coordinator planned it (checked against its recorded configuration).</summary>
    public static UpdateCodec Codec(RoundRecord round)
    {
        using JsonDocument config = JsonDocument.Parse(round.ConfigurationJson);
        int n = config.RootElement.GetProperty("cohort").GetArrayLength();
        int threshold = FederatedAveraging.Threshold(GraphPlanner.Plan(n, GraphPolicy.Complete), 0);
        EvaluationLayout evaluation = EvaluationLayout.Create(ModelSpec.Clinical(tiny: false).EntityTypes, 100_000);
        UpdateCodec codec = FederatedAveraging.PlanRound(FrontFederation.Parameters, 10, n, threshold, 0.5, 1000, evaluation).Codec;
        Assert.Equal(config.RootElement.GetProperty("vector_length").GetInt32(), codec.VectorLength);
        Assert.Equal(config.RootElement.GetProperty("bit_width").GetInt32(), codec.BitWidth);
        Assert.Equal(config.RootElement.GetProperty("scale").GetDouble(), codec.Scale);
        return codec;
    }
}
