using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A round store deleted or emptied while the audit log and the federation ledger stay: SQLite makes a new database of
/// a missing or empty file, so the aggregator used to start on it, losing the completed rounds, models and exclusions
/// and numbering rounds from 1 again. It now refuses, naming the store and the audit line, and leaves the folder as it was.
/// </summary>
public sealed class AggregatorStoreLostTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-store-lost-" + Guid.NewGuid().ToString("N"));
    private readonly AggregatorOptions _options;

    public AggregatorStoreLostTests()
    {
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "lost", ["site-a", "site-b"], "127.0.0.1"));
        _options = new AggregatorOptions { Federation = "lost", KitDirectory = fed.AggregatorKitDirectory, DataDirectory = Path.Combine(_dir, "aggregator") };
    }

    private string StorePath => AggregatorState.StorePath(_options.DataDirectory);

    [Fact]
    public void AggregatorStateOpen_StoreDeletedAfterARound_RefusesNamingItAndCreatesNoStore()
    {
        OpenOneRound();
        foreach (string file in Directory.GetFiles(_options.DataDirectory, "aggregator.db*"))
        {
            File.Delete(file);
        }

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.Contains($"Aggregator database '{Path.GetFullPath(StorePath)}' holds no round and no model", ex.Message, StringComparison.Ordinal);
        Assert.Contains("records 1 round(s) opened", ex.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(_options.DataDirectory, "aggregator.db*"));
    }

    [Fact]
    public void AggregatorStateOpen_StoreEmptiedAfterARound_Refuses()
    {
        OpenOneRound();
        foreach (string file in Directory.GetFiles(_options.DataDirectory, "aggregator.db-*"))
        {
            File.Delete(file);
        }

        File.WriteAllBytes(StorePath, []);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(_options, new float[8]));

        Assert.Contains("was deleted, emptied or replaced", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AggregatorStateOpen_StoreIntact_Reopens()
    {
        OpenOneRound();

        using AggregatorState state = AggregatorState.Open(_options, new float[8]);

        Assert.Single(state.Store.ListRounds());
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

    /// <summary>Opens a round as the coordinator does: stored first, then audited.</summary>
    private void OpenOneRound()
    {
        using AggregatorState state = AggregatorState.Open(_options, new float[8]);
        long round = state.Store.BeginRound("{}");
        state.Audit.Append(AuditEvents.RoundOpened, f => f.Add("round", round));
    }
}
