using System.Security.Cryptography;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator's state as files, relative to its data directory: the round store (a consistent SQLite copy: every
/// round, stage, model version and submission), the federation privacy ledger, and the signed audit log (its lines,
/// verifier key, the latest checkpoint and every signed checkpoint). What another silo needs to continue as the same aggregator.
/// At a commit point the round store is taken without its model bytes and without the audit log's lines
/// (<see cref="TakeWithoutModelBytes"/>): each model version is saved once, apart, each audit line once, as a row
/// (<see cref="PostgresCoordinatorState.SaveAuditAsync"/>), and both are written back on takeover.
/// </summary>
public static class CoordinatorSnapshot
{
    /// <summary>The round store's name in a snapshot.</summary>
    public const string RoundStoreName = "aggregator.db";

    /// <summary>The audit log's lines in a snapshot (<see cref="Take"/> only; the cluster saves them as rows).</summary>
    public const string AuditLogName = "audit/" + AuditLog.LogFileName;

    /// <summary>Whether <paramref name="name"/> is a snapshot's name of a signed checkpoint of the audit log (the latest, or one by its size).</summary>
    public static bool IsCheckpointName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name == "audit/" + AuditLog.LatestCheckpointFileName
            || (name.StartsWith("audit/" + AuditLog.CheckpointDirectoryName + "/", StringComparison.Ordinal) && IsAllowedName(name));
    }

    /// <summary>
    /// The files of <paramref name="checkpoint"/>, which the audit log of <paramref name="state"/> has just signed, read
    /// from disk and named as <see cref="Take"/> names them (<c>audit/checkpoint.latest</c>,
    /// <c>audit/checkpoints/&lt;size&gt;.checkpoint</c>): what a stage close saves before the lines, so that every saved line
    /// is covered by a saved signed checkpoint (docs/cluster.md §6).
    /// </summary>
    /// <exception cref="InvalidDataException">A file does not hold <paramref name="checkpoint"/> (replaced meanwhile).</exception>
    public static IReadOnlyDictionary<string, byte[]> CheckpointFiles(AggregatorState state, SignedCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(checkpoint);
        string audit = AggregatorState.AuditDirectory(state.DataDirectory);
        string numbered = AuditLog.CheckpointDirectoryName + "/" + checkpoint.Size.ToString(System.Globalization.CultureInfo.InvariantCulture) + AuditLog.CheckpointExtension;
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (string relative in new[] { AuditLog.LatestCheckpointFileName, numbered })
        {
            string path = Path.Combine(audit, relative);
            byte[] bytes = File.ReadAllBytes(path);
            if (!System.Text.Encoding.UTF8.GetString(bytes).Equals(checkpoint.Text, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path} does not hold the checkpoint just signed for size {checkpoint.Size}; the audit log's directory was changed by something else.");
            }

            files["audit/" + relative] = bytes;
        }

        return files;
    }

    /// <summary>The names a snapshot may hold (others are refused on restore).</summary>
    public static bool IsAllowedName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name is RoundStoreName or AuditLogName or "privacy-ledger.jsonl" or "audit/checkpoint.latest" or "audit/verifier.key")
        {
            return true;
        }

        const string prefix = "audit/checkpoints/";
        return name.StartsWith(prefix, StringComparison.Ordinal) && name.EndsWith(AuditLog.CheckpointExtension, StringComparison.Ordinal)
            && name[prefix.Length..^AuditLog.CheckpointExtension.Length].All(char.IsAsciiDigit) && name.Length > prefix.Length + AuditLog.CheckpointExtension.Length;
    }

    /// <summary>
    /// Takes the snapshot of <paramref name="state"/>. Checkpoints are read before the log's lines, and each append-only
    /// file is cut at its last complete line, so a line being appended meanwhile is left for the next snapshot and the
    /// log always holds at least what the latest checkpoint signs.
    /// </summary>
    public static IReadOnlyDictionary<string, byte[]> Take(AggregatorState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var files = (SortedDictionary<string, byte[]>)TakeSmallFiles(state, includeAuditLog: true);
        files[RoundStoreName] = state.Store.Snapshot();
        return files;
    }

    /// <summary>
    /// As <see cref="Take"/>, but the round store is taken without its model bytes
    /// (<see cref="AggregatorStore.SnapshotWithoutModelBytesTo"/>: every round, stage, submission and ledger row, each
    /// model version's metadata, and the server update rule's saved state without its moments, which the caller saves
    /// apart, <see cref="CoordinatorMoments"/>) into a new temporary file, <paramref name="roundStorePath"/>, for the caller to stream
    /// and delete; <paramref name="models"/> are the model versions it refers to, whose bytes the caller saves apart, each
    /// once (<see cref="PostgresCoordinatorState"/>). The returned files (the audit log's checkpoints and verifier key, the
    /// ledger) include neither the round store nor the audit log's lines (<see cref="AuditLogName"/>), which the caller
    /// saves as rows, each line once, read after these files (so the saved lines cover at least what the latest checkpoint signs).
    /// </summary>
    public static IReadOnlyDictionary<string, byte[]> TakeWithoutModelBytes(AggregatorState state, out string roundStorePath, out IReadOnlyList<ModelRecord> models)
    {
        ArgumentNullException.ThrowIfNull(state);
        IReadOnlyDictionary<string, byte[]> files = TakeSmallFiles(state, includeAuditLog: false);
        string path = Path.Combine(Path.GetTempPath(), $"securefed-snapshot-{Guid.NewGuid():N}.db");
        try
        {
            models = state.Store.SnapshotWithoutModelBytesTo(path);
        }
        catch
        {
            File.Delete(path);
            throw;
        }

        roundStorePath = path;
        return files;
    }

    /// <summary>Every file of <see cref="Take"/> but the round store (which is taken last) and, unless <paramref name="includeAuditLog"/>, the audit log's lines.</summary>
    private static IReadOnlyDictionary<string, byte[]> TakeSmallFiles(AggregatorState state, bool includeAuditLog)
    {
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        string audit = AggregatorState.AuditDirectory(state.DataDirectory);
        string checkpoints = Path.Combine(audit, AuditLog.CheckpointDirectoryName);
        string latest = Path.Combine(audit, AuditLog.LatestCheckpointFileName);
        if (File.Exists(latest))
        {
            files["audit/" + AuditLog.LatestCheckpointFileName] = File.ReadAllBytes(latest);
        }

        string verifier = Path.Combine(audit, AuditLog.VerifierKeyFileName);
        if (File.Exists(verifier))
        {
            files["audit/" + AuditLog.VerifierKeyFileName] = File.ReadAllBytes(verifier);
        }

        if (Directory.Exists(checkpoints))
        {
            foreach (string file in Directory.EnumerateFiles(checkpoints, "*" + AuditLog.CheckpointExtension))
            {
                string name = "audit/" + AuditLog.CheckpointDirectoryName + "/" + Path.GetFileName(file);
                if (IsAllowedName(name))
                {
                    files[name] = File.ReadAllBytes(file);
                }
            }
        }

        if (includeAuditLog)
        {
            files[AuditLogName] = CompleteLines(File.ReadAllBytes(Path.Combine(audit, AuditLog.LogFileName)));
        }

        string ledger = AggregatorState.PrivacyLedgerPath(state.DataDirectory);
        if (File.Exists(ledger))
        {
            files["privacy-ledger.jsonl"] = CompleteLines(File.ReadAllBytes(ledger));
        }

        return files;
    }

    /// <summary>
    /// Writes <paramref name="files"/> into <paramref name="dataDirectory"/> (<see cref="Stage"/>, then <see cref="Install"/>).
    /// A directory that already holds files (this silo's state from an earlier term, possibly newer than what reached the
    /// database before it lost the lease) is moved aside first to <c>&lt;dataDirectory&gt;.superseded-&lt;epoch&gt;</c>,
    /// never deleted: the database is the authority. Returns the folder moved aside, or null.
    /// </summary>
    /// <exception cref="InvalidDataException">A name is not one a snapshot holds (nothing is written).</exception>
    public static string? Restore(IReadOnlyDictionary<string, byte[]> files, string dataDirectory, long epoch)
    {
        string staged = Stage(files, dataDirectory, epoch);
        try
        {
            return Install(staged, dataDirectory, epoch);
        }
        catch
        {
            Directory.Delete(staged, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// Writes <paramref name="files"/> into a new directory beside <paramref name="dataDirectory"/>
    /// (<c>&lt;dataDirectory&gt;.restoring-&lt;epoch&gt;-&lt;random&gt;</c>) and returns it; <paramref name="dataDirectory"/>
    /// itself is not touched, so what is restored can be completed and checked (the round store's model versions) before
    /// <see cref="Install"/>. The caller deletes the directory if it does not install it.
    /// </summary>
    /// <exception cref="InvalidDataException">A name is not one a snapshot holds (nothing is written).</exception>
    public static string Stage(IReadOnlyDictionary<string, byte[]> files, string dataDirectory, long epoch)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        string[] bad = [.. files.Keys.Where(n => !IsAllowedName(n))];
        if (bad.Length > 0)
        {
            throw new InvalidDataException($"the coordinator state in the cluster's database holds files a snapshot never holds: {string.Join(", ", bad)}; nothing was restored");
        }

        RemoveAbandonedStaging(dataDirectory);
        string staged = $"{Path.GetFullPath(dataDirectory)}.restoring-{epoch}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        try
        {
            Directory.CreateDirectory(staged);
            foreach ((string name, byte[] bytes) in files)
            {
                string path = Path.Combine(staged, name.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }
        }
        catch
        {
            if (Directory.Exists(staged))
            {
                Directory.Delete(staged, recursive: true);
            }

            throw;
        }

        return staged;
    }

    /// <summary>
    /// Deletes the staging directories (<c>&lt;dataDirectory&gt;.restoring-*</c>) that a restore killed midway left beside
    /// <paramref name="dataDirectory"/> (a killed process never reaches its clean-up); only this silo restores into them,
    /// one restore at a time under the lease. Data directories moved aside (<c>.superseded-*</c>) are never touched.
    /// Returns the directories deleted.
    /// </summary>
    public static IReadOnlyList<string> RemoveAbandonedStaging(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        string full = Path.GetFullPath(dataDirectory).TrimEnd(Path.DirectorySeparatorChar);
        string? parent = Path.GetDirectoryName(full);
        if (parent is null || !Directory.Exists(parent))
        {
            return [];
        }

        string prefix = Path.GetFileName(full) + ".restoring-";
        var removed = new List<string>();
        foreach (string candidate in Directory.EnumerateDirectories(parent, prefix + "*"))
        {
            if (Path.GetFileName(candidate).StartsWith(prefix, StringComparison.Ordinal))
            {
                Directory.Delete(candidate, recursive: true);
                removed.Add(candidate);
            }
        }

        return removed;
    }

    /// <summary>
    /// Makes the <paramref name="staged"/> directory (<see cref="Stage"/>) the data directory: an existing
    /// <paramref name="dataDirectory"/> that holds files is moved aside to
    /// <c>&lt;dataDirectory&gt;.superseded-&lt;epoch&gt;-&lt;random&gt;</c> (never deleted), then the staged one is moved
    /// into its place. Returns the folder moved aside, or null.
    /// </summary>
    public static string? Install(string staged, string dataDirectory, long epoch)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(staged);
        ArgumentException.ThrowIfNullOrWhiteSpace(dataDirectory);
        string full = Path.GetFullPath(dataDirectory);
        string? aside = null;
        if (Directory.Exists(full))
        {
            if (Directory.EnumerateFileSystemEntries(full).Any())
            {
                aside = $"{full}.superseded-{epoch}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
                Directory.Move(full, aside);
            }
            else
            {
                Directory.Delete(full);
            }
        }

        Directory.Move(staged, full);
        return aside;
    }

    private static byte[] CompleteLines(byte[] bytes)
    {
        int end = Array.LastIndexOf(bytes, (byte)'\n');
        return end == bytes.Length - 1 ? bytes : bytes[..(end + 1)];
    }
}
