using System.Globalization;
using System.Security.Cryptography;

using SecureFed.Audit.Internal;
using SecureFed.Crypto;

namespace SecureFed.Audit;

/// <summary>
/// An append-only, tamper-evident audit log in a directory: <c>audit.jsonl</c> (one canonical JSON event per line),
/// an RFC 9162 Merkle tree over the lines, and C2SP signed checkpoints in <c>checkpoints/&lt;size&gt;.checkpoint</c>
/// and <c>checkpoint.latest</c>, signed with Ed25519 under the key name <c>origin</c>. One writer per directory
/// (enforced with a lock file); <see cref="Append"/> is thread-safe and every line is written with a single write
/// and fsync. Opening writes a <see cref="AuditEvents.LogOpened"/> event and signs a checkpoint; disposing signs a
/// final checkpoint.
/// </summary>
public sealed class AuditLog : IDisposable
{
    /// <summary>File name of the log inside the directory.</summary>
    public const string LogFileName = "audit.jsonl";

    /// <summary>Folder of signed checkpoints inside the directory.</summary>
    public const string CheckpointDirectoryName = "checkpoints";

    /// <summary>File holding the newest signed checkpoint.</summary>
    public const string LatestCheckpointFileName = "checkpoint.latest";

    /// <summary>File holding the log's verifier key string (trust on first use; auditors should pin it with --key).</summary>
    public const string VerifierKeyFileName = "verifier.key";

    /// <summary>Folder where torn tails are moved by a repairing open.</summary>
    public const string QuarantineDirectoryName = "quarantine";

    /// <summary>Extension of checkpoint files.</summary>
    public const string CheckpointExtension = ".checkpoint";

    /// <summary>
    /// The lock file inside the directory, held exclusively (<see cref="FileShare.None"/>) by the one writer while the log is
    /// open: for an agent or an aggregator, its whole run. The privacy-ledger repair takes it too, so that no append to the
    /// ledger beside the audit folder comes between its check and its rewrite; with <c>--apply</c> it holds it through the
    /// audit log it opens to record the repair (<see cref="AuditEvents.PrivacyLedgerRepaired"/>), not a second time.
    /// </summary>
    public const string LockFileName = ".lock";

    private readonly Lock _gate = new();
    private readonly string _logPath;
    private readonly string _checkpointDirectory;
    private readonly Ed25519PrivateKey _signingKey;
    private readonly NoteVerifierKey _verifierKey;
    private readonly TimeProvider _time;
    private readonly CompactRange _range;
    private FileStream? _lockFile;
    private FileStream? _stream;
    private SignedCheckpoint? _lastCheckpoint;
    private long _size;
    private bool _faulted;
    private bool _disposed;

    private AuditLog(string directory, string actor, string origin, Ed25519PrivateKey signingKey, TimeProvider time, CompactRange range)
    {
        Directory = directory;
        Actor = actor;
        Origin = origin;
        _signingKey = signingKey;
        _verifierKey = NoteVerifierKey.FromEd25519(origin, signingKey.PublicKey);
        _time = time;
        _range = range;
        _size = range.Size;
        _logPath = Path.Combine(directory, LogFileName);
        _checkpointDirectory = Path.Combine(directory, CheckpointDirectoryName);
    }

    /// <summary>The log directory.</summary>
    public string Directory { get; }

    /// <summary>The identity written in every line (for an agent: its site id).</summary>
    public string Actor { get; }

    /// <summary>The checkpoint origin and signing key name.</summary>
    public string Origin { get; }

    /// <summary>Number of lines in the log.</summary>
    public long Size => Interlocked.Read(ref _size);

    /// <summary>The signed-note verifier key string of this log (<c>origin+hash+base64(0x01||pubkey)</c>).</summary>
    public string VerifierKey => _verifierKey.ToString();

    /// <summary>The newest checkpoint signed by (or verified when opening) this log, if any.</summary>
    public SignedCheckpoint? LatestCheckpoint
    {
        get
        {
            lock (_gate)
            {
                return _lastCheckpoint;
            }
        }
    }

    /// <summary>
    /// Opens (or creates) the log in <paramref name="directory"/>. Re-opening verifies every existing line and the latest
    /// checkpoint and continues the sequence.
    /// </summary>
    /// <param name="directory">The log directory (created if missing).</param>
    /// <param name="actor">The identity written in every line.</param>
    /// <param name="signingKey">The checkpoint signing key (copied; the caller keeps ownership).</param>
    /// <param name="origin">The checkpoint origin and key name, e.g. <c>securefed.example/aggregator</c>.</param>
    /// <param name="timeProvider">Clock for timestamps (the system clock by default).</param>
    /// <exception cref="InvalidDataException">The existing log is damaged: a torn last line (its inner exception an <see cref="AuditLogTornTailException"/>), a bad line, or a checkpoint that does not match.</exception>
    /// <exception cref="InvalidOperationException">Another writer holds the log, or it belongs to another actor, origin or key.</exception>
    public static AuditLog Open(string directory, string actor, Ed25519PrivateKey signingKey, string origin, TimeProvider? timeProvider = null) =>
        Open(directory, actor, signingKey, origin, repairTornTail: false, timeProvider);

    /// <summary>
    /// Opens the log like <see cref="Open(string, string, Ed25519PrivateKey, string, TimeProvider?)"/>; with
    /// <paramref name="repairTornTail"/> a torn last line (a crash mid-write) is moved to <c>quarantine/</c> and a
    /// <see cref="AuditEvents.TornTailQuarantined"/> event records its size and digest, instead of failing.
    /// </summary>
    public static AuditLog Open(string directory, string actor, Ed25519PrivateKey signingKey, string origin, bool repairTornTail, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentNullException.ThrowIfNull(origin);
        CanonicalJson.ThrowIfInvalidText(actor, nameof(actor));
        if (!NoteVerifierKey.IsValidKeyName(origin))
        {
            throw new ArgumentException($"Origin '{origin}' must be non-empty without spaces or '+' (it is also the signing key name).", nameof(origin));
        }

        string fullPath = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(fullPath);
        System.IO.Directory.CreateDirectory(Path.Combine(fullPath, CheckpointDirectoryName));

        byte[] seed = new byte[Ed25519.SeedSize];
        Ed25519PrivateKey key;
        try
        {
            signingKey.ExportSeed(seed);
            key = Ed25519PrivateKey.FromSeed(seed);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }

        AuditLog? log = null;
        try
        {
            log = new AuditLog(fullPath, actor, origin, key, timeProvider ?? TimeProvider.System, new CompactRange());
            log.Initialize(repairTornTail);
            return log;
        }
        catch
        {
            if (log is null)
            {
                key.Dispose();
            }
            else
            {
                log.Release();
            }

            throw;
        }
    }

    /// <summary>
    /// Appends one event and returns its sequence number (= its 1-based line number). Thread-safe; the line is on disk
    /// (fsync) when this returns.
    /// </summary>
    /// <param name="eventType">Event type, e.g. <see cref="AuditEvents.RoundOpened"/>: 1-64 characters of <c>[a-z0-9_.-]</c>.</param>
    /// <param name="fields">Fills the event's fields.</param>
    /// <exception cref="InvalidOperationException">A previous write failed; the log must be reopened.</exception>
    /// <exception cref="ArgumentException">The line would be longer than an audit line can be (64 MiB): nothing is written.</exception>
    public long Append(string eventType, Action<AuditFields> fields)
    {
        ArgumentNullException.ThrowIfNull(eventType);
        ArgumentNullException.ThrowIfNull(fields);
        if (!IsValidEventType(eventType))
        {
            throw new ArgumentException($"Event type '{eventType}' must be 1-64 characters of a-z, 0-9, '_', '.', '-'.", nameof(eventType));
        }

        var values = new AuditFields();
        fields(values);
        return AppendCore(eventType, values);
    }

    /// <summary>
    /// Signs a checkpoint for the current size and stores it in <c>checkpoints/&lt;size&gt;.checkpoint</c> and
    /// <c>checkpoint.latest</c>. Returns the previous checkpoint when nothing was appended since.
    /// </summary>
    /// <exception cref="InvalidOperationException">The new checkpoint would be inconsistent with one signed before.</exception>
    public SignedCheckpoint Checkpoint()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfFaulted();
            return CheckpointCore();
        }
    }

    /// <summary>
    /// Every line of type <paramref name="eventType"/> now in the log, in order: lines verified when the log was opened or
    /// written by it since. Reads the log file again.
    /// </summary>
    /// <exception cref="InvalidDataException">The file was truncated or a line changed under the open log.</exception>
    public IReadOnlyList<AuditEvent> ReadEvents(string eventType)
    {
        ArgumentNullException.ThrowIfNull(eventType);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // The file is read line by line (LogReader: no more than the longest line is held) into a compact range (no leaf
            // hash is kept per line) whose root must be the open log's: a line edited, inserted or reordered under it is
            // refused, as when each line's hash was compared on its own.
            var events = new List<AuditEvent>();
            var range = new CompactRange();
            string? unparsed = null;
            using (LogReader reader = LogReader.Open(_logPath))
            {
                while (range.Size < _size && reader.TryReadLine(out LogLine line))
                {
                    range.Append(line.LeafHash);
                    if (unparsed is not null)
                    {
                        continue;
                    }

                    LogEntry? entry = line.Oversize ? null : LogEntry.TryParse(line.Bytes, line.Number, out unparsed);
                    if (line.Oversize)
                    {
                        unparsed = line.OversizeProblem;
                    }
                    else if (entry is not null && entry.Type == eventType)
                    {
                        events.Add(new AuditEvent(entry.Line, entry.Type, entry.Fields));
                    }
                }

                if (reader.LineCount < _size)
                {
                    throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                        $"{_logPath} holds {reader.LineCount} complete line(s) but this log wrote or verified {_size}: it was truncated while open."));
                }
            }

            if (!range.RootHash().AsSpan().SequenceEqual(_range.RootHash()))
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"{_logPath}: lines 1..{_size} no longer hash to the root this log verified or wrote: a line changed on disk since (run 'securefed audit verify {Directory}')."));
            }

            return unparsed is null ? events : throw new InvalidDataException($"{_logPath}: {unparsed}.");
        }
    }

    /// <summary>
    /// The privacy charges this log records as <paramref name="eventType"/> lines (<see cref="AuditEvents.PrivacyLedger"/>
    /// of an agent, <see cref="AuditEvents.PrivacySpent"/> of the aggregator), per guarantee. Reads the log file again.
    /// </summary>
    /// <exception cref="InvalidDataException">The file was truncated or a line changed under the open log.</exception>
    public IReadOnlyList<AuditedPrivacy> ReadPrivacyCharges(string eventType) => AuditedPrivacy.Of(ReadEvents(eventType), _logPath);

    /// <summary>The current RFC 9162 root hash over all lines.</summary>
    public byte[] RootHash()
    {
        lock (_gate)
        {
            return _range.RootHash();
        }
    }

    /// <summary>
    /// Signs a final checkpoint if lines were appended since the last one (best effort: failures are not thrown from
    /// here; call <see cref="Checkpoint"/> first to observe them), then releases the log.
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            try
            {
                if (!_faulted && _stream is not null && (_lastCheckpoint is null || _lastCheckpoint.Size != _size))
                {
                    CheckpointCore();
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException or InvalidDataException or UnauthorizedAccessException)
            {
                // Dispose must not throw (InvalidDataException: a file it reads is no longer one it can read); the unsigned
                // tail stays verifiable and the verifier reports it as not yet covered. Call Checkpoint() before disposing
                // to observe this failure.
            }
            finally
            {
                Release();
            }
        }
    }

    internal static bool IsValidEventType(string eventType)
    {
        if (eventType.Length is 0 or > 64)
        {
            return false;
        }

        foreach (char c in eventType)
        {
            if (!(char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private void Release()
    {
        _disposed = true;
        _stream?.Dispose();
        _stream = null;
        _lockFile?.Dispose();
        _lockFile = null;
        _signingKey.Dispose();
    }

    private void Initialize(bool repairTornTail)
    {
        try
        {
            _lockFile = new FileStream(Path.Combine(Directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex)
        {
            throw new InvalidOperationException($"Audit log {Directory} is already open by another writer ({ex.Message}).", ex);
        }

        string keyPath = Path.Combine(Directory, VerifierKeyFileName);
        if (File.Exists(keyPath))
        {
            string stored = DurableFile.ReadAllText(keyPath).Trim();
            if (stored != VerifierKey)
            {
                throw new InvalidOperationException(
                    $"Audit log {Directory} belongs to verifier key {stored}; refusing to continue it with a different key or origin ({VerifierKey}).");
            }
        }

        (long resumed, QuarantinedTail? quarantined) = LoadExisting(repairTornTail);
        if (!File.Exists(keyPath))
        {
            DurableFile.WriteAllText(keyPath, VerifierKey + "\n");
        }

        _stream = new FileStream(_logPath, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 0);
        if (quarantined is { } tail)
        {
            AppendCore(AuditEvents.TornTailQuarantined, new AuditFields()
                .Add("line", tail.Line)
                .Add(AuditFieldNames.Bytes, tail.Bytes)
                .AddDigest(AuditFieldNames.Sha256, tail.Sha256)
                .Add("file", tail.File));
        }

        AppendCore(AuditEvents.LogOpened, new AuditFields()
            .Add("origin", Origin)
            .Add("verifier_key", VerifierKey)
            .Add("resumed_lines", resumed));
        lock (_gate)
        {
            CheckpointCore();
        }
    }

    private (long Resumed, QuarantinedTail? Quarantined) LoadExisting(bool repairTornTail)
    {
        if (System.IO.Directory.Exists(_logPath))
        {
            throw new InvalidDataException($"{_logPath} is a folder, not the audit log file; move it away or restore the log.");
        }

        if (!File.Exists(_logPath))
        {
            if (LatestOnDisk() is { } orphan)
            {
                throw new InvalidDataException(
                    $"{_logPath} is missing but {orphan.Path} covers {orphan.Checkpoint.Size} line(s): the log was deleted or rolled back.");
            }

            return (0, null);
        }

        // The file is read in chunks and line by line (LogReader): it was read whole into memory, which grew with the log.
        QuarantinedTail? quarantined = null;
        long? cutAt = null;
        using (LogReader tail = LogReader.Open(_logPath))
        {
            if (tail.FindTornTail() is { } found)
            {
                quarantined = QuarantineTornTail(tail, found.IntactLength, found.LineCount, repairTornTail);
                cutAt = found.IntactLength;
            }
        }

        if (cutAt is { } intact)
        {
            // Cut once the reader is closed: it shares the file for reading only, so opening it for writing while the reader
            // was open (as this did) is a sharing violation on Windows, and the repair failed there.
            using var stream = new FileStream(_logPath, FileMode.Open, FileAccess.Write, FileShare.Read);
            stream.SetLength(intact);
            stream.Flush(flushToDisk: true);
        }

        // Each line's hash goes into the compact range and is not kept (a leaf hash per line grew the writer's memory with the
        // log for as long as it ran); the root at the newest checkpoint's size is taken on the way.
        (SignedCheckpoint Checkpoint, string Path)? latest = LatestOnDisk();
        byte[]? rootAtLatest = latest is { } l0 && l0.Checkpoint.Size == 0 ? _range.RootHash() : null;
        using (LogReader reader = LogReader.Open(_logPath))
        {
            while (reader.TryReadLine(out LogLine line))
            {
                long lineNumber = line.Number;
                string? problem = line.Oversize ? line.OversizeProblem : null;
                LogEntry entry = (line.Oversize ? null : LogEntry.TryParse(line.Bytes, lineNumber, out problem))
                    ?? throw new InvalidDataException($"{_logPath}: {problem}.");
                if (entry.Actor != Actor)
                {
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"{_logPath}: line {lineNumber} was written by actor '{entry.Actor}', but the log is being opened as '{Actor}'."));
                }

                _range.Append(line.LeafHash);
                if (latest is { } l && l.Checkpoint.Size == _range.Size)
                {
                    rootAtLatest = _range.RootHash();
                }
            }
        }

        _size = _range.Size;
        if (latest is { } newest)
        {
            CheckOnDiskCheckpoint(newest.Checkpoint, newest.Path, rootAtLatest);
            _lastCheckpoint = newest.Checkpoint;
        }

        return (_range.Size, quarantined);
    }

    /// <summary>
    /// A torn tail of <see cref="LogReader.Length"/> − <paramref name="intact"/> bytes after <paramref name="lines"/>
    /// complete lines: refused, or with <paramref name="repairTornTail"/> copied to quarantine/ (in chunks, not read into
    /// memory); the caller cuts it off the log once <paramref name="file"/> is closed.
    /// </summary>
    private QuarantinedTail QuarantineTornTail(LogReader file, long intact, long lines, bool repairTornTail)
    {
        long tornLength = file.Length - intact;
        long tornLineNumber = lines + 1;

        // A crash mid-write tears a line no checkpoint has signed yet (a checkpoint is signed over complete lines
        // only). A torn line a checkpoint covers was whole when it was signed: the file was cut or altered since,
        // and "repairing" it would move a signed line into quarantine and leave a log shorter than its checkpoint.
        if (LatestOnDisk() is { } signed && signed.Checkpoint.Size >= tornLineNumber)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{_logPath}: line {tornLineNumber} is cut short ({tornLength} bytes without a final newline), but {signed.Path} " +
                $"signed {signed.Checkpoint.Size} complete line(s): the line was whole when it was signed, so this is no crash mid-write " +
                $"but a log cut short or altered afterwards. Nothing was changed (a torn-tail repair would discard a signed line); " +
                $"restore {LogFileName} from a backup ('securefed audit verify {Directory}' lists the problems)."));
        }

        if (!repairTornTail)
        {
            string message = string.Create(CultureInfo.InvariantCulture,
                $"{_logPath}: line {tornLineNumber} is torn ({tornLength} bytes without a final newline; a crash mid-write?). " +
                $"Lines 1..{lines} are intact. Reopen with repairTornTail: true to move the torn bytes to {QuarantineDirectoryName}/ and continue.");
            throw new InvalidDataException(message, new AuditLogTornTailException(_logPath, tornLineNumber, tornLength, lines, message));
        }

        string quarantine = Path.Combine(Directory, QuarantineDirectoryName);
        System.IO.Directory.CreateDirectory(quarantine);
        string name = string.Create(CultureInfo.InvariantCulture,
            $"torn-line-{tornLineNumber}-{_time.GetUtcNow().UtcDateTime:yyyyMMddTHHmmssfffZ}.bin");
        byte[] sha256 = file.CopyTailTo(intact, Path.Combine(quarantine, name));
        return new QuarantinedTail(tornLineNumber, tornLength, sha256, QuarantineDirectoryName + "/" + name);
    }

    /// <summary>The newest parseable checkpoint among checkpoint.latest and checkpoints/*.checkpoint.</summary>
    private (SignedCheckpoint Checkpoint, string Path)? LatestOnDisk()
    {
        (SignedCheckpoint Checkpoint, string Path)? best = null;
        var candidates = new List<string>();
        string latestPath = Path.Combine(Directory, LatestCheckpointFileName);
        if (File.Exists(latestPath))
        {
            candidates.Add(latestPath);
        }

        candidates.AddRange(System.IO.Directory.EnumerateFiles(_checkpointDirectory, "*" + CheckpointExtension));
        foreach (string path in candidates)
        {
            SignedCheckpoint checkpoint;
            try
            {
                checkpoint = SignedCheckpoint.Parse(DurableFile.ReadAllText(path));
            }
            catch (FormatException ex)
            {
                throw new InvalidDataException($"{path} is not a valid checkpoint: {ex.Message}", ex);
            }

            if (best is null || checkpoint.Size > best.Value.Checkpoint.Size)
            {
                best = (checkpoint, path);
            }
        }

        return best;
    }

    /// <summary>Checks the newest checkpoint on disk against the lines just read; <paramref name="root"/> is theirs at its size (null: fewer lines).</summary>
    private void CheckOnDiskCheckpoint(SignedCheckpoint checkpoint, string path, byte[]? root)
    {
        if (checkpoint.Origin != Origin)
        {
            throw new InvalidOperationException($"{path} has origin '{checkpoint.Origin}', but the log is being opened with origin '{Origin}'.");
        }

        if (!checkpoint.TryVerify(_verifierKey, out string? problem))
        {
            throw new InvalidDataException($"{path}: {problem}.");
        }

        if (checkpoint.Size > _range.Size || root is null)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{path} covers {checkpoint.Size} line(s) but {_logPath} has only {_range.Size}: lines were deleted or the log was rolled back."));
        }

        if (!root.AsSpan().SequenceEqual(checkpoint.RootHash))
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"{path}: lines 1..{checkpoint.Size} of {_logPath} no longer hash to the signed root: a line was edited, inserted, deleted or reordered."));
        }
    }

    private long AppendCore(string eventType, AuditFields fields)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfFaulted();
            long seq = _size + 1;
            byte[] line = CanonicalJson.SerializeLine(seq, CanonicalJson.FormatTimestamp(_time.GetUtcNow()), Actor, eventType, fields);
            if (line.Length > LogReader.MaxLineBytes)
            {
                // Readers keep a line up to this size to parse it, and name a longer one as damage: it is not written.
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"A {eventType} line of {line.Length:N0} bytes is longer than the {LogReader.MaxLineBytes:N0} an audit line can be; it was not written (bound its fields' values)."), nameof(fields));
            }

            byte[] record = new byte[line.Length + 1];
            line.CopyTo(record, 0);
            record[^1] = (byte)'\n';
            try
            {
                _stream!.Write(record);
                _stream.Flush(flushToDisk: true);
            }
            catch (IOException)
            {
                _faulted = true;
                throw;
            }

            _range.Append(MerkleTree.LeafHash(line));
            Interlocked.Exchange(ref _size, seq);
            return seq;
        }
    }

    private SignedCheckpoint CheckpointCore()
    {
        if (_lastCheckpoint is { } last && last.Size == _size)
        {
            return last;
        }

        // No consistency proof against the previous checkpoint is built here: that needed every line's leaf hash in memory,
        // and the compact range only appends to the tree whose root the previous checkpoint signed (or that opening checked
        // against it), so the new tree extends it by construction.
        byte[] root = _range.RootHash();

        string latestPath = Path.Combine(Directory, LatestCheckpointFileName);
        if (File.Exists(latestPath))
        {
            string onDisk = DurableFile.ReadAllText(latestPath);
            if (_lastCheckpoint is null || onDisk != _lastCheckpoint.Text)
            {
                SignedCheckpoint other;
                try
                {
                    other = SignedCheckpoint.Parse(onDisk);
                }
                catch (FormatException ex)
                {
                    throw new InvalidOperationException($"Refusing to sign: {latestPath} was replaced by something that is not a checkpoint ({ex.Message}).", ex);
                }

                if (other.Size > _size || !RootOfFileAt(other.Size).AsSpan().SequenceEqual(other.RootHash))
                {
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"Refusing to sign a checkpoint for size {_size}: {latestPath} (size {other.Size}) is inconsistent with this log."));
                }
            }
        }

        SignedCheckpoint checkpoint = SignedCheckpoint.Sign(Origin, _size, root, _signingKey);
        string path = Path.Combine(_checkpointDirectory, _size.ToString(CultureInfo.InvariantCulture) + CheckpointExtension);
        if (File.Exists(path))
        {
            if (DurableFile.ReadAllText(path) != checkpoint.Text)
            {
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"Refusing to sign: {path} already holds a different checkpoint for size {_size} (the log was forked)."));
            }
        }
        else
        {
            DurableFile.WriteAllText(path, checkpoint.Text);
        }

        DurableFile.WriteAllText(latestPath, checkpoint.Text);
        _lastCheckpoint = checkpoint;
        return checkpoint;
    }

    /// <summary>
    /// The root over the log file's first <paramref name="size"/> (at most <see cref="_size"/>) lines, read again (rare:
    /// another checkpoint replaced checkpoint.latest).
    /// </summary>
    /// <exception cref="InvalidOperationException">The file's first <see cref="_size"/> lines are not the ones this log
    /// verified or wrote, or it is no longer a log file that can be read (a folder, a named pipe): the log file
    /// changed under this writer; the message names it.</exception>
    private byte[] RootOfFileAt(long size)
    {
        var range = new CompactRange();
        byte[]? rootAt = size == 0 ? range.RootHash() : null;
        LogReader reader;
        try
        {
            reader = LogReader.Open(_logPath);
        }
        catch (InvalidDataException ex)
        {
            throw ChangedUnderTheWriter(ex.Message, ex);
        }

        using (reader)
        {
            while (range.Size < _size && reader.TryReadLine(out LogLine line))
            {
                range.Append(line.LeafHash);
                if (range.Size == size)
                {
                    rootAt = range.RootHash();
                }
            }
        }

        if (range.Size != _size || !range.RootHash().AsSpan().SequenceEqual(_range.RootHash()) || rootAt is null)
        {
            throw ChangedUnderTheWriter(string.Create(CultureInfo.InvariantCulture,
                $"its first {_size} lines are not the ones this writer verified and wrote ({range.Size} complete lines read)"), null);
        }

        return rootAt;
    }

    private InvalidOperationException ChangedUnderTheWriter(string what, Exception? inner) => new(string.Create(CultureInfo.InvariantCulture,
        $"Refusing to sign a checkpoint for size {_size}: the log file {_logPath} changed under this writer: {what}. " +
        $"Nothing was signed; restore the file or reopen the log to verify it."), inner);

    private void ThrowIfFaulted()
    {
        if (_faulted)
        {
            throw new InvalidOperationException($"Audit log {Directory} is faulted after a failed write; reopen it (the last line may be torn).");
        }
    }
}
