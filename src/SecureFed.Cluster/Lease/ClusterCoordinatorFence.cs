using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator silo's fence: the lease kept by <see cref="CoordinatorLeaseKeeper"/>, and at every commit point the
/// coordinator's state (<see cref="CoordinatorSnapshot"/>) saved to the cluster's database under the lease's epoch
/// (<see cref="PostgresCoordinatorState"/>), and at every other stage close the audit lines written since the last save
/// (<see cref="SaveAuditAsync"/>; the consistency stage's close is a commit point, before the unmasking request goes out). <see cref="TakeOverAsync"/> is how a coordinator-eligible silo starts: wait for the
/// lease, then restore the last saved state (the snapshot files, every model version, every saved audit line) into its
/// data directory before the aggregator opens it.
/// </summary>
public sealed partial class ClusterCoordinatorFence : ICoordinatorFence, IAsyncDisposable
{
    private readonly CoordinatorLeaseKeeper _keeper;
    private readonly PostgresCoordinatorState _state;
    private readonly ILogger _logger;
    private readonly RoundSettings? _settings;
    private readonly SavedRoundSettings? _savedSettings;
    private IReadOnlyList<RoundSettingChange> _unaudited;

    private ClusterCoordinatorFence(
        CoordinatorLeaseKeeper keeper, PostgresCoordinatorState state, ILogger logger, long previousEpoch,
        RoundSettings? settings, SavedRoundSettings? savedSettings, IReadOnlyList<RoundSettingChange> changes)
    {
        _keeper = keeper;
        _state = state;
        _logger = logger;
        PreviousEpoch = previousEpoch;
        _settings = settings;
        _savedSettings = savedSettings;
        SettingsChanges = changes;
        _unaudited = changes;
    }

    /// <summary>
    /// The round-affecting settings this coordinator took over with that differ from those the previous coordinator saved
    /// (accepted on purpose); empty when they are the same, when nothing was saved, or when no settings were given.
    /// </summary>
    public IReadOnlyList<RoundSettingChange> SettingsChanges { get; }

    /// <inheritdoc />
    public CancellationToken Lost => _keeper.Lost;

    /// <inheritdoc />
    public long Epoch => _keeper.Epoch;

    /// <inheritdoc />
    /// <remarks>The epoch that wrote the round store this silo restored (0 when nothing was saved).</remarks>
    public long PreviousEpoch { get; }

    /// <summary>
    /// Waits until this silo holds the lease, then writes the state the last coordinator saved into
    /// <paramref name="dataDirectory"/> (moving any older local state aside; nothing saved yet: the local state is used
    /// as it is and saved at the first commit point). The returned fence renews the lease until disposed.
    /// </summary>
    /// <exception cref="InvalidDataException">A saved file, model version or audit line is missing or corrupt, or the
    /// restored audit log does not verify (the message names it); <paramref name="dataDirectory"/> was left as it was.</exception>
    public static Task<ClusterCoordinatorFence> TakeOverAsync(CoordinatorLeaseKeeper keeper, PostgresCoordinatorState state, string dataDirectory, ILogger logger, CancellationToken cancellationToken) =>
        TakeOverAsync(keeper, state, dataDirectory, settings: null, acceptChangedSettings: false, logger, cancellationToken);

    /// <summary>
    /// As <see cref="TakeOverAsync(CoordinatorLeaseKeeper, PostgresCoordinatorState, string, ILogger, CancellationToken)"/>,
    /// with this silo's round-affecting <paramref name="settings"/> (null: not compared, not saved): once it holds the
    /// lease, and before anything saved is read into the data directory, they are compared with the settings the last
    /// coordinator saved (<see cref="CheckSettings"/>). If they differ and <paramref name="acceptChangedSettings"/> is false,
    /// the role is refused: logged, the lease released, <see cref="CoordinatorSettingsChangedException"/> thrown, and
    /// nothing saved or local changed. Otherwise this coordinator saves its own settings at its first commit point, and
    /// when they differ (accepted) first writes the changes to its audit log there.
    /// </summary>
    /// <exception cref="CoordinatorSettingsChangedException">The settings differ and changes are not accepted.</exception>
    /// <exception cref="InvalidDataException">A saved file, model version or audit line is missing or corrupt, or the
    /// restored audit log does not verify (the message names it); <paramref name="dataDirectory"/> was left as it was.</exception>
    public static async Task<ClusterCoordinatorFence> TakeOverAsync(
        CoordinatorLeaseKeeper keeper, PostgresCoordinatorState state, string dataDirectory, RoundSettings? settings, bool acceptChangedSettings, ILogger logger, CancellationToken cancellationToken,
        Func<Task>? acquired = null)
    {
        ArgumentNullException.ThrowIfNull(keeper);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(logger);
        long epoch = await keeper.AcquireAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (acquired is not null)
            {
                await acquired().ConfigureAwait(false); // e.g. a standby's front stops before the state is restored
            }

            // The settings first: a silo that refuses the role has read nothing into its data directory.
            SavedRoundSettings? savedSettings = settings is null ? null : await state.LoadSettingsAsync(cancellationToken).ConfigureAwait(false);
            IReadOnlyList<RoundSettingChange> changes = settings is null ? [] : CheckSettings(state.Federation, settings, savedSettings, acceptChangedSettings, logger);
            IReadOnlyDictionary<string, byte[]> files = await state.LoadAsync(cancellationToken).ConfigureAwait(false);
            long previousEpoch = await state.SavedEpochAsync(CoordinatorSnapshot.RoundStoreName, cancellationToken).ConfigureAwait(false);
            long auditLines = await state.SavedAuditLinesAsync(cancellationToken).ConfigureAwait(false);
            if (files.Count > 0 || auditLines > 0)
            {
                keeper.EnsureHeld(); // do not restore state we may no longer continue from

                // Restored beside the data directory and completed there (every model version streamed from its row and
                // checked); the data directory is replaced only once all of it is in place, and left untouched otherwise.
                string staged = CoordinatorSnapshot.Stage(files, dataDirectory, epoch);
                try
                {
                    (int models, long modelBytes) = (0, 0L);
                    (int moments, long momentBytes) = (0, 0L);
                    if (files.ContainsKey(CoordinatorSnapshot.RoundStoreName))
                    {
                        using AggregatorStore store = AggregatorStore.Open(Path.Combine(staged, CoordinatorSnapshot.RoundStoreName));
                        (models, modelBytes) = await state.RestoreModelsAsync(store, cancellationToken).ConfigureAwait(false);

                        // The server update rule's moments that go with the restored model version (momentum, adam): checked
                        // against it, never silently left out (the successor would restart them from zero).
                        (moments, momentBytes) = await state.RestoreMomentsAsync(store, cancellationToken).ConfigureAwait(false);
                    }

                    // The audit log from its rows (they supersede a whole file saved by an earlier version), checked line by
                    // line, then verified as the auditors will: hash chain, Merkle tree, signed checkpoints.
                    string audit = AggregatorState.AuditDirectory(staged);
                    (long lines, long auditBytes) = (0, 0L);
                    if (auditLines > 0)
                    {
                        (lines, auditBytes) = await state.RestoreAuditAsync(Path.Combine(audit, AuditLog.LogFileName), cancellationToken).ConfigureAwait(false);
                    }

                    if (File.Exists(Path.Combine(audit, AuditLog.LogFileName)))
                    {
                        AuditVerification verified = AuditVerifier.Verify(audit);
                        if (!verified.Ok)
                        {
                            throw new InvalidDataException(
                                $"the audit log of federation '{state.Federation}' restored from the cluster's database (table securefed_coordinator_audit and its checkpoints in securefed_coordinator_state) does not verify: {verified.FirstProblem}");
                        }
                    }

                    keeper.EnsureHeld();
                    string? aside = CoordinatorSnapshot.Install(staged, dataDirectory, epoch);
                    Log.Restored(logger, files.Count, files.Values.Sum(f => (long)f.Length), models, modelBytes, moments, momentBytes, lines, auditBytes, epoch, aside ?? "(none)");
                }
                catch
                {
                    if (Directory.Exists(staged))
                    {
                        Directory.Delete(staged, recursive: true);
                    }

                    throw;
                }
            }
            else
            {
                Log.NothingSaved(logger, epoch);
            }

            return new ClusterCoordinatorFence(keeper, state, logger, previousEpoch, settings, savedSettings, changes);
        }
        catch
        {
            await keeper.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Compares <paramref name="settings"/> (this silo's) with <paramref name="saved"/> (the last coordinator's; null:
    /// nothing to compare, no changes) and returns the changes. Changes not accepted are logged as an error and refused
    /// with <see cref="CoordinatorSettingsChangedException"/>; accepted ones are logged as a warning. Used at takeover and,
    /// read without the lease, at a coordinator-eligible silo's start-up.
    /// </summary>
    /// <exception cref="CoordinatorSettingsChangedException">The settings differ and <paramref name="acceptChanged"/> is false.</exception>
    public static IReadOnlyList<RoundSettingChange> CheckSettings(string federation, RoundSettings settings, SavedRoundSettings? saved, bool acceptChanged, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(logger);
        if (saved is null)
        {
            return [];
        }

        IReadOnlyList<RoundSettingChange> changes = settings.ChangesFrom(saved.Settings);
        if (changes.Count == 0)
        {
            return changes;
        }

        if (!acceptChanged)
        {
            var refused = new CoordinatorSettingsChangedException(federation, saved.Epoch, changes);
            Log.SettingsRefused(logger, refused.Message);
            throw refused;
        }

        Log.SettingsAccepted(logger, saved.Epoch, RoundSettings.Describe(changes));
        return changes;
    }

    /// <inheritdoc />
    public void EnsureHeld() => _keeper.EnsureHeld();

    /// <inheritdoc />
    public async Task CommitAsync(AggregatorState state, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(state);
        _keeper.EnsureHeld();
        if (_unaudited.Count > 0)
        {
            // Settings changed on purpose at this takeover: in the audit log before the state (and the new settings) are saved.
            AuditSettingsChanged(state.Audit);
        }

        // Signed first, as at a stage close, so that the lines this commit point saves are covered by a checkpoint it saves.
        state.Audit.Checkpoint();

        // The round store is saved without model bytes (streamed from a temporary copy on disk); each model version is
        // sent once, streamed from the store, in its own row.
        IReadOnlyDictionary<string, byte[]> files = CoordinatorSnapshot.TakeWithoutModelBytes(state, out string roundStore, out IReadOnlyList<ModelRecord> models);
        try
        {
            var onDisk = new Dictionary<string, string>(StringComparer.Ordinal) { [CoordinatorSnapshot.RoundStoreName] = roundStore };
            CoordinatorSaveResult saved = await _state.SaveAsync(
                files, onDisk, models, state.Store.OpenModel, AuditLogPath(state), CoordinatorMoments.Of(state.Store), _settings, _keeper.Holder, _keeper.Epoch, cancellationToken).ConfigureAwait(false);
            Log.Saved(_logger, saved.Files, saved.Models, saved.ModelBytes, saved.Moments, saved.MomentBytes, saved.AuditLines, saved.AuditBytes, _keeper.Epoch);
            if (saved.PrunedModels > 0)
            {
                Log.ModelRowsPruned(_logger, saved.PrunedModels, _keeper.Epoch, string.Join(", ", models.Select(m => m.Version)));
            }
        }
        finally
        {
            File.Delete(roundStore);
        }
    }

    /// <inheritdoc />
    public async Task SaveAuditAsync(AggregatorState state, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(state);
        _keeper.EnsureHeld();

        // Signed first, so that the lines saved now are covered by a signed checkpoint saved with them: a line in the
        // database that no checkpoint signs could be rewritten there (with its running hash) before a takeover.
        SignedCheckpoint checkpoint = state.Audit.Checkpoint();
        IReadOnlyDictionary<string, byte[]> checkpoints = CoordinatorSnapshot.CheckpointFiles(state, checkpoint);
        (int lines, long bytes) = await _state.SaveAuditAsync(AuditLogPath(state), checkpoints, _keeper.Holder, _keeper.Epoch, cancellationToken).ConfigureAwait(false);
        Log.AuditSaved(_logger, lines, bytes, _keeper.Epoch);
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync() => _keeper.DisposeAsync();

    private void AuditSettingsChanged(AuditLog audit)
    {
        SavedRoundSettings saved = _savedSettings!;
        audit.Append(AuditEvents.CoordinatorSettingsChanged, f => f
            .Add("epoch", _keeper.Epoch)
            .Add("saved_epoch", saved.Epoch)
            .Add("saved_sha256", saved.Settings.Sha256)
            .Add("sha256", _settings!.Sha256)
            .AddObject("changes", c =>
            {
                foreach (RoundSettingChange change in _unaudited)
                {
                    c.AddObject(change.Name, v => v.Add("previous", change.Previous).Add("current", change.Current));
                }
            }));
        _unaudited = [];
    }

    private static string AuditLogPath(AggregatorState state) => Path.Combine(AggregatorState.AuditDirectory(state.DataDirectory), AuditLog.LogFileName);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Coordinator state restored from the cluster's database: {Files} files, {Bytes} bytes, {Models} model versions, {ModelBytes} model bytes, {Moments} server-optimizer moments ({MomentBytes} bytes), {AuditLines} audit lines ({AuditBytes} bytes), lease epoch {Epoch}; earlier local state moved to {Aside}")]
        public static partial void Restored(ILogger logger, int files, long bytes, int models, long modelBytes, int moments, long momentBytes, long auditLines, long auditBytes, long epoch, string aside);

        [LoggerMessage(2, LogLevel.Information, "No coordinator state in the cluster's database yet (lease epoch {Epoch}): starting from the local data directory")]
        public static partial void NothingSaved(ILogger logger, long epoch);

        [LoggerMessage(3, LogLevel.Debug, "Coordinator state saved to the cluster's database: {Files} changed files, {Models} new model versions ({ModelBytes} bytes), {Moments} new server-optimizer moments ({MomentBytes} bytes), {AuditLines} new audit lines ({AuditBytes} bytes) at lease epoch {Epoch}")]
        public static partial void Saved(ILogger logger, int files, int models, long modelBytes, int moments, long momentBytes, int auditLines, long auditBytes, long epoch);

        [LoggerMessage(5, LogLevel.Error, "Coordinator role refused: {Reason}")]
        public static partial void SettingsRefused(ILogger logger, string reason);

        [LoggerMessage(6, LogLevel.Warning, "Taking over with coordinator settings that differ from those saved by lease epoch {SavedEpoch} (SecureFed:Cluster:AcceptChangedSettings is true; written to the audit log): {Changes}")]
        public static partial void SettingsAccepted(ILogger logger, long savedEpoch, string changes);

        [LoggerMessage(7, LogLevel.Information, "{Count} model versions deleted from the cluster's database at lease epoch {Epoch}: the round store saved with them no longer holds them (SecureFed:KeepModelVersions); it holds versions {Kept}")]
        public static partial void ModelRowsPruned(ILogger logger, int count, long epoch, string kept);

        [LoggerMessage(4, LogLevel.Debug, "Coordinator audit lines saved to the cluster's database: {AuditLines} new lines ({AuditBytes} bytes) at lease epoch {Epoch}")]
        public static partial void AuditSaved(ILogger logger, int auditLines, long auditBytes, long epoch);
    }
}
