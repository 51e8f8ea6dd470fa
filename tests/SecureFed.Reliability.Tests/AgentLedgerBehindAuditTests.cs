using SecureFed.Agent;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The ledger's hash chain needs no key: a ledger deleted (the agent then creates a new one), cut after a whole line or
/// replaced by an older copy verifies on its own and under-reports the ε spent. The agent's signed audit log records every
/// charge, so the agent refuses to start with a ledger behind it, and leaves the data folder as it was.
/// </summary>
public sealed class AgentLedgerBehindAuditTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-ledger-behind-" + Guid.NewGuid().ToString("N"));
    private readonly AgentOptions _options;

    public AgentLedgerBehindAuditTests()
    {
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "behind", ["site-a", "site-b"], "127.0.0.1"));
        _options = new AgentOptions { Site = "site-a", KitDirectory = fed.SiteKitDirectories["site-a"], DataDirectory = Path.Combine(_dir, "agent") };
    }

    private string LedgerPath => Path.Combine(_options.DataDirectory, AgentState.LedgerFileName);

    [Fact]
    public void AgentStateOpen_LedgerCutAfterAWholeLine_RefusesNamingTheLedgerAndTheAuditLog()
    {
        ChargeTwoRounds();
        string[] lines = File.ReadAllLines(LedgerPath);
        byte[] cut = System.Text.Encoding.UTF8.GetBytes(string.Join('\n', lines[..3]) + "\n"); // header, round 1 record and site
        File.WriteAllBytes(LedgerPath, cut);

        var ex = Assert.Throws<InvalidDataException>(() => AgentState.Open(_options));

        Assert.Contains(LedgerPath, ex.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(AgentState.AuditDirectory(_options.DataDirectory), AuditLog.LogFileName), ex.Message, StringComparison.Ordinal);
        Assert.Contains("under-report", ex.Message, StringComparison.Ordinal);
        Assert.Equal(cut, File.ReadAllBytes(LedgerPath));
    }

    [Fact]
    public void AgentStateOpen_LedgerDeleted_RefusesAndCreatesNoNewLedger()
    {
        ChargeTwoRounds();
        File.Delete(LedgerPath);

        var ex = Assert.Throws<InvalidDataException>(() => AgentState.Open(_options));

        Assert.Contains("behind", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(LedgerPath));
    }

    [Fact]
    public void AgentStateOpen_AuditFolderDeletedLedgerKept_RefusesNamingBothAndCreatesNoLog()
    {
        // The agent started a new audit log beside a ledger of charges it no longer showed (new-user review): the log
        // verified on its own, and an auditor could no longer check what left the site in those rounds.
        ChargeTwoRounds();
        string audit = AgentState.AuditDirectory(_options.DataDirectory);
        byte[] ledger = File.ReadAllBytes(LedgerPath);
        Directory.Delete(audit, recursive: true);

        var ex = Assert.Throws<InvalidDataException>(() => AgentState.Open(_options));

        Assert.Contains($"Audit log '{Path.GetFullPath(Path.Combine(audit, AuditLog.LogFileName))}' is missing, but the privacy ledger", ex.Message, StringComparison.Ordinal);
        Assert.Contains("holds 4 charge(s) (the last for round 2)", ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(audit), "no new audit log is started in place of the lost one");
        Assert.Equal(ledger, File.ReadAllBytes(LedgerPath));
    }

    [Fact]
    public void AgentStateOpen_LedgerIntact_OpensWithEveryCharge()
    {
        ChargeTwoRounds();

        using AgentState state = AgentState.Open(_options);

        Assert.Equal(4, state.Ledger.Entries.Count);
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

    /// <summary>Charges two rounds as the agent does: each ledger entry, then its <c>privacy.ledger</c> audit line.</summary>
    private void ChargeTwoRounds()
    {
        using AgentState state = AgentState.Open(_options);
        for (long round = 1; round <= 2; round++)
        {
            LedgerEntry record = state.Ledger.Append(round, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.1, 1.2, 20), 1e-5);
            state.Audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "record").Add("epsilon", record.EpsilonAfter).Add("delta", 1e-5).Add("budget", 8.0));
            LedgerEntry site = state.Ledger.Append(round, Guarantee.Site, PlannedMechanism.Zcdp(0.05), 1e-5);
            state.Audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", round).Add("guarantee", "site").Add("epsilon", site.EpsilonAfter).Add("delta", 1e-5).Add("budget", 10.0).Add("rho", 0.05));
        }
    }
}
