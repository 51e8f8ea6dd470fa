using System.Globalization;

using SecureFed.Federation;
using SecureFed.Federation.Internal;
using SecureFed.Privacy.Internal;

namespace SecureFed.Privacy;

/// <summary>
/// A persistent, append-only privacy-budget ledger. The agent keeps one per site (record and site guarantees, and the
/// record-level collusion guarantee of <see cref="Guarantee.RecordCollusion"/>); the aggregator
/// keeps the federation-level one (site guarantee). The file is JSON Lines: a header line naming the owner, then one
/// line per <see cref="LedgerEntry"/>; every line carries the SHA-256 (hex) of the previous line's bytes, and every
/// append is fsync'ed. Opening replays and re-verifies everything (JSON, hash chain, sequence numbers, owner, the
/// recorded epsilon against a fresh replay of the accountant); any corruption is an <see cref="InvalidDataException"/>
/// naming the file and line, never a silent reset. A failed append throws and truncates the file back to its previous
/// length. Thread-safe.
/// </summary>
public sealed class PrivacyLedger
{
    private const double EpsilonTolerance = 1e-9;

    /// <summary>The largest ledger file opened (256 MiB; an entry line is about 330 bytes).</summary>
    internal const long MaxFileBytes = 256L * 1024 * 1024;

    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly List<LedgerEntry> _entries = [];

    // The latest round recorded per guarantee (rounds never go back within one), so checking an entry does not scan the ledger.
    private readonly Dictionary<Guarantee, long> _lastRound = [];
    private readonly Dictionary<Guarantee, RdpAccountant> _accountants = new()
    {
        [Guarantee.Record] = new RdpAccountant(RdpOrders.Opacus),
        [Guarantee.Site] = new RdpAccountant(RdpOrders.Opacus),
        [Guarantee.RecordCollusion] = new RdpAccountant(RdpOrders.Opacus),
    };

    private long _length;
    private string _lastHash = LedgerCodec.GenesisHash;

    private PrivacyLedger(string path, string owner, bool readOnly, TimeProvider time)
    {
        FilePath = path;
        Owner = owner;
        IsReadOnly = readOnly;
        _time = time;
    }

    /// <summary>The ledger file.</summary>
    public string FilePath { get; }

    /// <summary>The owner named in the header (site or federation id).</summary>
    public string Owner { get; }

    /// <summary>True for ledgers opened with <see cref="OpenReadOnly"/>.</summary>
    public bool IsReadOnly { get; }

    /// <summary>A snapshot of all entries in file order.</summary>
    public IReadOnlyList<LedgerEntry> Entries
    {
        get
        {
            lock (_gate)
            {
                return _entries.ToArray();
            }
        }
    }

    /// <summary>Test hook: replaces "write the bytes and fsync" so tests can simulate a failing disk.</summary>
    internal Action<FileStream, byte[]> AppendWriter { get; set; } = static (stream, bytes) =>
    {
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    };

    /// <summary>
    /// Opens the ledger at <paramref name="path"/> for <paramref name="owner"/>, creating it (atomically, with its
    /// header) if it does not exist. An existing ledger is fully verified and must belong to <paramref name="owner"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is corrupt, belongs to another owner, is a directory or a link to nothing, or is larger than a ledger holds (256 MiB).</exception>
    /// <exception cref="IOException">The file cannot be read or created.</exception>
    public static PrivacyLedger Open(string path, string owner, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentException.ThrowIfNullOrWhiteSpace(owner);
        TimeProvider time = timeProvider ?? TimeProvider.System;
        string full = Path.GetFullPath(path);
        ThrowIfNotAFile(full);
        if (!File.Exists(full))
        {
            Create(full, owner, time);
        }

        PrivacyLedger ledger = Load(full, readOnly: false, time);
        if (!string.Equals(ledger.Owner, owner, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"Privacy ledger '{full}' belongs to '{ledger.Owner}', not to '{owner}' (line 1); refusing to use another party's ledger.");
        }

        return ledger;
    }

    /// <summary>Opens and fully verifies an existing ledger for auditing; it cannot be appended to.</summary>
    /// <exception cref="InvalidDataException">The file is corrupt, is a directory or a link to nothing, or is larger than a ledger holds (256 MiB).</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static PrivacyLedger OpenReadOnly(string path, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        ThrowIfNotAFile(full);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Privacy ledger '{full}' does not exist.", full);
        }

        return Load(full, readOnly: true, timeProvider ?? TimeProvider.System);
    }

    /// <summary>
    /// Removes a torn last line (no terminating newline) from the ledger at <paramref name="path"/>, the damage a crash or a
    /// power loss in the middle of <see cref="Record"/> leaves, so that its owner can go on without editing the file by
    /// hand. Safe only because of the order of the owner's writes: an append is fsync'ed before anything it accounts for
    /// leaves (the agent appends before it uploads its masked input and before it reveals its unmasking shares), so a torn
    /// line is a charge whose release never happened; the aggregator charges after the fact and, at start-up, charges again
    /// a round whose charge is missing. Everything else is checked as <see cref="Open"/> checks it (every complete line:
    /// JSON, hash chain, sequence numbers, owner header, replayed epsilons) and any other damage is refused with nothing
    /// changed. With <paramref name="apply"/> the original file is first kept byte for byte beside the ledger as
    /// <c>&lt;file&gt;.torn-&lt;UTC time&gt;</c> (never over an existing file), then the complete lines replace the file
    /// atomically (temporary file, fsync, rename, fsync of the folder); without it nothing is written (a dry run).
    /// </summary>
    /// <param name="path">The ledger file.</param>
    /// <param name="apply">False: only verify and say what the repair would remove. True: repair.</param>
    /// <param name="writerLockPath">The lock file every process that appends to this ledger holds while it runs (for the
    /// agent and the aggregator: their data folder's <c>audit/.lock</c>, held by their audit log), taken exclusively for
    /// the whole repair so that no append comes between the check and the rewrite. Null, or a lock file whose folder does
    /// not exist (no agent or aggregator ever ran there): no lock is taken.</param>
    /// <param name="expectedOwner">When given, the header must name this owner, as <see cref="Open"/> requires.</param>
    /// <param name="timeProvider">Clock for the backup's name (the system clock by default).</param>
    /// <param name="writerLockHeld">True when the caller already holds <paramref name="writerLockPath"/> for the whole call (the
    /// CLI holds it through the audit log it opened to record the repair): it is not taken again, since a second exclusive
    /// open of the same lock file is refused even within one process, and the result names it as held.</param>
    /// <param name="beforeReplace">With <paramref name="apply"/> and a torn line only: called after the backup is written and
    /// before the ledger is replaced, with the result the repair will have (<see cref="LedgerRepairResult.Applied"/> true,
    /// the backup's path, the verified complete lines). The CLI records the repair in the audit log here, so the record is
    /// on disk before the ledger changes. An exception from it leaves the ledger as it was (the backup stays) and is thrown
    /// on.</param>
    /// <exception cref="InvalidDataException">The ledger is damaged in some other way, belongs to another owner, is not a file, or the backup name is taken; nothing was changed.</exception>
    /// <exception cref="IOException">The lock is held (an agent or aggregator is running), or a write failed; the ledger is as it was.</exception>
    /// <exception cref="FileNotFoundException">The ledger does not exist.</exception>
    public static LedgerRepairResult RepairTornTail(string path, bool apply, string? writerLockPath, string? expectedOwner = null, TimeProvider? timeProvider = null,
                                                    bool writerLockHeld = false, Action<LedgerRepairResult>? beforeReplace = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (writerLockHeld)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(writerLockPath);
        }

        TimeProvider time = timeProvider ?? TimeProvider.System;
        string full = Path.GetFullPath(path);
        ThrowIfNotAFile(full);
        if (new FileInfo(full).LinkTarget is { } target)
        {
            // The rename would replace the link with a file and leave the ledger it points to torn.
            throw new InvalidDataException($"Privacy ledger '{full}' is a symbolic link to '{target}'; nothing was changed. Repair the file it links to instead.");
        }

        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"Privacy ledger '{full}' does not exist.", full);
        }

        using FileStream? held = writerLockHeld ? null : TakeWriterLock(writerLockPath, full);
        byte[] content = ReadAll(full);
        int complete = CompleteLength(content);
        PrivacyLedger ledger;
        try
        {
            // No complete line at all (empty, or a header without its newline) is refused by Verify: the header is renamed
            // into place whole, so no crash leaves it so.
            ledger = Verify(full, complete == 0 ? content : content.AsMemory(0, complete), readOnly: true, time);
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException(
                $"{ex.Message} Nothing was changed: 'ledger repair' removes only a torn last line (a crash in the middle of an append) from a ledger whose other lines all verify.", ex);
        }

        if (expectedOwner is not null && !string.Equals(ledger.Owner, expectedOwner, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"Privacy ledger '{full}' belongs to '{ledger.Owner}', not to '{expectedOwner}' (line 1); nothing was changed.");
        }

        string? lockPath = writerLockHeld ? Path.GetFullPath(writerLockPath!) : held?.Name;
        if (complete == content.Length)
        {
            return new LedgerRepairResult(full, Torn: false, Applied: false, 0, content.Length, ReadOnlyMemory<byte>.Empty, null, lockPath, ledger);
        }

        int tornLine = ledger.Entries.Count + 2;
        ReadOnlyMemory<byte> torn = content.AsMemory(complete);
        string keptSha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content.AsSpan(0, complete)));
        if (!apply)
        {
            return new LedgerRepairResult(full, Torn: true, Applied: false, tornLine, content.Length, torn, null, lockPath, ledger, keptSha256);
        }

        string backup = WriteBackup(full, content, time);
        if (new FileInfo(full).Length != content.Length)
        {
            // Only without a lock (its folder missing) can another process have written meanwhile.
            throw new IOException($"Privacy ledger '{full}' changed on disk while it was being repaired; it was not rewritten (the backup '{backup}' holds what was read). Run the repair again.");
        }

        beforeReplace?.Invoke(new LedgerRepairResult(full, Torn: true, Applied: true, tornLine, content.Length, torn, backup, lockPath, ledger, keptSha256));
        UnixFileMode mode = OperatingSystem.IsWindows() ? AtomicFile.PublicFileMode : File.GetUnixFileMode(full);
        AtomicFile.WriteAllBytes(full, content.AsSpan(0, complete), mode);
        PrivacyLedger after = Load(full, readOnly: true, time);
        return new LedgerRepairResult(full, Torn: true, Applied: true, tornLine, content.Length, torn, backup, lockPath, after, keptSha256);
    }

    /// <summary>What <paramref name="guarantee"/> has spent so far, at <paramref name="delta"/> (improved conversion).</summary>
    public PrivacySpent Spent(Guarantee guarantee, double delta)
    {
        lock (_gate)
        {
            return _accountants[guarantee].GetPrivacySpent(delta);
        }
    }

    /// <summary>
    /// Checks the ledger against an independent record of its appends (for an agent: the privacy entries of its signed
    /// audit log), which says the ledger held at least <paramref name="count"/> entries of <paramref name="guarantee"/>
    /// and had spent at least <paramref name="epsilon"/> at <paramref name="delta"/>. The hash chain needs no key, so a
    /// ledger deleted and created anew, cut after a whole line or replaced by an older copy verifies on its own; only such
    /// a record shows that it under-reports what was spent.
    /// </summary>
    /// <param name="guarantee">The guarantee the record is about.</param>
    /// <param name="count">Entries of <paramref name="guarantee"/> the record saw appended.</param>
    /// <param name="epsilon">The highest ε after an entry that the record holds, at <paramref name="delta"/>.</param>
    /// <param name="delta">The δ of <paramref name="epsilon"/>.</param>
    /// <param name="source">Where the record is, for the message (e.g. the audit log's path and line).</param>
    /// <exception cref="InvalidDataException">The ledger is behind the record.</exception>
    public void EnsureNotBehind(Guarantee guarantee, long count, double epsilon, double delta, string source)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        RdpAccountant.ValidateDelta(delta);
        lock (_gate)
        {
            long held = _entries.Count(e => e.Guarantee == guarantee);
            double spent = _accountants[guarantee].GetPrivacySpent(delta).Epsilon;
            if (held >= count && !(spent < epsilon - (EpsilonTolerance * Math.Max(1, Math.Abs(epsilon)))))
            {
                return;
            }

            throw new InvalidDataException(string.Create(
                CultureInfo.InvariantCulture,
                $"Privacy ledger '{FilePath}' is behind {source}: it holds {held} {Name(guarantee)}-level entries, spent epsilon {spent:G6} " +
                $"(delta {delta:G3}), but that record shows {count} appended and epsilon {epsilon:G6} spent. The ledger was deleted, cut short " +
                $"or replaced by an older copy and would under-report the privacy spent. The ledger is never reset automatically; restore it from a backup or investigate."));
        }
    }

    /// <summary>
    /// Would running <paramref name="planned"/> keep <paramref name="guarantee"/> within <paramref name="budgetEpsilon"/>
    /// at <paramref name="delta"/>? The round in the reason is the next round of that guarantee.
    /// </summary>
    public LedgerDecision Check(Guarantee guarantee, PlannedMechanism planned, double budgetEpsilon, double delta)
    {
        lock (_gate)
        {
            long next = _entries.Where(e => e.Guarantee == guarantee || (guarantee == Guarantee.RecordCollusion && e.Guarantee == Guarantee.Record))
                .Select(e => e.Round == long.MaxValue ? long.MaxValue : e.Round + 1).DefaultIfEmpty(1).Max(); // no wrap to a negative round
            return Check(guarantee, planned, budgetEpsilon, delta, next);
        }
    }

    /// <summary>As <see cref="Check(Guarantee, PlannedMechanism, double, double)"/> for an explicit round number.</summary>
    /// <exception cref="ArgumentOutOfRangeException">budget not &gt; 0 or delta not in (0, 1).</exception>
    public LedgerDecision Check(Guarantee guarantee, PlannedMechanism planned, double budgetEpsilon, double delta, long round)
    {
        ArgumentNullException.ThrowIfNull(planned);
        if (double.IsNaN(budgetEpsilon) || budgetEpsilon <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(budgetEpsilon), budgetEpsilon, "The epsilon budget must be > 0.");
        }

        RdpAccountant.ValidateDelta(delta);
        lock (_gate)
        {
            RdpAccountant current = _accountants[guarantee];
            double before = current.GetPrivacySpent(delta).Epsilon;
            RdpAccountant after = current.Clone();
            planned.ApplyTo(after);
            double epsilonAfter = after.GetPrivacySpent(delta).Epsilon;
            bool allowed = epsilonAfter <= budgetEpsilon;
            string reason = string.Create(
                CultureInfo.InvariantCulture,
                $"{Describe(guarantee)} would reach {epsilonAfter:F2} {(allowed ? "<=" : ">")} budget {budgetEpsilon:F2} " +
                $"(delta {delta.ToString("0.###e-00", CultureInfo.InvariantCulture)}) after round {round}" +
                $"{(allowed ? string.Empty : $"; spent so far {before:F2}")}");
            return new LedgerDecision(allowed, before, epsilonAfter, reason);
        }
    }

    /// <summary>
    /// Builds the entry that recording <paramref name="mechanism"/> now would produce (epsilon after, timestamp from
    /// the injected <see cref="TimeProvider"/>). Does not write anything.
    /// </summary>
    public LedgerEntry CreateEntry(long round, Guarantee guarantee, PlannedMechanism mechanism, double delta)
    {
        ArgumentNullException.ThrowIfNull(mechanism);
        RdpAccountant.ValidateDelta(delta);
        lock (_gate)
        {
            RdpAccountant after = _accountants[guarantee].Clone();
            mechanism.ApplyTo(after);
            return new LedgerEntry(round, guarantee, mechanism, after.GetPrivacySpent(delta).Epsilon, delta, _time.GetUtcNow());
        }
    }

    /// <summary>Creates and records an entry in one step (see <see cref="CreateEntry"/>); returns it.</summary>
    public LedgerEntry Append(long round, Guarantee guarantee, PlannedMechanism mechanism, double delta)
    {
        lock (_gate)
        {
            LedgerEntry entry = CreateEntry(round, guarantee, mechanism, delta);
            Record(entry);
            return entry;
        }
    }

    /// <summary>
    /// Appends <paramref name="entry"/> (one fsync'ed line). Its <see cref="LedgerEntry.EpsilonAfter"/> must equal the
    /// ledger's own accounting (use <see cref="CreateEntry"/>), and rounds never go backwards within a guarantee.
    /// </summary>
    /// <exception cref="ArgumentException">The entry is inconsistent with the ledger.</exception>
    /// <exception cref="InvalidOperationException">The ledger was opened read-only.</exception>
    /// <exception cref="IOException">The append failed; the file was rolled back to its previous length.</exception>
    public void Record(LedgerEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(entry.Mechanism);
        if (IsReadOnly)
        {
            throw new InvalidOperationException($"Privacy ledger '{FilePath}' was opened read-only.");
        }

        lock (_gate)
        {
            RdpAccountant after = Validate(entry, _entries.Count + 1, line: -1);
            byte[] line = LedgerCodec.EncodeEntry(_entries.Count + 1, entry, _lastHash);
            byte[] bytes = new byte[line.Length + 1];
            line.CopyTo(bytes, 0);
            bytes[^1] = (byte)'\n';

            // Unbuffered: a write that fails (e.g. ENOSPC) must not leave bytes in a FileStream buffer that the
            // rollback's SetLength or Dispose would try to flush again (failing the rollback, or replacing this
            // method's error with a bare one).
            using (var stream = new FileStream(FilePath, FileMode.Open, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0))
            {
                if (stream.Length != _length)
                {
                    throw new InvalidDataException(
                        $"Privacy ledger '{FilePath}' changed on disk since it was opened (length {stream.Length}, expected {_length}); refusing to append.");
                }

                stream.Seek(_length, SeekOrigin.Begin);
                try
                {
                    AppendWriter(stream, bytes);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    RollBack(stream);
                    throw new IOException(
                        $"Appending round {entry.Round} to privacy ledger '{FilePath}' failed ({ex.Message}); the ledger was left unchanged.", ex);
                }
            }

            _length += bytes.Length;
            _lastHash = LedgerCodec.HashLine(line);
            ApplyAccepted(entry, after);
        }
    }

    private static string Name(Guarantee guarantee) => GuaranteeNames.Of(guarantee);

    private static string Describe(Guarantee guarantee) => guarantee == Guarantee.RecordCollusion
        ? "record-level epsilon if the aggregator and all other sites collude"
        : $"{Name(guarantee)}-level epsilon";

    /// <summary>
    /// Adds a verified entry: its own guarantee's accountant becomes <paramref name="after"/>; a record entry also
    /// counts for the collusion guarantee unless it follows that guarantee's entry of the same round.
    /// </summary>
    private void ApplyAccepted(LedgerEntry entry, RdpAccountant after)
    {
        if (entry.Guarantee == Guarantee.Record && !(_entries.Count > 0 && _entries[^1] is { Guarantee: Guarantee.RecordCollusion } last && last.Round == entry.Round))
        {
            RdpAccountant collusion = _accountants[Guarantee.RecordCollusion].Clone();
            entry.Mechanism.ApplyTo(collusion);
            _accountants[Guarantee.RecordCollusion] = collusion;
        }

        _entries.Add(entry);
        _lastRound[entry.Guarantee] = entry.Round;
        _accountants[entry.Guarantee] = after;
    }

    private void RollBack(FileStream stream)
    {
        try
        {
            stream.SetLength(_length);
            stream.Flush(flushToDisk: true);
        }
        catch (IOException)
        {
            // The original exception is what matters; the length check on the next append catches a failed rollback.
        }
    }

    /// <summary>Checks an entry against the current state; returns the accountant after it.</summary>
    private RdpAccountant Validate(LedgerEntry entry, long sequence, int line)
    {
        string Fail(string what) => line > 0
            ? throw LedgerCodec.Corrupt(FilePath, line, what)
            : throw new ArgumentException($"Ledger entry #{sequence} rejected: {what}.", nameof(entry));

        if (entry.Round < 0)
        {
            Fail($"round {entry.Round} is negative");
        }

        if (!(entry.Delta > 0 && entry.Delta < 1))
        {
            Fail($"delta {entry.Delta} is not in (0, 1)");
        }

        long lastRound = _lastRound.GetValueOrDefault(entry.Guarantee);
        if (entry.Round < lastRound)
        {
            Fail($"round {entry.Round} goes back before round {lastRound} for the {Name(entry.Guarantee)} guarantee");
        }

        RdpAccountant after = _accountants[entry.Guarantee].Clone();
        entry.Mechanism.ApplyTo(after);
        double epsilon = after.GetPrivacySpent(entry.Delta).Epsilon;

        // Within the tolerance when both are finite; otherwise only the very same value matches (an infinite replay would
        // otherwise match any recorded epsilon: infinity minus anything is within infinity times the tolerance).
        bool matches = double.IsFinite(epsilon) && double.IsFinite(entry.EpsilonAfter)
            ? Math.Abs(epsilon - entry.EpsilonAfter) <= EpsilonTolerance * Math.Max(1, Math.Abs(epsilon))
            : epsilon == entry.EpsilonAfter;
        if (!matches)
        {
            Fail(string.Create(
                CultureInfo.InvariantCulture,
                $"epsilon_after {entry.EpsilonAfter:R} does not match the replayed accounting {epsilon:R}"));
        }

        return after;
    }

    /// <summary>
    /// Writes the header as a new file (<see cref="AtomicFile.CreateNew"/>: temporary file, fsync, rename without replacing
    /// anything, fsync of the folder). Without the folder's fsync the rename, and with it every fsync'ed append after it,
    /// could be lost to a power loss, and the charges with it (a ledger created anew would verify on its own).
    /// </summary>
    private static void Create(string path, string owner, TimeProvider time)
    {
        string? directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        byte[] header = LedgerCodec.EncodeHeader(owner, time.GetUtcNow());
        byte[] bytes = new byte[header.Length + 1];
        header.CopyTo(bytes, 0);
        bytes[^1] = (byte)'\n';
        AtomicFile.CreateNew(path, bytes, AtomicFile.PublicFileMode);
    }

    /// <summary>
    /// A directory, or a symbolic link to nothing, where the ledger belongs: "does not exist" would mislead, and creating a
    /// ledger there fails with a bare "already exists". A named pipe, a device or a socket (after links are followed):
    /// <see cref="File.Exists(string?)"/> is true for them, and opening a FIFO to read it waited for a writer forever (the
    /// agent's or aggregator's start-up, 'privacy ledger show' and 'ledger repair' hung, SIGTERM included).
    /// </summary>
    private static void ThrowIfNotAFile(string path)
    {
        if (Directory.Exists(path))
        {
            throw new InvalidDataException($"Privacy ledger '{path}' is a directory, not a ledger file. The ledger is never reset automatically; restore it from a backup or investigate.");
        }

        var info = new FileInfo(path);
        if (info.LinkTarget is { } target && info.ResolveLinkTarget(returnFinalTarget: true) is not { Exists: true })
        {
            throw new InvalidDataException($"Privacy ledger '{path}' is a symbolic link to '{target}', which does not exist. The ledger is never reset automatically; restore it from a backup or investigate.");
        }

        if (RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new InvalidDataException(
                $"Privacy ledger '{path}'{RegularFile.LinkText(path)} is {kind}, not a ledger file; nothing was read. The ledger is never reset automatically; restore it from a backup or investigate.");
        }
    }

    /// <summary>
    /// The writer lock of <see cref="RepairTornTail"/>: the lock file opened with <see cref="FileShare.None"/> (an advisory
    /// <c>flock</c> on Unix), as the audit log holds it for the agent's or aggregator's whole run. Null when there is no lock
    /// to take: none given, or its folder does not exist (then no process ever held it).
    /// </summary>
    private static FileStream? TakeWriterLock(string? lockPath, string ledgerPath)
    {
        if (lockPath is null)
        {
            return null;
        }

        string full = Path.GetFullPath(lockPath);
        if (!Directory.Exists(Path.GetDirectoryName(full)))
        {
            return null;
        }

        try
        {
            return new FileStream(full, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new IOException(
                $"Privacy ledger '{ledgerPath}' was not repaired: its lock file '{full}' could not be taken ({ex.Message}); an agent or aggregator " +
                "is probably running on this data folder. Stop it, then run the repair again. Nothing was changed.", ex);
        }
    }

    /// <summary>
    /// Keeps <paramref name="content"/> (the whole ledger as read under the lock) as <c>&lt;file&gt;.torn-&lt;UTC time&gt;</c>
    /// beside it, with the ledger's permissions: <see cref="AtomicFile.CreateNew"/> (temporary file, fsync, rename without
    /// replacing anything, fsync of the folder), so a backup is either whole or absent and an earlier one is never
    /// overwritten. Returns its path.
    /// </summary>
    private static string WriteBackup(string path, byte[] content, TimeProvider time)
    {
        string backup = string.Create(CultureInfo.InvariantCulture, $"{path}.torn-{time.GetUtcNow().UtcDateTime:yyyyMMddTHHmmssfffZ}");
        if (File.Exists(backup) || Directory.Exists(backup))
        {
            throw new InvalidDataException(
                $"Privacy ledger '{path}' was not repaired: its backup '{backup}' already exists and is never overwritten. Nothing was changed; run the repair again (the name has the time to the millisecond).");
        }

        try
        {
            AtomicFile.CreateNew(backup, content, OperatingSystem.IsWindows() ? AtomicFile.PublicFileMode : File.GetUnixFileMode(path));
        }
        catch (IOException ex)
        {
            throw new IOException($"Privacy ledger '{path}' was not repaired: its backup '{backup}' could not be written ({ex.Message}). Nothing was changed.", ex);
        }

        return backup;
    }

    /// <summary>Reads the whole file, refusing one larger than <see cref="MaxFileBytes"/> before reading it.</summary>
    private static byte[] ReadAll(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
        long length = stream.Length;
        if (length > MaxFileBytes)
        {
            throw new InvalidDataException(string.Create(
                CultureInfo.InvariantCulture,
                $"Privacy ledger '{path}' is {length} bytes, more than a ledger holds ({MaxFileBytes} bytes, about 800,000 entries): it is damaged or not a ledger; nothing was read. The ledger is never reset automatically; restore it from a backup or investigate."));
        }

        byte[] content = new byte[length];
        int read = stream.ReadAtLeast(content, content.Length, throwOnEndOfStream: false);
        return read == content.Length ? content : content[..read];
    }

    private static PrivacyLedger Load(string path, bool readOnly, TimeProvider time)
    {
        byte[] content = ReadAll(path);
        int complete = CompleteLength(content);
        if (complete > 0 && complete < content.Length)
        {
            // The complete lines first: the message can then say whether this is the one damage 'ledger repair' removes.
            PrivacyLedger intact = Verify(path, content.AsMemory(0, complete), readOnly, time);
            throw TornTail(path, intact.Entries.Count + 2, content.Length - complete);
        }

        return Verify(path, content, readOnly, time);
    }

    /// <summary>
    /// The bytes up to and including the last newline: the complete lines. A file whose only line is torn has none (the
    /// header is written to a temporary file and renamed into place, so no crash leaves it torn).
    /// </summary>
    private static int CompleteLength(ReadOnlySpan<byte> content) => content.LastIndexOf((byte)'\n') + 1;

    /// <summary>
    /// The refusal of a ledger whose complete lines verify but whose last line has no newline: the one damage a crash or
    /// a power loss in the middle of an append leaves, and the one <see cref="RepairTornTail"/> removes.
    /// </summary>
    private static InvalidDataException TornTail(string path, int lineNumber, int tornBytes) => new(string.Create(
        CultureInfo.InvariantCulture,
        $"Privacy ledger '{path}' is corrupt at line {lineNumber}: the last line is truncated ({tornBytes} bytes without a terminating newline), " +
        $"as a crash or power loss in the middle of an append leaves it; lines 1..{lineNumber - 1} verify. The ledger is never reset automatically. " +
        $"Stop the agent or aggregator that uses it, then run 'securefed privacy ledger repair {path}' to see what removing the torn line changes, " +
        $"and again with --apply --kit <the owner's kit folder> to remove it (the original file is kept beside it as a backup, and the repair is recorded in the signed audit log); " +
        $"or restore the ledger from a backup."));

    /// <summary>Parses and verifies <paramref name="content"/> (complete lines only), which was read from <paramref name="path"/>.</summary>
    private static PrivacyLedger Verify(string path, ReadOnlyMemory<byte> content, bool readOnly, TimeProvider time)
    {
        if (content.Length == 0)
        {
            throw LedgerCodec.Corrupt(path, 1, "the file is empty (no header)");
        }

        var lines = new List<ReadOnlyMemory<byte>>();
        ReadOnlySpan<byte> span = content.Span;
        int start = 0;
        for (int i = 0; i < span.Length; i++)
        {
            if (span[i] == (byte)'\n')
            {
                lines.Add(content.Slice(start, i - start));
                start = i + 1;
            }
        }

        if (start != content.Length)
        {
            // A header without its newline (Load passes only complete lines otherwise): no crash leaves one, so no repair.
            throw LedgerCodec.Corrupt(path, lines.Count + 1, "the last line is truncated (no terminating newline)");
        }

        (string owner, string headerPrev) = LedgerCodec.DecodeHeader(lines[0], path);
        if (headerPrev != LedgerCodec.GenesisHash)
        {
            throw LedgerCodec.Corrupt(path, 1, "the header's 'prev' is not the genesis hash");
        }

        var ledger = new PrivacyLedger(path, owner, readOnly, time);
        string previous = LedgerCodec.HashLine(lines[0].Span);
        for (int n = 1; n < lines.Count; n++)
        {
            int lineNumber = n + 1;
            if (lines[n].IsEmpty)
            {
                throw LedgerCodec.Corrupt(path, lineNumber, "empty line");
            }

            (long seq, LedgerEntry entry, string prev) = LedgerCodec.DecodeEntry(lines[n], path, lineNumber);
            if (!string.Equals(prev, previous, StringComparison.Ordinal))
            {
                throw LedgerCodec.Corrupt(path, lineNumber, "hash chain broken ('prev' is not the SHA-256 of the previous line)");
            }

            if (seq != n)
            {
                throw LedgerCodec.Corrupt(path, lineNumber, $"sequence number {seq}, expected {n}");
            }

            RdpAccountant after = ledger.Validate(entry, seq, lineNumber);
            ledger.ApplyAccepted(entry, after);
            previous = LedgerCodec.HashLine(lines[n].Span);
        }

        ledger._lastHash = previous;
        ledger._length = content.Length;
        return ledger;
    }
}
