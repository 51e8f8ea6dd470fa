using FsCheck;
using FsCheck.Xunit;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// The masking-graph policy (aggregator and agent setting <c>Graph</c>): what each policy plans, that a round over the
/// sparse plan still yields the exact sum with dropouts, and which announced graphs a site accepts.
/// </summary>
public sealed class GraphPolicyTests
{
    [Theory]
    [InlineData(132)]
    [InlineData(160)]
    [InlineData(500)]
    public void Plan_SparsePolicyModerateCohort_HararyGraphMeetingTheBounds(int n)
    {
        GraphPlan sparse = GraphPlanner.Plan(n, GraphPolicy.Sparse);
        GraphPlan complete = GraphPlanner.Plan(n, GraphPolicy.Complete);

        Assert.Equal(new GraphPlan(n, n - 1, (n / 2) + 1, true), complete);
        Assert.Equal(new GraphPlan(n, 130, 66, false), sparse); // γ = 0.05, δ = 0.3: the smallest even k that meets both bounds
        Assert.Null(GraphPlanner.CheckAnnounced(n, sparse.Degree, sparse.Threshold, GraphPolicy.Sparse));
    }

    [Theory]
    [InlineData(100)]
    [InlineData(131)]
    public void Plan_SparsePolicyCohortTooSmallForAnyHararyDegree_CompleteGraph(int n)
    {
        // Below n = 132 no even k < n - 1 meets both bounds, so "sparse" falls back to the complete graph.
        Assert.Equal(new GraphPlan(n, n - 1, (n / 2) + 1, true), GraphPlanner.Plan(n, GraphPolicy.Sparse));
    }

    [Fact]
    public void Plan_CohortAboveCompleteGraphLimit_BothPoliciesPlanTheSameHararyGraph()
    {
        GraphPlan complete = GraphPlanner.Plan(GraphPlanner.CompleteGraphLimit + 1, GraphPolicy.Complete);

        Assert.False(complete.IsComplete);
        Assert.Equal(complete, GraphPlanner.Plan(GraphPlanner.CompleteGraphLimit + 1, GraphPolicy.Sparse));
        Assert.Equal(complete, GraphPlanner.Plan(GraphPlanner.CompleteGraphLimit + 1));
    }

    [Theory]
    [InlineData("complete", GraphPolicy.Complete)]
    [InlineData("sparse", GraphPolicy.Sparse)]
    [InlineData(" Sparse ", GraphPolicy.Sparse)]
    [InlineData("COMPLETE", GraphPolicy.Complete)]
    public void TryParsePolicy_KnownSpelling_Parses(string value, GraphPolicy expected)
    {
        Assert.True(GraphPlanner.TryParsePolicy(value, out GraphPolicy policy));
        Assert.Equal(expected, policy);
        Assert.Equal(expected, GraphPlanner.TryParsePolicy(GraphPlanner.PolicyName(policy), out GraphPolicy again) ? again : (GraphPolicy)(-1));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("harary")]
    [InlineData("auto")]
    [InlineData("complete,sparse")]
    public void TryParsePolicy_UnknownSpelling_Refused(string? value)
    {
        Assert.False(GraphPlanner.TryParsePolicy(value, out _));
    }

    [Fact]
    public void Run_SparsePolicyWithDropoutsAtSeveralStages_SumEqualsExactSumOfContributors()
    {
        // The sparse plan for 64 sites expecting 15% dropout (at the default 30% the Harary graph starts at 132 sites,
        // too slow for a unit test; the plan there is checked above): k = 34, t = 18.
        const int n = 64;
        GraphPlan plan = GraphPlanner.Plan(n, GraphPolicy.Sparse, dropoutFraction: 0.15);
        Assert.Equal(new GraphPlan(n, 34, 18, false), plan);
        using var fx = new ProtocolFixture(n, seed: 17, vectorLength: 48, threshold: plan.Threshold, degree: plan.Degree);
        Assert.False(fx.Parameters.Graph.IsComplete);
        Assert.Equal(34, fx.Parameters.Graph.Neighbors(1).Count);
        var rng = new Random(5);
        int[] order = [.. Enumerable.Range(1, n).OrderBy(_ => rng.Next())];
        // 10% drop before sending a masked input (their pairwise masks must be removed), 3% more after it (their
        // self-masks must be removed without their help), one at ShareKeys (never shared its keys).
        int[] beforeInput = [.. order.Take(6)];
        int[] beforeUnmask = [.. order.Skip(6).Take(2)];
        int[] beforeShares = [.. order.Skip(8).Take(1)];
        var dropouts = beforeInput.Select(i => new SimulatedDropout(i, ProtocolStage.MaskedInputCollection))
            .Concat(beforeUnmask.Select(i => new SimulatedDropout(i, ProtocolStage.Unmasking)))
            .Concat(beforeShares.Select(i => new SimulatedDropout(i, ProtocolStage.ShareKeys)))
            .ToArray();

        SimulationResult result = SecAggSimulation.Run(fx.Parameters, fx.Identities, fx.Inputs, dropouts, fx.Random, serverParallelism: 2);

        int[] contributors = [.. Enumerable.Range(1, n).Except(beforeInput).Except(beforeShares)];
        Assert.Equal(contributors, result.Aggregation.Contributors);
        Assert.Equal(beforeInput.Order(), result.Aggregation.DroppedBeforeInput.Order());
        Assert.Equal(fx.ExpectedSum(contributors), result.Aggregation.Sum);
        // Against a wrong answer that happens to look right: the sum differs from the sum with one contributor less.
        Assert.NotEqual(fx.ExpectedSum(contributors.Skip(1)), result.Aggregation.Sum);
    }

    [Fact]
    public void CheckAnnounced_CompleteGraph_AcceptedUnderBothPolicies()
    {
        Assert.Null(GraphPlanner.CheckAnnounced(160, 159, 81, GraphPolicy.Complete));
        Assert.Null(GraphPlanner.CheckAnnounced(160, 159, 81, GraphPolicy.Sparse));
    }

    [Fact]
    public void CheckAnnounced_SparseGraphUpToTheLimitUnderCompletePolicy_DeclinedNamingThePolicy()
    {
        string? reason = GraphPlanner.CheckAnnounced(500, 130, 66, GraphPolicy.Complete);

        Assert.Equal("the round uses a sparse masking graph (k = 130) for 500 sites; this site's Graph policy is complete, " +
            "which accepts a sparse graph only above 512 sites", reason);
    }

    [Fact]
    public void CheckAnnounced_SparseGraphAboveTheLimitUnderCompletePolicy_Accepted()
    {
        GraphPlan plan = GraphPlanner.Plan(1000);

        Assert.Null(GraphPlanner.CheckAnnounced(1000, plan.Degree, plan.Threshold, GraphPolicy.Complete));
    }

    [Theory]
    [InlineData(100, 10, 6, GraphPolicy.Sparse)] // P[Bin(11, 0.05) ≥ 6] ≈ 2^-17
    [InlineData(4, 2, 2, GraphPolicy.Sparse)]
    [InlineData(1000, 10, 6, GraphPolicy.Complete)] // above the limit, but too small a neighbourhood
    public void CheckAnnounced_SparseGraphBelowThePrivacyBound_Declined(int n, int k, int t, GraphPolicy policy)
    {
        string? reason = GraphPlanner.CheckAnnounced(n, k, t, policy);

        Assert.Equal($"the sparse masking graph's threshold t = {t} of {k + 1} share holders does not meet the 2^-40 privacy bound " +
            "for an assumed corrupt fraction of 0.05", reason);
    }

    [Fact]
    public void Threshold_SparsePlanWithConfiguredThresholdBelowThePlanners_RaisedToThePlanners()
    {
        // With γ = 0.3 the privacy bound needs more than a bare majority of the k + 1 holders.
        GraphPlan plan = GraphPlanner.Plan(5000, GraphPolicy.Sparse, corruptFraction: 0.3, dropoutFraction: 0.1);
        Assert.False(plan.IsComplete);
        Assert.True(plan.Threshold > ((plan.Degree + 1) / 2) + 1, $"k = {plan.Degree}, t = {plan.Threshold}");

        Assert.Equal(plan.Threshold, FederatedAveraging.Threshold(plan, configuredThreshold: 2));
        Assert.Equal(plan.Degree + 1, FederatedAveraging.Threshold(plan, configuredThreshold: 100_000));
        GraphPlan complete = GraphPlanner.Plan(10, GraphPolicy.Complete);
        Assert.Equal(6, FederatedAveraging.Threshold(complete, configuredThreshold: 2));
        Assert.Equal(8, FederatedAveraging.Threshold(complete, configuredThreshold: 8));
    }

    /// <summary>The cohort sizes the threshold properties enumerate under each policy: well past the complete policy's limit (512) and the sparse degree (k = 130).</summary>
    private static int EnumeratedSizes(GraphPolicy policy) => policy == GraphPolicy.Complete ? 640 : 330;

    /// <summary>Configured thresholds the properties try: automatic, small, around the Harary t = 66 of 131 holders, large.</summary>
    private static readonly int[] ConfiguredThresholds = [0, 2, 3, 7, 40, 65, 66, 67, 100, 131, 132, 257, 300, 10_000];

    /// <summary>The plans of cohorts 0 … <see cref="EnumeratedSizes"/> under each policy (null below 2), planned once.</summary>
    private static readonly Lazy<Dictionary<GraphPolicy, GraphPlan?[]>> Plans = new(() => new()
    {
        [GraphPolicy.Complete] = PlanEvery(GraphPolicy.Complete),
        [GraphPolicy.Sparse] = PlanEvery(GraphPolicy.Sparse),
    });

    private static GraphPlan?[] PlanEvery(GraphPolicy policy) => [.. Enumerable.Range(0, EnumeratedSizes(policy) + 1).Select(n => n < 2 ? null : GraphPlanner.Plan(n, policy))];

    /// <summary>
    /// How t depends on n, over every cohort size: the planner's complete-graph sizes come first and t grows with n over
    /// them; from the first Harary size on the plan (k and t) is the same for every n. What
    /// <see cref="FederatedAveraging.SmallestThreshold"/> relies on.
    /// </summary>
    [Theory]
    [InlineData(GraphPolicy.Complete)]
    [InlineData(GraphPolicy.Sparse)]
    public void Threshold_EveryCohortSize_GrowsOverTheCompleteGraphThenConstantOverTheHararyGraph(GraphPolicy policy)
    {
        GraphPlan?[] plans = Plans.Value[policy];
        foreach (int configured in ConfiguredThresholds)
        {
            GraphPlan? firstSparse = null;
            int previous = 0;
            for (int n = 2; n <= EnumeratedSizes(policy); n++)
            {
                GraphPlan plan = plans[n]!;
                int t = FederatedAveraging.Threshold(plan, configured);
                Assert.InRange(t, 2, plan.Degree + 1);
                if (firstSparse is null && plan.IsComplete)
                {
                    Assert.True(t >= previous, $"{policy}, Threshold {configured}: t = {t} at n = {n} below t = {previous} at n = {n - 1}");
                    previous = t;
                    continue;
                }

                Assert.False(plan.IsComplete, $"{policy}: a complete graph at n = {n} after the Harary graph of n = {firstSparse?.CohortSize}");
                firstSparse ??= plan;
                Assert.Equal((firstSparse.Degree, firstSparse.Threshold), (plan.Degree, plan.Threshold));
                Assert.Equal(FederatedAveraging.Threshold(firstSparse, configured), t);
            }

            Assert.NotNull(firstSparse);
        }
    }

    /// <summary>
    /// The drop the aggregator's start-up check must see: under the complete policy t falls from 257 at 512 sites to the
    /// Harary graph's 66 at 513; under the sparse policy (with the planner's γ and δ) t happens to grow with n throughout,
    /// reaching 66 at n = 130 (131 is the last complete size) and staying there.
    /// </summary>
    [Fact]
    public void Threshold_AroundTheSwitchToTheHararyGraph_CompleteDropsSparseDoesNot()
    {
        Assert.Equal(257, FederatedAveraging.Threshold(Plans.Value[GraphPolicy.Complete][512]!, 0));
        Assert.Equal(66, FederatedAveraging.Threshold(Plans.Value[GraphPolicy.Complete][513]!, 0));
        Assert.Equal(GraphPlanner.CompleteGraphLimit + 1, Enumerable.Range(2, EnumeratedSizes(GraphPolicy.Complete) - 1).First(n => !Plans.Value[GraphPolicy.Complete][n]!.IsComplete));
        Assert.Equal(132, Enumerable.Range(2, EnumeratedSizes(GraphPolicy.Sparse) - 1).First(n => !Plans.Value[GraphPolicy.Sparse][n]!.IsComplete));
        Assert.Equal(66, FederatedAveraging.Threshold(Plans.Value[GraphPolicy.Sparse][131]!, 0));
        Assert.Equal(66, FederatedAveraging.Threshold(Plans.Value[GraphPolicy.Sparse][132]!, 0));

        Assert.Equal((513, 66), FederatedAveraging.SmallestThreshold(300, 10_000, GraphPolicy.Complete, 0));
        Assert.Equal((300, 151), FederatedAveraging.SmallestThreshold(300, 512, GraphPolicy.Complete, 0));
        Assert.Equal((513, 100), FederatedAveraging.SmallestThreshold(300, 20_000, GraphPolicy.Complete, 100));
        Assert.Equal((2, 2), FederatedAveraging.SmallestThreshold(2, 20_000, GraphPolicy.Complete, 0));
        Assert.Equal((300, 66), FederatedAveraging.SmallestThreshold(300, 20_000, GraphPolicy.Sparse, 0));
    }

    /// <summary><see cref="FederatedAveraging.SmallestThreshold"/> is the minimum of t over every cohort in the range, at its smallest such size.</summary>
    [Property(MaxTest = 300)]
    public void SmallestThreshold_AnyCohortRange_TheMinimumOverEverySize(PositiveInt a, PositiveInt b, PositiveInt which, bool sparse)
    {
        GraphPolicy policy = sparse ? GraphPolicy.Sparse : GraphPolicy.Complete;
        int fewest = 2 + (a.Get % (EnumeratedSizes(policy) - 1));
        int most = fewest + (b.Get % (EnumeratedSizes(policy) - fewest + 1));
        int configured = ConfiguredThresholds[which.Get % ConfiguredThresholds.Length];

        int bestN = fewest;
        int bestT = int.MaxValue;
        for (int n = fewest; n <= most; n++)
        {
            int t = FederatedAveraging.Threshold(Plans.Value[policy][n]!, configured);
            if (t < bestT)
            {
                (bestN, bestT) = (n, t);
            }
        }

        Assert.Equal((bestN, bestT), FederatedAveraging.SmallestThreshold(fewest, most, policy, configured));
    }
}
