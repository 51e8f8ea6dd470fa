using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The aggregator's audit folder deleted (or not restored with the rest of the data directory) while its round store
/// and federation ledger stay: the aggregator started a new audit log in its place, which verifies on its own
/// (`securefed audit verify` says OK) but holds none of the earlier rounds, their participants or their privacy charges;
/// the sites' logs of those rounds then show uploads no aggregator log received, which `audit report` counts as notes.
/// It now refuses to start, naming both files, and creates nothing (as it refuses a round store lost beside its log).
/// </summary>
public sealed class AggregatorAuditLostTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-audit-lost-").FullName;
    private readonly AggregatorOptions _options;

    public AggregatorAuditLostTests()
    {
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "lost", ["site-a", "site-b"], "127.0.0.1"));
        _options = new AggregatorOptions { Federation = "lost", KitDirectory = fed.AggregatorKitDirectory, DataDirectory = Path.Combine(_dir, "aggregator") };
    }

    private string AuditFolder => AggregatorState.AuditDirectory(_options.DataDirectory);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AggregatorStateOpen_AuditFolderDeletedAfterARound_RefusesNamingBothAndCreatesNoLog()
    {
        OpenOneRound();
        Directory.Delete(AuditFolder, recursive: true);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.Contains($"Audit log '{Path.GetFullPath(Path.Combine(AuditFolder, AuditLog.LogFileName))}' is missing", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"aggregator database '{Path.GetFullPath(AggregatorState.StorePath(_options.DataDirectory))}' holds 1 round(s) (the last, round 1)", ex.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(AuditFolder), "no new audit log is started in place of the lost one");
    }

    [Fact]
    public void AggregatorStateOpen_AuditLogFileDeletedAfterARound_Refuses()
    {
        OpenOneRound();
        File.Delete(Path.Combine(AuditFolder, AuditLog.LogFileName));

        // Refused before this change too (its checkpoints cover lines the log no longer has); still refused, creating nothing.
        Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.False(File.Exists(Path.Combine(AuditFolder, AuditLog.LogFileName)));
    }

    [Fact]
    public void AggregatorStateOpen_RoundStoredButNotYetAudited_StillReopens()
    {
        // A crash between storing a round and auditing its opening leaves the log without the round: no lost log.
        using (AggregatorState state = AggregatorState.Open(_options, new float[8]))
        {
            state.Store.BeginRound("{}");
        }

        using AggregatorState reopened = AggregatorState.Open(_options, new float[8]);

        Assert.Single(reopened.Store.ListRounds());
    }

    [Fact]
    public void AggregatorStateOpen_AuditFolderDeletedBeforeAnyRound_StartsANewLog()
    {
        using (AggregatorState.Open(_options, new float[8]))
        {
        }

        Directory.Delete(AuditFolder, recursive: true);

        using AggregatorState reopened = AggregatorState.Open(_options, new float[8]);

        Assert.True(File.Exists(Path.Combine(AuditFolder, AuditLog.LogFileName)));
    }

    [Fact]
    public void AggregatorStateOpen_OlderCopyOfTheRoundStoreRestoredBesideANewerAuditLog_RefusesNamingBoth()
    {
        // Found with real processes: a database backed up after round 1 and put back after round 2, the audit log and
        // ledger kept; the aggregator started and opened round 2 a second time (model version 2 again, with other bytes
        // than the digest the log records for it); audit report only warned 'opened round 2 twice'.
        OpenAndEndOneRound();
        string backup = Path.Combine(_dir, "backup.db");
        File.Copy(AggregatorState.StorePath(_options.DataDirectory), backup);
        OpenAndEndOneRound();
        File.Copy(backup, AggregatorState.StorePath(_options.DataDirectory), overwrite: true);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.Contains($"Aggregator database '{Path.GetFullPath(AggregatorState.StorePath(_options.DataDirectory))}' holds rounds up to round 1", ex.Message, StringComparison.Ordinal);
        Assert.Contains("records round 2 opened", ex.Message, StringComparison.Ordinal);
        Assert.Contains("would open round 2 again", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AggregatorStateOpen_StoreAndAuditLogAgree_Reopens()
    {
        OpenAndEndOneRound();
        OpenAndEndOneRound();

        using AggregatorState reopened = AggregatorState.Open(_options, new float[8]);

        Assert.Equal(2, reopened.Store.ListRounds().Count);
    }

    /// <summary>Opens a round as the coordinator does (stored first, then audited) and ends it (aborted), so that another can open.</summary>
    private void OpenAndEndOneRound()
    {
        using AggregatorState state = AggregatorState.Open(_options, new float[8]);
        long round = state.Store.BeginRound("{}");
        state.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
        state.Store.AbortRound(round, "test");
    }

    /// <summary>Opens a round as the coordinator does: stored first, then audited.</summary>
    private void OpenOneRound()
    {
        using AggregatorState state = AggregatorState.Open(_options, new float[8]);
        long round = state.Store.BeginRound("{}");
        state.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
    }
}
