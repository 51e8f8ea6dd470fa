namespace SecureFed.PrivacyAudit.Tests;

public sealed class GroupPrivacyTests
{
    [Fact]
    public void Of_GroupOfOne_IsTheGuaranteeItself()
    {
        Assert.Equal((3.0, 1e-5), GroupPrivacy.Of(3, 1e-5, 1));
    }

    [Fact]
    public void Of_GroupOfTwo_IsTwoEpsilonAndTwoEToTheEpsilonDelta()
    {
        // (rε, r·e^((r−1)ε)·δ) with r = 2, ε = 1, δ = 1e-5: (2, 2e·1e-5).
        (double epsilon, double delta) = GroupPrivacy.Of(1, 1e-5, 2)!.Value;

        Assert.Equal(2.0, epsilon, 12);
        Assert.Equal(2 * Math.E * 1e-5, delta, 15);
    }

    [Fact]
    public void Of_PureDp_StaysPure()
    {
        Assert.Equal((50.0, 0.0), GroupPrivacy.Of(0.5, 0, 100));
    }

    [Theory]
    [InlineData(8, 100)]
    [InlineData(3, 10)]
    [InlineData(1, 20)] // 20·e^19·1e-5 ≈ 3.6e4
    public void Of_DeltaReachesOne_IsVacuous(double epsilon, int r)
    {
        Assert.Null(GroupPrivacy.Of(epsilon, 1e-5, r));
    }

    [Fact]
    public void Of_InvalidArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => GroupPrivacy.Of(-1, 1e-5, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => GroupPrivacy.Of(1, 2, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => GroupPrivacy.Of(1, 1e-5, 0));
    }

    [Fact]
    public void Run_GroupsOfEpsilonDpReports_BoundRarelyExceedsTheGroupClaim()
    {
        // Each group canary is r = 5 copies; each copy leaks its group's inclusion bit through randomized response at
        // ε₀ = 0.2 (pure DP), and the attacker sums the 5 reports. Adding or removing the group changes 5 ε₀-DP reports,
        // so the group is 1-DP: the claim GroupPrivacy.Of gives. The audit on groups must not exceed it beyond its 5 %.
        const double epsilon0 = 0.2;
        const int r = 5;
        (double claim, double claimDelta) = GroupPrivacy.Of(epsilon0, 0, r)!.Value;
        var random = new Random(21);
        double keep = Math.Exp(epsilon0) / (1 + Math.Exp(epsilon0));
        int over = 0;
        double largest = 0;
        for (int trial = 0; trial < 100; trial++)
        {
            bool[] included = [.. Enumerable.Range(0, 1000).Select(_ => random.NextDouble() < 0.5)];
            double[] scores = [.. included.Select(b => Enumerable.Range(0, r).Sum(_ => (random.NextDouble() < keep) == b ? 1.0 : 0.0) + (random.NextDouble() * 1e-3))];
            double bound = OneRunAudit.Run(scores, included, claimDelta).EpsilonLowerBound;
            largest = Math.Max(largest, bound);
            over += bound > claim ? 1 : 0;
        }

        Assert.Equal(1.0, claim, 12);
        Assert.True(over <= 10, $"{over} of 100 trials bounded a group-1-DP mechanism above the group claim");
        Assert.True(largest > 0.2, $"the audit never detected the group's leak (largest bound {largest})");
    }
}
