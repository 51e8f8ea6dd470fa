using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Storage;
using Orleans.TestingHost;
using SecureFed.Cluster.Grains;

namespace SecureFed.Cluster.Tests;

/// <summary>The ledger grain over a grain storage whose next write can be made to fail (one in-process silo).</summary>
public sealed class LedgerGrainTests : IAsyncLifetime
{
    private TestCluster _cluster = null!;

    public async Task InitializeAsync()
    {
        var builder = new TestClusterBuilder(1);
        builder.AddSiloBuilderConfigurator<SiloConfigurator>();
        _cluster = builder.Build();
        await _cluster.DeployAsync().WaitAsync(TimeSpan.FromSeconds(120));
    }

    public async Task DisposeAsync()
    {
        await _cluster.StopAllSilosAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task RecordAsync_WriteFailedThenRetried_EntryIsStoredNotTakenForADuplicate()
    {
        // Arrange: the ledger's next write fails (e.g. PostgreSQL unreachable for a moment).
        const string federation = "ledger-write-fails";
        ILedgerGrain ledger = _cluster.GrainFactory.GetGrain<ILedgerGrain>(federation);
        var entry = new LedgerEntry(2, "session-2", Completed: false, null, [], "a silo failed", DateTimeOffset.UnixEpoch);
        FlakyStorage.FailNextWrite(federation);
        await Assert.ThrowsAnyAsync<Exception>(() => ledger.RecordAsync(entry).WaitAsync(RoundScript.Timeout));

        // Act: the caller retries.
        bool recorded = await ledger.RecordAsync(entry).WaitAsync(RoundScript.Timeout);

        // Assert: the retry wrote it (before: "already recorded" from memory, and the storage never had it).
        Assert.True(recorded, "expected the retry after a failed write to record the entry; it was answered 'already recorded'");
        LedgerEntry[] stored = FlakyStorage.Stored(federation);
        Assert.True(stored.Length == 1 && stored[0] == entry, $"expected the entry once in storage; storage holds {stored.Length} entries");
        Assert.Equal([entry], await ledger.EntriesAsync().WaitAsync(RoundScript.Timeout));
    }

    [Fact]
    public async Task RecordAsync_CompletedFromAnEarlierLeaseEpoch_RefusedEvenAfterReactivation_AbortStillRecorded()
    {
        // Arrange: coordinator A (epoch 1) recorded round 1; B took over (epoch 2) and recorded the abort of round 2.
        const string federation = "ledger-epochs";
        ILedgerGrain ledger = _cluster.GrainFactory.GetGrain<ILedgerGrain>(federation);
        var round1 = new LedgerEntry(1, "s1", Completed: true, "aa", ["site-a", "site-b"], null, DateTimeOffset.UnixEpoch, Epoch: 1);
        var round2Abort = new LedgerEntry(2, "s2", Completed: false, null, [], "the coordinator stopped while the round was open", DateTimeOffset.UnixEpoch, Epoch: 2);
        Assert.True(await ledger.RecordAsync(round1).WaitAsync(RoundScript.Timeout));
        Assert.True(await ledger.RecordAsync(round2Abort).WaitAsync(RoundScript.Timeout));

        // Act + assert: A, still believing it holds the lease, completes another attempt: refused, naming both epochs.
        var stale = new LedgerEntry(2, "s2-retry", Completed: true, "bb", ["site-a", "site-b"], null, DateTimeOffset.UnixEpoch, Epoch: 1);
        var ex = await Assert.ThrowsAsync<ClusterProtocolException>(() => ledger.RecordAsync(stale).WaitAsync(RoundScript.Timeout));
        Assert.Contains("from coordinator lease epoch 1, but epoch 2 has recorded outcomes since", ex.Message, StringComparison.Ordinal);

        // The epoch is stored with the entries: a new activation (e.g. on another silo) refuses it too.
        await _cluster.GrainFactory.GetGrain<IManagementGrain>(0).ForceActivationCollection(TimeSpan.Zero).WaitAsync(RoundScript.Timeout);
        await Assert.ThrowsAsync<ClusterProtocolException>(() => ledger.RecordAsync(stale with { SessionId = "s2-again" }).WaitAsync(RoundScript.Timeout));
        Assert.Equal(2, FlakyStorage.StoredEpoch(federation));

        // A's attempt may still be recorded as aborted (it reveals nothing), and B goes on.
        var staleAbort = new LedgerEntry(2, "s2-retry", Completed: false, null, [], "lease lost", DateTimeOffset.UnixEpoch, Epoch: 1);
        Assert.True(await ledger.RecordAsync(staleAbort).WaitAsync(RoundScript.Timeout));
        var round3 = new LedgerEntry(3, "s3", Completed: true, "cc", ["site-a", "site-b"], null, DateTimeOffset.UnixEpoch, Epoch: 2);
        Assert.True(await ledger.RecordAsync(round3).WaitAsync(RoundScript.Timeout));
        LedgerEntry[] entries = await ledger.EntriesAsync().WaitAsync(RoundScript.Timeout);
        Assert.Equal(
            new[] { round1, round2Abort, staleAbort, round3 }.Select(e => (e.Round, e.SessionId, e.Completed, e.Epoch)),
            entries.Select(e => (e.Round, e.SessionId, e.Completed, e.Epoch)));
    }

    private sealed class SiloConfigurator : ISiloConfigurator
    {
        public void Configure(ISiloBuilder siloBuilder)
        {
            siloBuilder.AddSecureFedCluster();
            siloBuilder.Services.AddKeyedSingleton<IGrainStorage>(LedgerGrain.StorageName, (_, _) => new FlakyStorage());
        }
    }

    /// <summary>In-memory grain storage with ETags (as the PostgreSQL one) whose next write for a grain key can be made to fail.</summary>
    private sealed class FlakyStorage : IGrainStorage
    {
        private static readonly ConcurrentDictionary<string, (LedgerState State, int Version)> Rows = new(StringComparer.Ordinal);
        private static readonly ConcurrentDictionary<string, bool> Failing = new(StringComparer.Ordinal);

        public static void FailNextWrite(string key) => Failing[key] = true;

        public static LedgerEntry[] Stored(string key) => Rows.TryGetValue(key, out var row) ? [.. row.State.Entries] : [];

        public static long StoredEpoch(string key) => Rows.TryGetValue(key, out var row) ? row.State.Epoch : -1;

        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            string key = grainId.Key.ToString()!;
            if (Rows.TryGetValue(key, out var row))
            {
                grainState.State = (T)(object)new LedgerState { Entries = [.. row.State.Entries], Epoch = row.State.Epoch };
                grainState.ETag = row.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
                grainState.RecordExists = true;
            }
            else
            {
                grainState.State = Activator.CreateInstance<T>();
                grainState.ETag = null;
                grainState.RecordExists = false;
            }

            return Task.CompletedTask;
        }

        public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            string key = grainId.Key.ToString()!;
            if (Failing.TryRemove(key, out _))
            {
                throw new InvalidOperationException("the storage is unreachable (test)");
            }

            int current = Rows.TryGetValue(key, out var row) ? row.Version : 0;
            if ((grainState.ETag ?? "0") != current.ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
                throw new InconsistentStateException("stale ETag (test)", current.ToString(System.Globalization.CultureInfo.InvariantCulture), grainState.ETag ?? "none");
            }

            var state = (LedgerState)(object)grainState.State!;
            Rows[key] = (new LedgerState { Entries = [.. state.Entries], Epoch = state.Epoch }, current + 1);
            grainState.ETag = (current + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
            return Task.CompletedTask;
        }

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
        {
            Rows.TryRemove(grainId.Key.ToString()!, out _);
            grainState.ETag = null;
            grainState.RecordExists = false;
            return Task.CompletedTask;
        }
    }
}
