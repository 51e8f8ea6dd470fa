using SecureFed.Agent;
using SecureFed.Experiments;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The experiments' in-process federated averaging is the real thing: the same round gives bit for bit the same model
/// in process (<see cref="InProcessSecureAggregation"/>) as over gRPC with mTLS by the aggregator and agent services.
/// </summary>
public sealed class InProcessEquivalenceTests : IDisposable
{
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];
    private static readonly long[] Examples = [300, 700, 1000];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-equivalence-").FullName;

    [Fact]
    public async Task RunRound_SameUpdatesAndRandomness_ModelEqualsTheGrpcServicesModelBitForBit()
    {
        // Arrange: a real federation on 127.0.0.1 (site noise z = 0.5, S = 10, weight cap 1000), each agent's stochastic
        // rounding and discrete Gaussian share drawn from a seeded source.
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), Sites, new Dictionary<string, string>
        {
            // No test here waits for a deadline to pass. 60 s, never waited out, so that a site starved for seconds on a
            // loaded machine is not dropped (TestFederation's default stage deadline is 3 s).
            ["StageTimeoutSeconds"] = "60",
            ["TrainingTimeoutSeconds"] = "60",
        });
        await fed.StartAggregatorAsync();
        var agentRandom = Sites.Select((_, i) => new DeterministicRandomSource(100 + i)).ToArray();
        try
        {
            for (int i = 0; i < Sites.Length; i++)
            {
                fed.StartAgent(Sites[i], Examples[i], updateRandom: agentRandom[i]);
            }

            await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));
        }
        finally
        {
            foreach (DeterministicRandomSource r in agentRandom)
            {
                r.Dispose();
            }
        }

        float[] overGrpc = Aggregator.ModelState.FromBytes(fed.State.Store.LoadModel(1)!, "v1");

        // Act: the same round in process: the same local updates (FakeTrainer is deterministic), the same seeded randomness.
        float[] initial = fed.InitialModel;
        var plan = new LocalTrainingPlan(1, 1, 1.0, 1.0, 0.1);
        float[][] deltas = [.. Sites.Select((site, i) => new FakeTrainer(site, TestFederation.Parameters, Examples[i]).Train(initial, plan, CancellationToken.None).Delta)];
        var localRandom = Sites.Select((_, i) => new DeterministicRandomSource(100 + i)).ToArray();
        float[] inProcess;
        // The aggregator announces federated evaluation by default (no entity types configured, count cap 100000): the
        // in-process runner uses the same layout, so even the (zero) evaluation slots match word for word.
        using (var secAgg = new InProcessSecureAggregation(TestFederation.FederationName, Sites, l2Clip: 10, siteNoiseMultiplier: 0.5, weightCap: 1000,
            evaluation: Protocol.EvaluationLayout.Create([], 100_000)))
        {
            inProcess = secAgg.RunRound(1, initial, deltas, Examples, localRandom);

            // The privatized inputs are the agents' own, word for word.
            for (int i = 0; i < Sites.Length; i++)
            {
                Assert.Equal(fed.Inputs[(Sites[i], 1)], secAgg.LastInputs[i]);
            }
        }

        foreach (DeterministicRandomSource r in localRandom)
        {
            r.Dispose();
        }

        // Assert: bit for bit.
        Assert.Equal(overGrpc.Length, inProcess.Length);
        Assert.Equal(Aggregator.ModelState.ToBytes(overGrpc), Aggregator.ModelState.ToBytes(inProcess));
        Assert.NotEqual(Aggregator.ModelState.ToBytes(initial), Aggregator.ModelState.ToBytes(inProcess));
    }

    [Fact]
    public void RunRound_DifferentRandomness_ModelDiffers()
    {
        // Guards the test above: the comparison is sensitive to the rounding and noise draws.
        float[] initial = new float[TestFederation.Parameters];
        var plan = new LocalTrainingPlan(1, 1, 1.0, 1.0, 0.1);
        float[] Run(int seedBase)
        {
            float[][] deltas = [.. Sites.Select((site, i) => new FakeTrainer(site, TestFederation.Parameters, Examples[i]).Train(initial, plan, CancellationToken.None).Delta)];
            var random = Sites.Select((_, i) => new DeterministicRandomSource(seedBase + i)).ToArray();
            try
            {
                using var secAgg = new InProcessSecureAggregation(TestFederation.FederationName, Sites, 10, 0.5, 1000);
                return secAgg.RunRound(1, initial, deltas, Examples, random);
            }
            finally
            {
                foreach (DeterministicRandomSource r in random)
                {
                    r.Dispose();
                }
            }
        }

        Assert.Equal(Run(100), Run(100));
        Assert.NotEqual(Run(100), Run(200));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
