using System.Globalization;
using System.Text.Json;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// Checks an audit log directory offline: every line is canonical JSON with consecutive sequence numbers, the lines
/// hash to the root signed in every checkpoint, every checkpoint is signed by the log key, the newest-checkpoint
/// pointer was not rolled back, and — given a checkpoint the auditor kept — the log still extends it.
/// </summary>
public static class AuditVerifier
{
    private const int MaxLineProblems = 10;

    /// <summary>
    /// Test hook: called with the log's path after the pass that counts CR LF line endings and before the pass over the
    /// lines (a file changed in between). Tests match their own log's path only.
    /// </summary>
    internal static Action<string>? BetweenReads;

    /// <summary>Verifies the log in <paramref name="directory"/>.</summary>
    /// <param name="directory">The log directory (holding audit.jsonl, checkpoints/, checkpoint.latest).</param>
    /// <param name="verifierKey">
    /// The key to trust: a verifier key string <c>name+hash+base64</c>, a base64 Ed25519 public key, or a path to a file
    /// holding either. Without it the log's own verifier.key is trusted, and must match the earliest checkpoint.
    /// </param>
    /// <param name="previousCheckpoint">Path to a checkpoint the auditor kept from an earlier verification (rollback detection).</param>
    /// <exception cref="FormatException"><paramref name="verifierKey"/> is not a key.</exception>
    public static AuditVerification Verify(string directory, string? verifierKey = null, string? previousCheckpoint = null) =>
        VerifyCore(directory, verifierKey, previousCheckpoint, keepEntries: false, out _);

    /// <summary>The message for a key argument that looks like a file's path (has a folder separator or starts with '.' or '~') but names no file; else null.</summary>
    private static string? NotAFile(string keyOrFile)
    {
        string text = keyOrFile.Trim();
        bool looksLikePath = text.Contains('/', StringComparison.Ordinal) || text.Contains('\\', StringComparison.Ordinal) || text.StartsWith('.') || text.StartsWith('~');
        return looksLikePath && !File.Exists(text) && !Directory.Exists(text)
            ? $"key file '{text}' does not exist (a key is given as a file holding it, a verifier key name+hash+base64, or a base64 Ed25519 public key)."
            : null;
    }

    /// <summary>Resolves a key argument (verifier key string, base64 public key, or a file holding either).</summary>
    /// <exception cref="FormatException">The text is not a key.</exception>
    public static NoteVerifierKey ParseKey(string keyOrFile, string? origin)
    {
        ArgumentNullException.ThrowIfNull(keyOrFile);
        string text = keyOrFile.Trim();
        if (System.IO.Directory.Exists(text))
        {
            // "logs/agg" is valid base64 too: a folder is named as one, not as a key of the wrong length.
            throw new FormatException($"key file '{text}' is a folder; give the file that holds the key (e.g. the log folder's {AuditLog.VerifierKeyFileName}) or the key itself.");
        }

        if (!File.Exists(text))
        {
            return ParseKeyText(text, keyOrFile, origin);
        }

        string content = DurableFile.ReadAllText(text).Trim();
        if (content.Length == 0)
        {
            throw new FormatException($"key file '{text}' is empty; it should hold the log's verifier key (name+hash+base64) or a base64 Ed25519 public key.");
        }

        try
        {
            return ParseKeyText(content, argument: null, origin);
        }
        catch (FormatException ex)
        {
            throw new FormatException($"key file '{text}' holds no key: {ex.Message}", ex);
        }
    }

    /// <summary>Parses a key's text: the argument itself (<paramref name="argument"/>, for the messages) or, when it is null, a key file's content.</summary>
    private static NoteVerifierKey ParseKeyText(string text, string? argument, string? origin)
    {
        string[] parts = text.Split('+', 3);
        if (parts.Length == 3 && parts[1].Length == 8 && parts[1].All(char.IsAsciiHexDigitLower))
        {
            return NoteVerifierKey.Parse(text);
        }

        byte[] raw;
        try
        {
            raw = Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            throw new FormatException(argument is null
                ? "it is neither a verifier key (name+hash+base64) nor a base64 Ed25519 public key."
                : NotAFile(argument) ?? $"'{Shorten(argument)}' is neither a verifier key (name+hash+base64), a base64 Ed25519 public key, nor a file holding one.");
        }

        if (raw.Length == 33 && raw[0] == NoteVerifierKey.Ed25519SignatureType)
        {
            raw = raw[1..];
        }

        if (raw.Length != 32)
        {
            // "/etc/fed/key" is valid base64 (9 bytes): a path that does not exist is named as one, not as a short key.
            throw new FormatException((argument is null ? null : NotAFile(argument)) ?? $"A base64 Ed25519 public key decodes to 32 bytes, got {raw.Length}.");
        }

        if (origin is null)
        {
            throw new FormatException("A raw public key needs the log's origin as key name, but the log has no checkpoint naming it; pass the full verifier key.");
        }

        return NoteVerifierKey.FromEd25519(origin, raw);
    }

    /// <summary>
    /// Verifies the log; with <paramref name="keepEntries"/> (the report) every parsed line is returned in
    /// <paramref name="entries"/>, else only the lines the checks after the pass need (lines 1 and 2, the
    /// <see cref="AuditEvents.LogOpened"/> lines): verify keeps nothing per line of the log.
    /// </summary>
    internal static AuditVerification VerifyCore(string directory, string? verifierKey, string? previousCheckpoint, bool keepEntries, out IReadOnlyList<LogEntry> entries)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string dir = Path.GetFullPath(directory);
        var problems = new List<string>();
        var parsed = new List<LogEntry>();
        entries = parsed;
        string logPath = Path.Combine(dir, AuditLog.LogFileName);
        if (!System.IO.Directory.Exists(dir) || !File.Exists(logPath))
        {
            problems.Add(System.IO.Directory.Exists(logPath) ? $"{logPath} is a folder, not the log file" : $"{dir} has no {AuditLog.LogFileName}");
            return new AuditVerification { Directory = dir, Problems = problems, LogFound = false };
        }

        if (DurableFile.NotRegularKind(logPath) is { } kind)
        {
            // Refused unopened: opening a named pipe for reading waits for a writer (verify hung), a device may not end.
            problems.Add(LogReader.NotRegularMessage(logPath, kind));
            return new AuditVerification { Directory = dir, Problems = problems, LogFound = false };
        }

        // The checkpoints first, for the tree sizes whose roots the pass over the lines computes: no line's hash is kept
        // (a log of blank lines held 80 bytes a byte). Their problems are named after the lines'.
        var checkpointProblems = new List<string>();
        List<(string Label, SignedCheckpoint Checkpoint)> checkpoints = ReadCheckpoints(dir, checkpointProblems, out (string Label, SignedCheckpoint Checkpoint)? latest);
        SignedCheckpoint? previous = null;
        string? previousError = null;
        if (previousCheckpoint is not null)
        {
            try
            {
                previous = SignedCheckpoint.Parse(DurableFile.ReadSmallText(previousCheckpoint));
            }
            catch (Exception ex) when (ex is FormatException or InvalidDataException or IOException or UnauthorizedAccessException)
            {
                previousError = $"the previous checkpoint {previousCheckpoint} cannot be read: {ex.Message}";
            }
        }

        var sizes = new SortedSet<long>(checkpoints.Select(c => c.Checkpoint.Size));
        if (previous is not null)
        {
            sizes.Add(previous.Size);
        }

        // 1. Lines: canonical JSON, consecutive seq, one actor; leaf hashes of the exact bytes, into the roots at those sizes.
        // The file is read line by line (LogReader): it was read whole into memory, and every parsed line kept.
        long crlfLines = LogReader.CountIfEveryLineEndsWithCr(logPath);
        BetweenReads?.Invoke(logPath);
        var range = new CompactRange();
        var roots = new Dictionary<long, byte[]>();
        if (sizes.Contains(0))
        {
            roots[0] = range.RootHash();
        }

        int lineProblems = 0;
        string? actor = null;
        bool converted = crlfLines > 0;
        if (converted)
        {
            // A text tool's or a text-mode copy's conversion of the whole file: said once, not as every line "not in
            // canonical form"; the lines are still read without the CR (their content is checked), but hashed as they are
            // (the roots fail). Some lines only: each is named as a line not in canonical form (a hand edit).
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"all {crlfLines} line(s) end with CR LF (Windows line endings) instead of LF: the file was converted by a text tool or copied in text mode, so its bytes are no longer those that were signed; restore the original, or convert it back (e.g. dos2unix {AuditLog.LogFileName}) and verify again"));
        }

        long lineCount;
        long tornLength;
        long blankFrom = 0;
        using (LogReader reader = LogReader.Open(logPath))
        {
            while (reader.TryReadLine(out LogLine line))
            {
                long number = line.Number;
                range.Append(line.LeafHash);
                if (sizes.Contains(number))
                {
                    roots[number] = range.RootHash();
                }

                if (!line.Oversize && (line.Length == 0 || (converted && line.Length == 1 && line.Bytes.Span[0] == (byte)'\r')))
                {
                    // A blank line is never a log line: a run of them is one problem (not a JSON error per line, parsed and
                    // worded 100,000 times for a file of newlines).
                    blankFrom = blankFrom == 0 ? number : blankFrom;
                    continue;
                }

                if (blankFrom != 0)
                {
                    AddLineProblem(BlankLines(blankFrom, number - 1));
                    blankFrom = 0;
                }

                string? problem;
                LogEntry? entry = null;
                if (line.Oversize)
                {
                    problem = line.OversizeProblem;
                }
                else
                {
                    // The CR is taken off only where there is one: the file is read twice (CR LF counted first) and a line
                    // changed in between (an empty line, one without CR) threw ArgumentOutOfRangeException from [..^1]:
                    // verify crashed instead of naming the line.
                    entry = LogEntry.TryParse(converted && line.Bytes.Span is [.., (byte)'\r'] ? line.Bytes[..^1] : line.Bytes, number, out problem);
                }

                if (entry is not null && actor is not null && entry.Actor != actor)
                {
                    problem = string.Create(CultureInfo.InvariantCulture, $"line {number} names actor '{entry.Actor}', but earlier lines name '{actor}'");
                }
                else if (entry is not null)
                {
                    actor ??= entry.Actor;
                    if (keepEntries || entry.Line <= 2 || entry.Type == AuditEvents.LogOpened)
                    {
                        parsed.Add(entry);
                    }
                }

                if (problem is not null)
                {
                    AddLineProblem(problem);
                }
            }

            lineCount = reader.LineCount;
            tornLength = reader.TornLength;
        }

        if (blankFrom != 0)
        {
            AddLineProblem(BlankLines(blankFrom, lineCount));
        }

        if (lineProblems > MaxLineProblems)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"... and {lineProblems - MaxLineProblems} more bad line(s)"));
        }

        if (tornLength > 0)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"line {lineCount + 1} is torn: {tornLength} byte(s) without a final newline (a crash mid-write or a truncated file); {(lineCount == 0 ? "the file has no complete line to check" : $"lines 1..{lineCount} were checked")}"));
        }

        // 2. Checkpoints.
        problems.AddRange(checkpointProblems);
        string? origin = checkpoints.Count > 0 ? checkpoints[0].Checkpoint.Origin : latest?.Checkpoint.Origin;
        origin ??= OriginFromLines(parsed);

        NoteVerifierKey? key = null;
        string? keySource = null;
        if (verifierKey is not null)
        {
            key = ParseKey(verifierKey, origin);
            keySource = "--key";
        }
        else
        {
            string keyPath = Path.Combine(dir, AuditLog.VerifierKeyFileName);
            if (!File.Exists(keyPath))
            {
                problems.Add($"{AuditLog.VerifierKeyFileName} is missing and no key was given: pass --key with the log's verifier key");
            }
            else
            {
                try
                {
                    // Read as a checkpoint is (a pipe or a device in the log folder is refused unread). Not --key: an
                    // auditor may pass a key through a pipe on purpose (--key <(…)).
                    key = NoteVerifierKey.Parse(DurableFile.ReadSmallText(keyPath));
                    keySource = AuditLog.VerifierKeyFileName + " (trust on first use; pin it with --key)";
                }
                catch (Exception ex) when (ex is FormatException or InvalidDataException)
                {
                    problems.Add($"{AuditLog.VerifierKeyFileName} is not a verifier key: {ex.Message}");
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    problems.Add($"{AuditLog.VerifierKeyFileName} cannot be read: {ex.Message}");
                }
            }

            if (key is not null && checkpoints.Count > 0
                && !checkpoints[0].Checkpoint.Signatures.Any(s => s.KeyName == key.Name && s.KeyId == key.KeyId))
            {
                problems.Add($"{checkpoints[0].Label} (the earliest checkpoint) is not signed by the key in {AuditLog.VerifierKeyFileName} ({key.Name}+{key.KeyId:x8}): the key or the checkpoints were replaced");
            }
        }

        // AuditLog.Open writes log.opened and signs a checkpoint before anything else, so a log of SecureFed has at
        // least one line and one checkpoint: an emptied file and folder are a deleted log, not an empty one.
        if (lineCount == 0)
        {
            problems.Add($"{AuditLog.LogFileName} has no complete line, but opening a log writes {AuditEvents.LogOpened} and signs it: the log was emptied or replaced");
        }

        if (checkpoints.Count == 0)
        {
            problems.Add($"no signed checkpoint covers this log ({AuditLog.CheckpointDirectoryName}/ is empty or missing), so nothing in it can be trusted");
        }

        // Line 1 is log.opened, or (a first open that crashed mid-line, repaired on the next open) the quarantine of
        // that torn line followed by log.opened: a log whose head is anything else lost its first lines.
        if (parsed.Find(e => e.Line == 1) is { } first
            && first.Type != AuditEvents.LogOpened
            && !(first.Type == AuditEvents.TornTailQuarantined && parsed.Find(e => e.Line == 2) is { Type: AuditEvents.LogOpened }))
        {
            problems.Add($"line 1 is {Shorten(first.Type)}, but a log starts with {AuditEvents.LogOpened}: its first lines were deleted");
        }

        int valid = 0;
        long covered = 0;
        string? rootHex = null;
        long lastGood = 0;
        string? lastGoodLabel = null;
        for (int index = 0; index < checkpoints.Count; index++)
        {
            (string label, SignedCheckpoint checkpoint) = checkpoints[index];
            string? problem = null;
            if (origin is not null && checkpoint.Origin != origin)
            {
                problem = $"{label} has origin '{checkpoint.Origin}', but the log's origin is '{origin}'";
            }
            else if (key is not null && !checkpoint.TryVerify(key, out string? signatureProblem))
            {
                problem = $"{label} is forged or re-signed: {signatureProblem}";
            }
            else if (checkpoint.Size > lineCount)
            {
                problem = string.Create(CultureInfo.InvariantCulture,
                    $"{label} covers {checkpoint.Size} line(s) but {AuditLog.LogFileName} has only {lineCount} complete line(s): lines were deleted or the log was truncated");
            }
            else if (!roots[checkpoint.Size].AsSpan().SequenceEqual(checkpoint.RootHash))
            {
                // If a later checkpoint still matches the lines, the lines are authentic and this checkpoint is a fork.
                (string Label, SignedCheckpoint Checkpoint) later = checkpoints.Skip(index + 1).FirstOrDefault(c =>
                    c.Checkpoint.Size <= lineCount && c.Checkpoint.Origin == checkpoint.Origin
                    && roots[c.Checkpoint.Size].AsSpan().SequenceEqual(c.Checkpoint.RootHash) && (key is null || c.Checkpoint.Verify(key)));
                string before = lastGoodLabel is null ? string.Empty : $"{lastGoodLabel} and ";
                problem = later.Checkpoint is not null
                    ? string.Create(CultureInfo.InvariantCulture,
                        $"{label} is inconsistent with {before}{later.Label}: its signed root is not the root of lines 1..{checkpoint.Size}, which the later checkpoint covers intact (the log signed two different histories)")
                    : string.Create(CultureInfo.InvariantCulture,
                        $"{label}: lines 1..{checkpoint.Size} do not hash to its signed root: a line between {lastGood + 1} and {checkpoint.Size} was edited, inserted, deleted or reordered after signing (or the checkpoint was signed over a different tree)");
            }

            if (problem is null)
            {
                valid++;
                covered = checkpoint.Size;
                rootHex = Convert.ToHexStringLower(checkpoint.RootHash);
                lastGood = checkpoint.Size;
                lastGoodLabel = label;
            }
            else
            {
                problems.Add(problem);
            }
        }

        if (latest is { } newest && checkpoints.Count > 0)
        {
            (string maxLabel, SignedCheckpoint max) = checkpoints[^1];
            (string Label, SignedCheckpoint Checkpoint) twin = checkpoints.Find(c => c.Checkpoint.Size == newest.Checkpoint.Size);
            if (twin.Checkpoint is not null && twin.Checkpoint.Text != newest.Checkpoint.Text)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{AuditLog.LatestCheckpointFileName} differs from {twin.Label} for the same size {newest.Checkpoint.Size}: one of them was replaced, or two different trees were signed (a fork)"));
            }

            if (newest.Checkpoint.Size < max.Size)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"{AuditLog.LatestCheckpointFileName} (size {newest.Checkpoint.Size}) is older than {maxLabel} (size {max.Size}): the newest checkpoint was rolled back"));
            }
        }

        // 3. A checkpoint the auditor kept.
        if (previousError is not null)
        {
            problems.Add(previousError);
        }
        else if (previous is not null)
        {
            string label = $"the previous checkpoint {previousCheckpoint}";
            if (origin is not null && previous.Origin != origin)
            {
                problems.Add($"{label} is for origin '{previous.Origin}', not '{origin}'");
            }
            else if (key is not null && !previous.TryVerify(key, out string? signatureProblem))
            {
                problems.Add($"{label} does not verify: {signatureProblem}");
            }
            else if (previous.Size > lineCount)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"rollback: {label} covers {previous.Size} line(s) but the log now has only {lineCount}"));
            }
            else if (!roots[previous.Size].AsSpan().SequenceEqual(previous.RootHash))
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"history rewritten: lines 1..{previous.Size} no longer hash to the root in {label} (the log is inconsistent with what you saw before)"));
            }
            else if (previous.Size > covered && checkpoints.Count > 0)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture,
                    $"rollback: {label} covers {previous.Size} line(s) but the newest valid checkpoint in the log covers only {covered}"));
            }
        }

        // 4. The key named inside the log must be the one we verified with.
        if (key is not null)
        {
            string expected = key.ToString();
            foreach (LogEntry entry in parsed.Where(e => e.Type == AuditEvents.LogOpened))
            {
                if (entry.Fields.TryGetProperty("verifier_key", out JsonElement named) && named.ValueKind == JsonValueKind.String
                    && named.GetString() != expected)
                {
                    problems.Add(string.Create(CultureInfo.InvariantCulture,
                        $"line {entry.Line} ({AuditEvents.LogOpened}) names verifier key {named.GetString()}, but the checkpoints are checked against {expected}"));
                    break;
                }
            }
        }

        return new AuditVerification
        {
            Directory = dir,
            Lines = lineCount,
            Checkpoints = valid,
            CoveredLines = covered,
            Problems = problems,
            Actor = actor,
            Origin = origin,
            VerifierKey = key?.ToString(),
            VerifierKeySource = keySource,
            RootHash = rootHex,
        };

        void AddLineProblem(string problem)
        {
            if (lineProblems++ < MaxLineProblems)
            {
                problems.Add(problem);
            }
        }

        static string BlankLines(long first, long last) => first == last
            ? string.Create(CultureInfo.InvariantCulture, $"line {first} is blank, but no log line is empty (a line was inserted, or the file was edited)")
            : string.Create(CultureInfo.InvariantCulture, $"lines {first}..{last} ({last - first + 1:N0} lines) are blank, but no log line is empty (lines were inserted, or the file was edited or padded)");
    }

    internal static List<(string Label, SignedCheckpoint Checkpoint)> ReadCheckpoints(
        string dir, List<string> problems, out (string Label, SignedCheckpoint Checkpoint)? latest)
    {
        latest = null;
        var result = new List<(string Label, SignedCheckpoint Checkpoint)>();
        string folder = Path.Combine(dir, AuditLog.CheckpointDirectoryName);
        if (System.IO.Directory.Exists(folder))
        {
            foreach (string path in System.IO.Directory.EnumerateFiles(folder, "*" + AuditLog.CheckpointExtension).Order(StringComparer.Ordinal))
            {
                string label = AuditLog.CheckpointDirectoryName + "/" + Path.GetFileName(path);
                SignedCheckpoint? checkpoint = TryRead(path, label, problems);
                if (checkpoint is null)
                {
                    continue;
                }

                string expectedName = checkpoint.Size.ToString(CultureInfo.InvariantCulture) + AuditLog.CheckpointExtension;
                if (Path.GetFileName(path) != expectedName)
                {
                    problems.Add(string.Create(CultureInfo.InvariantCulture, $"{label} claims tree size {checkpoint.Size}; its file name should be {expectedName}"));
                    continue;
                }

                result.Add((label, checkpoint));
            }
        }

        result.Sort((a, b) => a.Checkpoint.Size.CompareTo(b.Checkpoint.Size));
        string latestPath = Path.Combine(dir, AuditLog.LatestCheckpointFileName);
        if (File.Exists(latestPath) && TryRead(latestPath, AuditLog.LatestCheckpointFileName, problems) is { } newest)
        {
            latest = (AuditLog.LatestCheckpointFileName, newest);
            int same = result.FindIndex(c => c.Checkpoint.Size == newest.Size);
            if (same < 0)
            {
                result.Add((AuditLog.LatestCheckpointFileName, newest));
                result.Sort((a, b) => a.Checkpoint.Size.CompareTo(b.Checkpoint.Size));
            }
        }

        return result;
    }

    private static SignedCheckpoint? TryRead(string path, string label, List<string> problems)
    {
        try
        {
            return SignedCheckpoint.Parse(DurableFile.ReadSmallText(path));
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException)
        {
            problems.Add($"{label} is not a valid checkpoint: {ex.Message}");
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A dangling link, a file without read permission: named as a problem of this checkpoint, not a crash of verify.
            problems.Add($"{label} cannot be read: {ex.Message}");
            return null;
        }
    }

    private static string? OriginFromLines(List<LogEntry> entries)
    {
        foreach (LogEntry entry in entries)
        {
            if (entry.Type == AuditEvents.LogOpened && entry.Fields.TryGetProperty("origin", out JsonElement origin)
                && origin.ValueKind == JsonValueKind.String)
            {
                return origin.GetString();
            }
        }

        return null;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";
}
