using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Tests;

/// <summary>The coordinator lease's pure decisions: when to renew, when the lease is lost, who may acquire, fencing.</summary>
public sealed class LeaseRulesTests
{
    private static readonly LeaseTerms Terms = new(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(3));
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(0.0, LeaseStep.Hold)]
    [InlineData(2.999, LeaseStep.Hold)]
    [InlineData(3.0, LeaseStep.Renew)]
    [InlineData(11.999, LeaseStep.Renew)]
    [InlineData(12.0, LeaseStep.Lost)] // 15 s lease − 3 s margin: stop before any other silo may take it
    [InlineData(60.0, LeaseStep.Lost)]
    [InlineData(-0.001, LeaseStep.Lost)] // a clock that went backwards proves nothing
    public void Next_AgeOfLastGrant_HoldRenewOrLost(double seconds, LeaseStep expected)
    {
        Assert.Equal(expected, LeaseRules.Next(Terms, TimeSpan.FromSeconds(seconds)));
    }

    [Fact]
    public void Remaining_LocalValidityMinusAge_ZeroOnceLost()
    {
        Assert.Equal(TimeSpan.FromSeconds(7), LeaseRules.Remaining(Terms, TimeSpan.FromSeconds(5)));
        Assert.Equal(TimeSpan.Zero, LeaseRules.Remaining(Terms, TimeSpan.FromSeconds(12)));
        Assert.Equal(TimeSpan.FromSeconds(12), Terms.LocalValidity);
    }

    [Fact]
    public void MayAcquire_OnlyWhenNoRowOrExpired()
    {
        Assert.True(LeaseRules.MayAcquire(null, Now));
        Assert.False(LeaseRules.MayAcquire(new("f", "silo-a", 3, Now.AddMilliseconds(1)), Now));
        Assert.True(LeaseRules.MayAcquire(new("f", "silo-a", 3, Now), Now));
        Assert.Equal(1, LeaseRules.NextEpoch(null));
        Assert.Equal(4, LeaseRules.NextEpoch(new("f", "silo-a", 3, Now)));
    }

    [Fact]
    public void Fence_HolderAtItsEpochBeforeExpiry_Allowed()
    {
        Assert.Null(LeaseRules.Fence(new("f", "silo-a", 3, Now.AddSeconds(1)), "silo-a", 3, Now));
    }

    [Fact]
    public void Fence_StaleEpochOtherHolderExpiredOrMissing_RefusedWithReason()
    {
        string? stale = LeaseRules.Fence(new("f", "silo-b", 4, Now.AddSeconds(10)), "silo-a", 3, Now);
        Assert.Equal("the coordinator lease is at epoch 4 (held by silo-b), this writer holds epoch 3", stale);

        string? other = LeaseRules.Fence(new("f", "silo-b", 3, Now.AddSeconds(10)), "silo-a", 3, Now);
        Assert.Equal("the coordinator lease of epoch 3 is held by silo-b, not silo-a", other);

        string? expired = LeaseRules.Fence(new("f", "silo-a", 3, Now), "silo-a", 3, Now);
        Assert.StartsWith("the coordinator lease of epoch 3 expired at 2026-11-30T12:00:00", expired, StringComparison.Ordinal);

        Assert.Equal("no coordinator lease exists for this federation", LeaseRules.Fence(null, "silo-a", 1, Now));
    }

    [Fact]
    public void Validate_BadTerms_EveryProblemNamed()
    {
        Assert.Empty(LeaseTerms.Default.Validate("SecureFed:Cluster:"));
        IReadOnlyList<string> margin = new LeaseTerms(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10)).Validate("SecureFed:Cluster:");
        Assert.Equal(["SecureFed:Cluster:LeaseSafetyMarginSeconds must be above 0 and below LeaseSeconds (10), got 10."], margin);
        IReadOnlyList<string> renew = new LeaseTerms(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(8), TimeSpan.FromSeconds(3)).Validate("SecureFed:Cluster:");
        Assert.Equal(["SecureFed:Cluster:LeaseRenewSeconds must be above 0 and below LeaseSeconds − LeaseSafetyMarginSeconds (7), got 8."], renew);
        IReadOnlyList<string> length = new LeaseTerms(TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(0.1), TimeSpan.FromSeconds(0.1)).Validate("SecureFed:Cluster:");
        Assert.Equal(["SecureFed:Cluster:LeaseSeconds must be between 1 and 600, got 0.5."], length);
    }

    [Fact]
    public void ClusterOptions_BadLeaseSettings_NamedWithTheOthers()
    {
        var options = new AggregatorClusterOptions { ConnectionString = "Host=127.0.0.1;Database=x", LeaseSeconds = 10, LeaseRenewSeconds = 9, SiloPort = 0 };
        IReadOnlyList<string> problems = options.Validate();
        Assert.Contains("SecureFed:Cluster:SiloPort must be between 1 and 65535, got 0.", problems);
        Assert.Contains("SecureFed:Cluster:LeaseRenewSeconds must be above 0 and below LeaseSeconds − LeaseSafetyMarginSeconds (7), got 9.", problems);
        Assert.Contains(
            "SecureFed:Cluster:LeaseSeconds, LeaseRenewSeconds and LeaseSafetyMarginSeconds must be finite numbers of seconds.",
            new AggregatorClusterOptions { ConnectionString = "Host=h;Database=d", LeaseSeconds = double.NaN }.Validate());
    }
}
