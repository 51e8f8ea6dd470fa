using SecureFed.Privacy;

namespace SecureFed.Privacy.Tests;

/// <summary>
/// The record-level collusion guarantee (<see cref="Guarantee.RecordCollusion"/>): every record entry counts for it
/// unless the entry just before is a collusion entry of the same round (split patient-level noise), which then counts
/// instead; it is replayed, hash-chained and checked against a budget like the other guarantees.
/// </summary>
public sealed class PrivacyLedgerCollusionTests : IDisposable
{
    private const double Delta = 1e-5;
    private readonly string _directory = Directory.CreateTempSubdirectory("securefed-ledger-collusion-").FullName;

    private string LedgerPath => Path.Combine(_directory, "privacy-ledger.jsonl");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Spent_FullNoiseThenSplitRounds_RecordAtSigmaCollusionAtOwnShareOverAllSteps()
    {
        const double q = 0.05;
        const double sigma = 1.2;
        double share = sigma / Math.Sqrt(3);
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, "site-a");

        // Round 1: whole σ (no collusion entry). Rounds 2-3: split into 3 shares, one step each.
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(q, sigma, 20), Delta);
        for (long r = 2; r <= 3; r++)
        {
            ledger.Append(r, Guarantee.RecordCollusion, PlannedMechanism.SubsampledGaussian(q, share, 1), Delta);
            ledger.Append(r, Guarantee.Record, PlannedMechanism.SubsampledGaussian(q, sigma, 1), Delta);
        }

        var record = new RdpAccountant(RdpOrders.Opacus);
        record.AddSubsampledGaussian(q, sigma, 22);
        var collusion = new RdpAccountant(RdpOrders.Opacus);
        collusion.AddSubsampledGaussian(q, sigma, 20);
        collusion.AddSubsampledGaussian(q, share, 2);
        Assert.Equal(record.GetPrivacySpent(Delta).Epsilon, ledger.Spent(Guarantee.Record, Delta).Epsilon, 12);
        Assert.Equal(collusion.GetPrivacySpent(Delta).Epsilon, ledger.Spent(Guarantee.RecordCollusion, Delta).Epsilon, 12);
        Assert.True(ledger.Spent(Guarantee.RecordCollusion, Delta).Epsilon > ledger.Spent(Guarantee.Record, Delta).Epsilon);

        // Reopening replays the same two numbers from the file (and verifies the chain and every epsilon_after).
        PrivacyLedger reopened = PrivacyLedger.OpenReadOnly(LedgerPath);
        Assert.Equal(ledger.Spent(Guarantee.RecordCollusion, Delta).Epsilon, reopened.Spent(Guarantee.RecordCollusion, Delta).Epsilon, 12);
        Assert.Equal(ledger.Spent(Guarantee.Record, Delta).Epsilon, reopened.Spent(Guarantee.Record, Delta).Epsilon, 12);
        Assert.Contains("\"guarantee\":\"record-collusion\"", File.ReadAllText(LedgerPath), StringComparison.Ordinal);
    }

    [Fact]
    public void Spent_NoSplitRounds_CollusionEqualsRecord()
    {
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, "site-a");
        for (long r = 1; r <= 3; r++)
        {
            ledger.Append(r, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.1, 1.0, 10), Delta);
        }

        Assert.Equal(ledger.Spent(Guarantee.Record, Delta).Epsilon, ledger.Spent(Guarantee.RecordCollusion, Delta).Epsilon, 12);
    }

    [Fact]
    public void Check_CollusionBudget_RefusesPastItWhileRecordBudgetStillAllows()
    {
        const double q = 0.05;
        const double sigma = 3.0;
        double share = sigma / Math.Sqrt(2);
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, "site-a");
        var sumStep = PlannedMechanism.SubsampledGaussian(q, sigma, 1);
        var ownStep = PlannedMechanism.SubsampledGaussian(q, share, 1);
        const double maxCollusion = 1.0;
        long r = 1;
        while (ledger.Check(Guarantee.RecordCollusion, ownStep, maxCollusion, Delta).Allowed)
        {
            ledger.Append(r, Guarantee.RecordCollusion, ownStep, Delta);
            ledger.Append(r, Guarantee.Record, sumStep, Delta);
            r++;
        }

        LedgerDecision refused = ledger.Check(Guarantee.RecordCollusion, ownStep, maxCollusion, Delta);
        Assert.False(refused.Allowed);
        Assert.True(r > 3, $"at least two split rounds fit a collusion budget of 1 (got {r - 1})");
        Assert.True(ledger.Spent(Guarantee.RecordCollusion, Delta).Epsilon <= maxCollusion);
        Assert.StartsWith("record-level epsilon if the aggregator and all other sites collude would reach ", refused.Reason, StringComparison.Ordinal);
        Assert.Contains("> budget 1.00 (delta 1e-05) after round " + r, refused.Reason, StringComparison.Ordinal);
        // The sum's guarantee is smaller and would still allow the step under the same budget.
        Assert.True(ledger.Check(Guarantee.Record, sumStep, maxCollusion, Delta).Allowed);
    }

    [Fact]
    public void OpenReadOnly_TamperedCollusionEpsilon_RefusedNamingTheLine()
    {
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, "site-a");
        ledger.Append(1, Guarantee.RecordCollusion, PlannedMechanism.SubsampledGaussian(0.05, 0.5, 1), Delta);
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 1), Delta);
        string[] lines = File.ReadAllLines(LedgerPath);
        // Claim the collusion step had the whole σ (a smaller ε): the replay disagrees with the recorded epsilon_after
        // (and the hash chain of the next line breaks).
        lines[1] = lines[1].Replace("\"noise_multiplier\":0.5", "\"noise_multiplier\":1", StringComparison.Ordinal);
        File.WriteAllLines(LedgerPath, lines);

        var ex = Assert.Throws<InvalidDataException>(() => PrivacyLedger.OpenReadOnly(LedgerPath));

        Assert.Contains("line 2", ex.Message, StringComparison.Ordinal);
    }
}
