using System.Globalization;

using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// Everything the aggregator keeps: its kit (certificates, identity), the SQLite store (rounds, models), the
/// federation privacy ledger, the audit log and the current model. Opening it validates all of them; a corrupt or
/// foreign store, ledger or log stops the start-up with a message naming the file.
/// </summary>
public sealed class AggregatorState : IDisposable
{
    private AggregatorState(string dataDirectory, PartyKit kit, AggregatorStore store, FederationBudget budget, AuditLog audit, ModelState model, ServerUpdateRule serverRule)
    {
        ServerRule = serverRule;
        DataDirectory = dataDirectory;
        Kit = kit;
        Store = store;
        Budget = budget;
        Audit = audit;
        Model = model;
    }

    /// <summary>The full path of the data directory (round store, privacy ledger, audit log).</summary>
    public string DataDirectory { get; }

    /// <summary>The privacy ledger's file under <paramref name="dataDirectory"/>.</summary>
    public static string PrivacyLedgerPath(string dataDirectory) => Path.Combine(dataDirectory, "privacy-ledger.jsonl");

    /// <summary>The round store's file under <paramref name="dataDirectory"/>.</summary>
    public static string StorePath(string dataDirectory) => Path.Combine(dataDirectory, "aggregator.db");

    /// <summary>
    /// Name pattern of the staging files in which the next model is written while it is fused (<c>RoundCoordinator</c>),
    /// in the data directory; a file left by a killed process is deleted when the state is opened.
    /// </summary>
    public const string NextModelFilePattern = "next-model-*.tmp";

    /// <summary>The aggregator's kit.</summary>
    public PartyKit Kit { get; }

    /// <summary>Rounds and models.</summary>
    public AggregatorStore Store { get; }

    /// <summary>Federation-level site-guarantee ledger.</summary>
    public FederationBudget Budget { get; }

    /// <summary>The aggregator's audit log.</summary>
    public AuditLog Audit { get; }

    /// <summary>The current global model.</summary>
    public ModelState Model { get; }

    /// <summary>The aggregator's update rule and its moments, which go with <see cref="Model"/>'s version.</summary>
    public ServerUpdateRule ServerRule { get; }

    /// <summary>Audit log folder under the data directory.</summary>
    public static string AuditDirectory(string dataDirectory) => Path.Combine(dataDirectory, "audit");

    /// <summary>Opens (or creates) the state for <paramref name="options"/>.</summary>
    /// <param name="options">Validated options.</param>
    /// <param name="initialModel">The initial model when neither the store nor <see cref="AggregatorOptions.InitialModel"/> has one.</param>
    public static AggregatorState Open(AggregatorOptions options, float[]? initialModel = null)
        => Open(options, initialModel is null ? null : () => initialModel);

    /// <summary>Opens (or creates) the state; <paramref name="initialModelFactory"/> runs only when no model exists yet.</summary>
    /// <param name="options">Validated options.</param>
    /// <param name="initialModelFactory">Builds the initial model when neither the store nor the options have one.</param>
    public static AggregatorState Open(AggregatorOptions options, Func<float[]>? initialModelFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        PartyKit kit = PartyKit.Load(options.KitDirectory, options.AcceptReadableKeys, "setting SecureFed:AcceptReadableKeys to true");
        if (!kit.IsAggregator)
        {
            kit.Dispose();
            throw new InvalidDataException($"{options.KitDirectory}: this is the kit of site '{kit.Name}', not the aggregator's.");
        }

        if (kit.Manifest.FederationName != options.Federation)
        {
            kit.Dispose();
            throw new InvalidDataException($"SecureFed:Federation is '{options.Federation}' but the kit belongs to federation '{kit.Manifest.FederationName}'.");
        }

        Directory.CreateDirectory(options.DataDirectory);
        foreach (string leftover in Directory.EnumerateFiles(options.DataDirectory, NextModelFilePattern))
        {
            File.Delete(leftover); // a next model that was being fused when the process died: never stored, never used
        }

        AggregatorStore? store = null;
        FederationBudget? budget = null;
        AuditLog? audit = null;
        string storePath = Path.GetFullPath(StorePath(options.DataDirectory));
        bool storeExisted = File.Exists(storePath);
        string ledgerPath = Path.GetFullPath(PrivacyLedgerPath(options.DataDirectory));
        bool ledgerExisted = File.Exists(ledgerPath);
        try
        {
            store = AggregatorStore.Open(storePath);
            store.EnsureFederation(options.Federation);
            if (LostAudit(store, options.DataDirectory, storePath) is { } lostAudit)
            {
                throw lostAudit;
            }

            budget = FederationBudget.Open(PrivacyLedgerPath(options.DataDirectory), options.Federation);
            audit = OpenAudit(options, kit);
            if (LostStore(store, audit, storePath) is { } lost)
            {
                store.Dispose();
                store = null;
                if (!storeExisted)
                {
                    DeleteNewStore(storePath);
                }

                throw lost;
            }

            try
            {
                EnsureLedgerNotBehindAudit(budget, audit);
            }
            catch (InvalidDataException) when (!ledgerExisted)
            {
                File.Delete(ledgerPath); // only the header this start wrote: leave the folder as it was for a restore
                throw;
            }

            ModelState model = LoadModel(store, options, initialModelFactory);
            var serverRule = ServerUpdateRule.Open(options.ServerOptimizerOptions, store, model.Version, model.ParameterCount);
            return new AggregatorState(Path.GetFullPath(options.DataDirectory), kit, store, budget, audit, model, serverRule);
        }
        catch
        {
            audit?.Dispose();
            store?.Dispose();
            kit.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A store with no model is new (an existing one always holds version 0), yet the aggregator stores a round before it
    /// audits <see cref="AuditEvents.RoundOpened"/>: rounds in the audit log mean the store was deleted, emptied or replaced.
    /// Starting on it would lose the completed rounds, the models and the exclusions, and number rounds from 1 again.
    /// </summary>
    private static InvalidDataException? LostStore(AggregatorStore store, AuditLog audit, string storePath)
    {
        IReadOnlyList<RoundRecord> rounds = store.ListRounds();
        if (store.LatestModel() is not null || rounds.Count > 0)
        {
            return OlderStore(rounds, audit, storePath);
        }

        IReadOnlyList<AuditEvent> opened = audit.ReadEvents(AuditEvents.RoundOpened);
        return opened.Count == 0
            ? null
            : new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"Aggregator database '{storePath}' holds no round and no model, but the audit log '{Path.Combine(audit.Directory, AuditLog.LogFileName)}' records {opened.Count} round(s) opened " +
                $"(the last at line {opened[^1].Line}): the database was deleted, emptied or replaced by a new one. Starting on it would lose the completed rounds, the models " +
                $"and the exclusions of sites found at fault, and number rounds from 1 again; nothing was started. Restore it from a backup, or point the aggregator at another data directory."));
    }

    /// <summary>
    /// A round is stored before its <see cref="AuditEvents.RoundOpened"/> line is written (and, on the cluster, saved in a
    /// commit point before it), so the audit log never records a round opened that the store does not hold: one that does
    /// means the store is an older copy (a backup put back without the audit log and ledger of the same time). Starting on
    /// it would open those round numbers again and store model versions the audit log records with other digests.
    /// </summary>
    private static InvalidDataException? OlderStore(IReadOnlyList<RoundRecord> rounds, AuditLog audit, string storePath)
    {
        long stored = rounds.Count == 0 ? 0 : rounds.Max(r => r.Round);
        AuditEvent? newest = null;
        long newestRound = 0;
        foreach (AuditEvent e in audit.ReadEvents(AuditEvents.RoundOpened))
        {
            if (e.Round is { } n && n > newestRound)
            {
                (newest, newestRound) = (e, n);
            }
        }

        return newestRound <= stored
            ? null
            : new InvalidDataException(
                string.Create(CultureInfo.InvariantCulture, $"Aggregator database '{storePath}' holds rounds up to round {stored}, but the audit log '{Path.Combine(audit.Directory, AuditLog.LogFileName)}' records round {newestRound} opened ") +
                string.Create(CultureInfo.InvariantCulture, $"(line {newest!.Line}): the database is older than the audit log (an older copy restored without the audit log and ledger of the same time?). Starting on it would open ") +
                string.Create(CultureInfo.InvariantCulture, $"round {stored + 1} again and store model versions the audit log records with other digests; nothing was started. Restore the database that goes with the audit log, ") +
                "or point the aggregator at another data directory.");
    }

    /// <summary>
    /// The audit log is opened at start-up, before any round is stored: a store with rounds and no audit log means the log
    /// was deleted, moved or not restored with the store. A new log in its place would verify on its own while holding
    /// none of those rounds, their participants or their privacy charges. Checked before anything is created.
    /// </summary>
    private static InvalidDataException? LostAudit(AggregatorStore store, string dataDirectory, string storePath)
    {
        string logPath = Path.GetFullPath(Path.Combine(AuditDirectory(dataDirectory), AuditLog.LogFileName));
        if (File.Exists(logPath))
        {
            return null;
        }

        IReadOnlyList<RoundRecord> rounds = store.ListRounds();
        return rounds.Count == 0
            ? null
            : new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"Audit log '{logPath}' is missing, but the aggregator database '{storePath}' holds {rounds.Count} round(s) (the last, round {rounds.Max(r => r.Round)}): ") +
                "the audit log was deleted, moved or not restored with the database. Starting would begin a new log without those rounds and their privacy charges, " +
                "which auditors could then no longer verify; nothing was started. Restore the audit folder from a backup, or point the aggregator at another data directory.");
    }

    /// <summary>
    /// The federation ledger's hash chain needs no key: deleted (and created anew here), cut after a whole line or replaced
    /// by an older copy, it verifies on its own and the federation's site-level budget would start again. Every entry is
    /// audited as <see cref="AuditEvents.PrivacySpent"/> right after it is appended, so a ledger behind the log is refused.
    /// </summary>
    private static void EnsureLedgerNotBehindAudit(FederationBudget budget, AuditLog audit)
    {
        if (audit.ReadPrivacyCharges(AuditEvents.PrivacySpent).SingleOrDefault(c => c.Guarantee == "site") is not { } site)
        {
            return;
        }

        foreach (AuditedEpsilon highest in site.HighestByDelta)
        {
            budget.EnsureNotBehind(site.Entries, highest.Epsilon, highest.Delta, highest.Source);
        }
    }

    /// <summary>Deletes the store this start created (and its WAL files), so the data directory is as it was.</summary>
    private static void DeleteNewStore(string storePath)
    {
        foreach (string path in new[] { storePath, storePath + "-wal", storePath + "-shm" })
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Only an empty store: the next start finds it empty and refuses again.
            }
        }
    }

    /// <summary>
    /// The first start's model file, with errors that name the setting: .NET's own say "Access to the path '/tmp' is
    /// denied." of a folder and "Could not find file" of a missing one, naming no setting.
    /// </summary>
    internal static FileStream OpenInitialModel(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"SecureFed:InitialModel '{path}' is a folder; give a model file (float32, little-endian).");
        }

        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InvalidDataException($"SecureFed:InitialModel '{path}' does not exist; give a model file (float32, little-endian).", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new InvalidDataException($"SecureFed:InitialModel '{path}' cannot be read ({ex.Message}).", ex);
        }
    }

    /// <summary>The audit log; a torn last line is repaired only with <see cref="AggregatorOptions.RepairTornAuditTail"/>, and the error says so.</summary>
    private static AuditLog OpenAudit(AggregatorOptions options, PartyKit kit)
    {
        try
        {
            return AuditLog.Open(AuditDirectory(options.DataDirectory), "aggregator", kit.IdentityKey, $"securefed/{options.Federation}/aggregator", options.RepairTornAuditTail);
        }
        catch (InvalidDataException ex) when (ex.InnerException is AuditLogTornTailException torn)
        {
            throw new InvalidDataException(torn.Explain(TornTailHint), ex);
        }
    }

    /// <summary>How the operator repairs a torn audit log, as they type it.</summary>
    internal const string TornTailHint = "To move the torn bytes to audit/quarantine/ (kept there, nothing is deleted; an audit event records their size and SHA-256) and continue, start once with --SecureFed:RepairTornAuditTail=true, or set \"RepairTornAuditTail\": true in the config file's SecureFed section.";

    /// <summary>
    /// The current model: the store's latest version, checked (read once a block at a time: its SHA-256 against the
    /// record, every value finite) but not kept in memory; or, in a new store, the initial model, streamed from its file
    /// (checked the same way) into the store as version 0.
    /// </summary>
    private static ModelState LoadModel(AggregatorStore store, AggregatorOptions options, Func<float[]>? initialModelFactory)
    {
        ModelRecord? latest = store.LatestModel();
        if (latest is not null)
        {
            (int count, string actual) = CheckStored(store, latest.Version);
            if (!string.Equals(actual, latest.Sha256, StringComparison.Ordinal))
            {
                throw new InvalidDataException(
                    $"Model version {latest.Version} in '{store.Path}' is corrupt: its recorded SHA-256 is {latest.Sha256} but the stored bytes hash to {actual}.");
            }

            if (options.ModelParameterCount > 0 && count != options.ModelParameterCount)
            {
                throw new InvalidDataException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"Model version {latest.Version} in '{store.Path}' has {count:N0} parameters, but the model specification (SecureFed:ModelSpec) describes a model of {options.ModelParameterCount:N0}: every agent would decline every round. Give the specification this aggregator's rounds were run with, or a new SecureFed:DataDirectory for a new model."));
            }

            return new ModelState(latest.Version, count, latest.Sha256);
        }

        if (!string.IsNullOrEmpty(options.InitialModel))
        {
            using FileStream file = OpenInitialModel(options.InitialModel);
            (int count, string fileSha) = ModelState.Check(file, options.InitialModel);
            if (options.ModelParameterCount > 0 && count != options.ModelParameterCount)
            {
                throw new InvalidDataException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"SecureFed:InitialModel '{options.InitialModel}' holds {count:N0} parameters, but the model specification (SecureFed:ModelSpec) describes a model of {options.ModelParameterCount:N0}: every agent would decline every round. Give a model of this specification (float32, little-endian, as the parameters.f32 of a model folder that 'securefed tagger train' or 'securefed aggregator export-model' writes), or leave InitialModel unset for a seeded start. Nothing was stored."));
            }

            if (file.Length > AggregatorStore.MaxValueBytes)
            {
                throw new InvalidDataException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"The initial model '{options.InitialModel}' is {file.Length:N0} bytes ({count:N0} parameters); the round store keeps each model version as one SQLite value of at most {AggregatorStore.MaxValueBytes:N0} bytes (250,000,000 parameters)."));
            }

            file.Position = 0;
            store.SaveModel(0, 0, file, fileSha);
            return new ModelState(0, count, fileSha);
        }

        float[] values = initialModelFactory?.Invoke() ?? throw new InvalidDataException("No model yet: set SecureFed:InitialModel to a model file (float32, little-endian).");
        if (values.Length == 0)
        {
            throw new InvalidDataException("The initial model has no parameters.");
        }

        if (options.ModelParameterCount > 0 && values.Length != options.ModelParameterCount)
        {
            throw new InvalidDataException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The seeded initial model has {values.Length:N0} parameters, but the model specification (SecureFed:ModelSpec) describes a model of {options.ModelParameterCount:N0}. Nothing was stored."));
        }

        string sha = ModelState.Digest(values);
        store.SaveModel(0, 0, WireEncoding.ModelBytesView(values), sha);
        return new ModelState(0, values.Length, sha);
    }

    private static (int ParameterCount, string Sha256) CheckStored(AggregatorStore store, long version)
    {
        Stream bytes;
        try
        {
            bytes = store.OpenModel(version);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidDataException($"The store lists model version {version} but holds no bytes for it: {ex.Message}", ex);
        }

        using (bytes)
        {
            return ModelState.Check(bytes, $"model version {version} in '{store.Path}'");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Audit.Dispose();
        Store.Dispose();
        Kit.Dispose();
    }
}
