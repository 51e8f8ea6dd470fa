using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The federation ledger deleted (the aggregator then created a new one) or cut after a whole line verifies on its own and
/// would let the federation spend its site-level budget again. The aggregator's audit log records every charge as
/// <c>privacy.spent</c>, so the aggregator refuses to start with a ledger behind it, and leaves the folder as it was.
/// </summary>
public sealed class AggregatorLedgerBehindAuditTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-fed-ledger-" + Guid.NewGuid().ToString("N"));
    private readonly AggregatorOptions _options;

    public AggregatorLedgerBehindAuditTests()
    {
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "behind", ["site-a", "site-b"], "127.0.0.1"));
        _options = new AggregatorOptions { Federation = "behind", KitDirectory = fed.AggregatorKitDirectory, DataDirectory = Path.Combine(_dir, "aggregator") };
    }

    private string LedgerPath => AggregatorState.PrivacyLedgerPath(_options.DataDirectory);

    [Fact]
    public void AggregatorStateOpen_LedgerDeletedAfterTwoCharges_RefusesNamingBothAndCreatesNoLedger()
    {
        ChargeTwoRounds();
        File.Delete(LedgerPath);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.Contains($"Privacy ledger '{Path.GetFullPath(LedgerPath)}' is behind the audit log", ex.Message, StringComparison.Ordinal);
        Assert.Contains("shows 2 appended", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(LedgerPath));
    }

    [Fact]
    public void AggregatorStateOpen_LedgerCutAfterAWholeLine_RefusesAndKeepsIt()
    {
        ChargeTwoRounds();
        string[] lines = File.ReadAllLines(LedgerPath);
        byte[] cut = System.Text.Encoding.UTF8.GetBytes(string.Join('\n', lines[..2]) + "\n");
        File.WriteAllBytes(LedgerPath, cut);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.Contains("under-report", ex.Message, StringComparison.Ordinal);
        Assert.Equal(cut, File.ReadAllBytes(LedgerPath));
    }

    [Fact]
    public void AggregatorStateOpen_LedgerIntact_Reopens()
    {
        ChargeTwoRounds();

        using AggregatorState state = AggregatorState.Open(_options, new float[8]);

        Assert.True(state.Budget.Spent(1e-5) > 0);
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

    /// <summary>Charges two rounds as the coordinator does: the ledger entry, then its <c>privacy.spent</c> audit line.</summary>
    private void ChargeTwoRounds()
    {
        using AggregatorState state = AggregatorState.Open(_options, new float[8]);
        for (long round = 1; round <= 2; round++)
        {
            double epsilon = state.Budget.Record(round, 0.05, 1e-5);
            state.Audit.Append(AuditEvents.PrivacySpent, f => f.Add("round", round).Add("guarantee", "site").Add("rho", 0.05).Add("epsilon", epsilon).Add("delta", 1e-5).Add("budget", 10.0));
        }
    }
}
