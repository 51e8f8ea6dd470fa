using System.Globalization;

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
                .Select(e => e.Round + 1).DefaultIfEmpty(1).Max();
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

        long lastRound = _entries.Where(e => e.Guarantee == entry.Guarantee).Select(e => e.Round).DefaultIfEmpty(0).Max();
        if (entry.Round < lastRound)
        {
            Fail($"round {entry.Round} goes back before round {lastRound} for the {Name(entry.Guarantee)} guarantee");
        }

        RdpAccountant after = _accountants[entry.Guarantee].Clone();
        entry.Mechanism.ApplyTo(after);
        double epsilon = after.GetPrivacySpent(entry.Delta).Epsilon;
        if (!(Math.Abs(epsilon - entry.EpsilonAfter) <= EpsilonTolerance * Math.Max(1, Math.Abs(epsilon))))
        {
            Fail(string.Create(
                CultureInfo.InvariantCulture,
                $"epsilon_after {entry.EpsilonAfter:R} does not match the replayed accounting {epsilon:R}"));
        }

        return after;
    }

    private static void Create(string path, string owner, TimeProvider time)
    {
        string? directory = Path.GetDirectoryName(path);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        byte[] header = LedgerCodec.EncodeHeader(owner, time.GetUtcNow());
        string temp = path + ".creating-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(header);
                stream.WriteByte((byte)'\n');
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: false);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    /// <summary>
    /// A directory, or a symbolic link to nothing, where the ledger belongs: "does not exist" would mislead, and creating a
    /// ledger there fails with a bare "already exists".
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
        if (content.Length == 0)
        {
            throw LedgerCodec.Corrupt(path, 1, "the file is empty (no header)");
        }

        var lines = new List<ReadOnlyMemory<byte>>();
        int start = 0;
        for (int i = 0; i < content.Length; i++)
        {
            if (content[i] == (byte)'\n')
            {
                lines.Add(content.AsMemory(start, i - start));
                start = i + 1;
            }
        }

        if (start != content.Length)
        {
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
