using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

public sealed class SecureAggregationTests
{
    public static TheoryData<int, int> CohortsAndSeeds()
    {
        var data = new TheoryData<int, int>();
        foreach (int n in new[] { 3, 10, 50 })
        {
            for (int seed = 1; seed <= 4; seed++)
            {
                data.Add(n, seed);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CohortsAndSeeds))]
    public void Run_RandomDropoutsAtEveryStage_SumEqualsExactSumOfSurvivors(int n, int seed)
    {
        using var fx = new ProtocolFixture(n, seed, vectorLength: n == 50 ? 64 : 300, bitWidth: seed % 2 == 0 ? 32 : 20);
        var rng = new Random(seed * 31);
        int t = fx.Parameters.Threshold;
        // Drop up to n - t sites, each before a random stage, so that at least t remain to the end.
        int drops = rng.Next(0, n - t + 1);
        var stages = new[] { ProtocolStage.AdvertiseKeys, ProtocolStage.ShareKeys, ProtocolStage.MaskedInputCollection, ProtocolStage.ConsistencyCheck, ProtocolStage.Unmasking };
        var dropouts = Enumerable.Range(1, n).OrderBy(_ => rng.Next()).Take(drops)
            .Select(i => new SimulatedDropout(i, stages[rng.Next(stages.Length)])).ToArray();

        SimulationResult result = SecAggSimulation.Run(fx.Parameters, fx.Identities, fx.Inputs, dropouts, fx.Random, serverParallelism: 2);

        var expectedContributors = Enumerable.Range(1, n)
            .Where(i => !dropouts.Any(d => d.Index == i && d.BeforeStage <= ProtocolStage.MaskedInputCollection)).ToArray();
        Assert.Equal(expectedContributors, result.Aggregation.Contributors);
        Assert.Equal(fx.ExpectedSum(expectedContributors), result.Aggregation.Sum);
    }

    [Fact]
    public void Run_SitesDropAfterShareKeys_TheirMasksAreRemovedAndTheyAreReported()
    {
        using var fx = new ProtocolFixture(10, 42);
        var dropouts = new[] { new SimulatedDropout(2, ProtocolStage.MaskedInputCollection), new SimulatedDropout(9, ProtocolStage.MaskedInputCollection) };

        SimulationResult result = SecAggSimulation.Run(fx.Parameters, fx.Identities, fx.Inputs, dropouts, fx.Random);

        Assert.Equal([2, 9], result.Aggregation.DroppedBeforeInput);
        Assert.Equal(fx.ExpectedSum(Enumerable.Range(1, 10).Except([2, 9])), result.Aggregation.Sum);
    }

    [Theory]
    [InlineData(ProtocolStage.AdvertiseKeys)]
    [InlineData(ProtocolStage.ShareKeys)]
    [InlineData(ProtocolStage.MaskedInputCollection)]
    [InlineData(ProtocolStage.ConsistencyCheck)]
    [InlineData(ProtocolStage.Unmasking)]
    public void Run_BelowThresholdAtStage_AbortsCleanly(ProtocolStage stage)
    {
        using var fx = new ProtocolFixture(5, 3); // t = 3
        var dropouts = new[] { new SimulatedDropout(1, stage), new SimulatedDropout(2, stage), new SimulatedDropout(3, stage) };

        var ex = Assert.Throws<RoundAbortedException>(() => SecAggSimulation.Run(fx.Parameters, fx.Identities, fx.Inputs, dropouts, fx.Random));

        Assert.Equal(stage, ex.Stage);
        Assert.Contains("threshold is 3", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_HararyGraph_SumIsExactWithDropouts()
    {
        using var fx = new ProtocolFixture(40, 5, vectorLength: 50, degree: 12, threshold: 8);
        Assert.False(fx.Parameters.Graph.IsComplete);
        var dropouts = new[] { new SimulatedDropout(3, ProtocolStage.MaskedInputCollection), new SimulatedDropout(17, ProtocolStage.ShareKeys), new SimulatedDropout(30, ProtocolStage.Unmasking) };

        SimulationResult result = SecAggSimulation.Run(fx.Parameters, fx.Identities, fx.Inputs, dropouts, fx.Random);

        Assert.Equal(fx.ExpectedSum(Enumerable.Range(1, 40).Except([3, 17])), result.Aggregation.Sum);
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(64)]
    public void MaskInput_PairMasksOnSeveralThreads_IdenticalToOneThread(int threads)
    {
        // Same seed, same keys and shares in both fixtures; only the masking threads differ.
        using var sequential = new ProtocolFixture(30, 23, vectorLength: 1_001);
        using var parallel = new ProtocolFixture(30, 23, vectorLength: 1_001);
        var (oneThread, server1) = sequential.ThroughShareKeys(maskingParallelism: 1);
        var (severalThreads, server2) = parallel.ThroughShareKeys(maskingParallelism: threads);
        try
        {
            foreach (int u in (int[])[1, 2, 15, 30])
            {
                var expected = new uint[1_001];
                var actual = new uint[1_001];
                oneThread[u - 1].MaskInput(server1.SharesFor(u), sequential.Inputs[u - 1], expected);
                severalThreads[u - 1].MaskInput(server2.SharesFor(u), parallel.Inputs[u - 1], actual);

                Assert.Equal(expected, actual);
                Assert.NotEqual(sequential.Inputs[u - 1], actual);
            }
        }
        finally
        {
            foreach (ClientRound c in oneThread.Concat(severalThreads))
            {
                c.Dispose();
            }
        }
    }

    [Fact]
    public void Finish_OneOrSeveralThreads_SumIsExactWithDropouts()
    {
        int[] dropped = [2, 9, 10, 21];
        foreach (int threads in (int[])[1, 3])
        {
            using var fx = new ProtocolFixture(24, 31, vectorLength: 513);
            var (clients, server) = fx.ThroughShareKeys(maskingParallelism: threads);
            try
            {
                var y = new uint[513];
                foreach (ClientRound c in clients.Where(c => !dropped.Contains(c.Index)))
                {
                    c.MaskInput(server.SharesFor(c.Index), fx.Inputs[c.Index - 1], y);
                    server.AcceptMaskedInput(c.Index, y);
                }

                IReadOnlyList<int> survivors = server.CloseMaskedInput();
                foreach (ClientRound c in clients.Where(c => survivors.Contains(c.Index)))
                {
                    server.AcceptConsistencySignature(c.SignSurvivors(survivors));
                }

                UnmaskRequest request = server.CloseConsistency();
                foreach (ClientRound c in clients.Where(c => survivors.Contains(c.Index)))
                {
                    server.AcceptUnmaskResponse(c.Unmask(request));
                }

                AggregationResult result = server.Finish(threads);

                Assert.Equal(fx.ExpectedSum(survivors), result.Sum);
                Assert.Equal(dropped, result.DroppedBeforeInput);
            }
            finally
            {
                foreach (ClientRound c in clients)
                {
                    c.Dispose();
                }
            }
        }
    }

    [Fact]
    public void MaskInput_ZeroInput_MaskedWordsLookUniform()
    {
        using var fx = new ProtocolFixture(4, 11, vectorLength: 40_000, bitWidth: 32);
        var (clients, server) = fx.ThroughShareKeys();
        var masked = new uint[fx.Parameters.VectorLength];
        clients[0].MaskInput(server.SharesFor(1), new uint[fx.Parameters.VectorLength], masked);

        // Chi-square over the top 8 bits (256 bins): a zero input must come out indistinguishable from uniform.
        var bins = new long[256];
        foreach (uint w in masked)
        {
            bins[w >> 24]++;
        }

        double expected = masked.Length / 256.0;
        double chi2 = bins.Sum(b => (b - expected) * (b - expected) / expected);
        Assert.InRange(chi2, 170, 350); // 255 degrees of freedom; p ≈ 1e-5 on each side
        foreach (var c in clients)
        {
            c.Dispose();
        }
    }

    [Fact]
    public void GraphPlanner_LargeCohort_DegreeGrowsLogarithmically()
    {
        GraphPlan small = GraphPlanner.Plan(1000, forceComplete: false);
        GraphPlan large = GraphPlanner.Plan(10_000, forceComplete: false);

        Assert.False(small.IsComplete);
        Assert.True(small.Degree < 200, $"k = {small.Degree}");
        Assert.True(large.Degree < small.Degree * 2, $"k(1000) = {small.Degree}, k(10000) = {large.Degree}");
        Assert.True(2 * small.Threshold > small.Degree + 1);
    }

    [Fact]
    public void GraphPlanner_SmallCohort_UsesCompleteGraphWithMajorityThreshold()
    {
        GraphPlan plan = GraphPlanner.Plan(3);

        Assert.True(plan.IsComplete);
        Assert.Equal(2, plan.Degree);
        Assert.Equal(2, plan.Threshold);
    }

    [Fact]
    public void MaskingGraph_Harary_IsRegularAndSymmetric()
    {
        var graph = MaskingGraph.Harary(101, 10, new byte[32]);

        for (int u = 1; u <= 101; u++)
        {
            var neighbors = graph.Neighbors(u);
            Assert.Equal(10, neighbors.Count);
            Assert.DoesNotContain(u, neighbors);
            Assert.All(neighbors, v => Assert.True(graph.AreNeighbors(v, u)));
        }
    }

    [Fact]
    public void RoundParameters_ThresholdAtMostHalf_IsRejected()
    {
        using var fx = new ProtocolFixture(4, 1);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            new RoundParameters("f", 1, "s", fx.Parameters.Participants, 2, 3, 10, 32));
        Assert.Contains("half", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UpdateCodec_SumOfEncodedUpdates_DecodesToWeightedSum()
    {
        var codec = UpdateCodec.Plan(parameterCount: 1000, clipBound: 1.0, cohortSize: 3, noiseHeadroom: 0, weightCap: 1000);
        var rng = new Random(3);
        using var random = new SecureFed.Testing.DeterministicRandomSource(9);
        var updates = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 1000).Select(_ => (float)((rng.NextDouble() * 2) - 1) * 0.01f).ToArray()).ToArray();
        var sum = new uint[codec.VectorLength];
        var word = new uint[codec.VectorLength];
        long[] examples = [100, 250, 5000];
        for (int i = 0; i < 3; i++)
        {
            codec.Encode(updates[i], examples[i], word, random);
            ModularVector.Add(sum, word, codec.BitWidth);
        }

        (double[] total, long weight) = codec.Decode(sum);

        Assert.Equal(100 + 250 + 1000, weight);
        for (int j = 0; j < 1000; j++)
        {
            double exact = updates.Sum(u => (double)u[j]);
            Assert.InRange(total[j] - exact, -3.0 / codec.Scale, 3.0 / codec.Scale);
        }
    }
}
