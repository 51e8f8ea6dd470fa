using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;
using System.Text.Json;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// A self-contained proof that one log line is in the tree signed by a checkpoint: the line, its leaf hash, the tree
/// size and root, the RFC 9162 inclusion proof and the signed checkpoint, checkable offline with
/// <see cref="TryVerify"/>. Serialized as text (<see cref="ToText"/>) or JSON (<see cref="ToJson"/>).
/// </summary>
public sealed class AuditInclusionProof
{
    private const string TextHeader = "securefed audit inclusion proof";

    /// <summary>The 1-based line number.</summary>
    public required long Line { get; init; }

    /// <summary>The exact line text (without the newline).</summary>
    public required string Leaf { get; init; }

    /// <summary>Lowercase hex RFC 9162 leaf hash of <see cref="Leaf"/>.</summary>
    public required string LeafHash { get; init; }

    /// <summary>The size of the signed tree.</summary>
    public required long TreeSize { get; init; }

    /// <summary>Lowercase hex root hash of the signed tree.</summary>
    public required string Root { get; init; }

    /// <summary>Lowercase hex hashes of the inclusion proof, from the leaf up.</summary>
    public required IReadOnlyList<string> Proof { get; init; }

    /// <summary>The verifier key the log claims (an auditor should pin their own).</summary>
    public required string VerifierKey { get; init; }

    /// <summary>The signed checkpoint text (signed note).</summary>
    public required string Checkpoint { get; init; }

    /// <summary>Builds the proof for line <paramref name="line"/> (1-based) against the log's newest checkpoint.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The line is not covered by the newest checkpoint.</exception>
    /// <exception cref="InvalidDataException">The log or its checkpoint is missing or does not match (run audit verify).</exception>
    public static AuditInclusionProof Create(string directory, long line)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(line, 1);
        string dir = Path.GetFullPath(directory);
        string logPath = Path.Combine(dir, AuditLog.LogFileName);
        string latestPath = Path.Combine(dir, AuditLog.LatestCheckpointFileName);
        if (!File.Exists(logPath) || !File.Exists(latestPath))
        {
            throw new InvalidDataException($"{dir} has no {AuditLog.LogFileName} or no {AuditLog.LatestCheckpointFileName}.");
        }

        string checkpointText = DurableFile.ReadSmallText(latestPath);
        SignedCheckpoint checkpoint;
        try
        {
            checkpoint = SignedCheckpoint.Parse(checkpointText);
        }
        catch (FormatException ex)
        {
            throw new InvalidDataException($"{latestPath} is not a valid checkpoint: {ex.Message}", ex);
        }

        if (line > checkpoint.Size)
        {
            throw new ArgumentOutOfRangeException(nameof(line), line,
                string.Create(CultureInfo.InvariantCulture, $"Line {line} is not covered by the newest checkpoint (it covers lines 1..{checkpoint.Size})."));
        }

        // The lines are streamed (LogReader: the file is read in chunks, no more than the longest line is held, and no line
        // after the checkpoint's size is read): each leaf hash goes into the compact range of the tree (O(log n) hashes) and,
        // if the line is outside the proved one, into the range of the one proof subtree it belongs to; only those subtrees'
        // roots (one per level, 32 bytes each) and the proved line are kept (the file was read whole into memory, and before
        // that a list of every line and of every leaf hash grew with the log).
        List<(long Start, long Count)> subtrees = ProofSubtrees(line - 1, checkpoint.Size);
        byte[][] proof = new byte[subtrees.Count][];
        int[] order = [.. Enumerable.Range(0, subtrees.Count).OrderBy(i => subtrees[i].Start)];
        int next = 0;
        CompactRange? subtree = null;
        var tree = new CompactRange();
        string? leaf = null;
        byte[]? leafHash = null;
        using (LogReader reader = LogReader.Open(logPath))
        {
            while (tree.Size < checkpoint.Size && reader.TryReadLine(out LogLine text))
            {
                long index = tree.Size;
                byte[] hash = text.LeafHash;
                tree.Append(hash);
                if (index == line - 1)
                {
                    leaf = text.Oversize
                        ? throw new InvalidDataException($"{logPath}: {text.OversizeProblem}; run 'securefed audit verify'.")
                        : Encoding.UTF8.GetString(text.Bytes.Span);
                    leafHash = hash;
                    continue;
                }

                (long start, long count) = subtrees[order[next]];
                subtree ??= new CompactRange();
                subtree.Append(hash);
                if (index == start + count - 1)
                {
                    proof[order[next++]] = subtree.RootHash();
                    subtree = null;
                }
            }

            if (reader.LineCount < checkpoint.Size)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"{logPath} has {reader.LineCount} complete line(s) but the newest checkpoint covers {checkpoint.Size}; run 'securefed audit verify'."));
            }
        }

        if (!tree.RootHash().AsSpan().SequenceEqual(checkpoint.RootHash))
        {
            throw new InvalidDataException($"{logPath} does not match its newest checkpoint; run 'securefed audit verify'.");
        }

        string keyPath = Path.Combine(dir, AuditLog.VerifierKeyFileName);
        string verifierKey = File.Exists(keyPath) ? DurableFile.ReadAllText(keyPath).Trim() : string.Empty;
        return new AuditInclusionProof
        {
            Line = line,
            Leaf = leaf!,
            LeafHash = Convert.ToHexStringLower(leafHash!),
            TreeSize = checkpoint.Size,
            Root = Convert.ToHexStringLower(checkpoint.RootHash),
            Proof = [.. proof.Select(Convert.ToHexStringLower)],
            VerifierKey = verifierKey,
            Checkpoint = checkpointText,
        };
    }

    /// <summary>
    /// The leaf ranges whose subtree hashes make up the audit path of leaf <paramref name="index"/> in a tree of
    /// <paramref name="size"/> leaves, from the leaf up (RFC 9162 section 2.1.3.1, as <see cref="MerkleTree.InclusionProof"/>
    /// walks it); together with the leaf they cover the tree once.
    /// </summary>
    internal static List<(long Start, long Count)> ProofSubtrees(long index, long size)
    {
        var ranges = new List<(long Start, long Count)>();
        long start = 0;
        long count = size;
        long m = index;
        while (count > 1)
        {
            long k = 1;
            while (k << 1 < count)
            {
                k <<= 1;
            }

            if (m < k)
            {
                ranges.Add((start + k, count - k));
                count = k;
            }
            else
            {
                ranges.Add((start, k));
                start += k;
                count -= k;
                m -= k;
            }
        }

        ranges.Reverse();
        return ranges;
    }

    /// <summary>Parses a proof written by <see cref="ToText"/> or <see cref="ToJson"/>.</summary>
    /// <exception cref="FormatException">The text is not a proof.</exception>
    public static AuditInclusionProof Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string trimmed = text.TrimStart();
        return trimmed.StartsWith('{') ? ParseJson(trimmed) : ParseText(text);
    }

    /// <summary>
    /// Checks the proof offline: the leaf hashes to <see cref="LeafHash"/>, the checkpoint is signed by
    /// <paramref name="verifierKey"/> (or, when null, by the key the proof names — weaker) and states
    /// <see cref="TreeSize"/> and <see cref="Root"/>, and the inclusion proof leads from the leaf to that root.
    /// </summary>
    /// <exception cref="FormatException"><paramref name="verifierKey"/> is not a key.</exception>
    public bool TryVerify(string? verifierKey, [NotNullWhen(false)] out string? problem)
    {
        byte[] leafHash = MerkleTree.LeafHash(Encoding.UTF8.GetBytes(Leaf));
        if (Convert.ToHexStringLower(leafHash) != LeafHash)
        {
            problem = "the leaf text does not hash to leaf_hash";
            return false;
        }

        SignedCheckpoint checkpoint;
        try
        {
            checkpoint = SignedCheckpoint.Parse(Checkpoint);
        }
        catch (FormatException ex)
        {
            problem = $"the checkpoint is malformed: {ex.Message}";
            return false;
        }

        NoteVerifierKey key = AuditVerifier.ParseKey(verifierKey ?? VerifierKey, checkpoint.Origin);
        if (!checkpoint.TryVerify(key, out string? signatureProblem))
        {
            problem = $"the checkpoint does not verify: {signatureProblem}";
            return false;
        }

        if (checkpoint.Size != TreeSize || Convert.ToHexStringLower(checkpoint.RootHash) != Root)
        {
            problem = "tree_size or root differ from the signed checkpoint";
            return false;
        }

        List<byte[]> proof;
        try
        {
            proof = [.. Proof.Select(Convert.FromHexString)];
        }
        catch (FormatException)
        {
            problem = "a proof hash is not hex";
            return false;
        }

        if (!MerkleTree.VerifyInclusion(Line - 1, TreeSize, leafHash, proof, checkpoint.RootHash))
        {
            problem = string.Create(CultureInfo.InvariantCulture, $"the inclusion proof does not lead from line {Line} to the signed root");
            return false;
        }

        problem = null;
        return true;
    }

    /// <summary>The human-readable, parseable text form.</summary>
    public string ToText()
    {
        var text = new StringBuilder();
        text.Append(TextHeader).Append('\n');
        text.Append(CultureInfo.InvariantCulture, $"line: {Line}\n");
        text.Append(CultureInfo.InvariantCulture, $"leaf: {Leaf}\n");
        text.Append(CultureInfo.InvariantCulture, $"leaf_hash: {LeafHash}\n");
        text.Append(CultureInfo.InvariantCulture, $"tree_size: {TreeSize}\n");
        text.Append(CultureInfo.InvariantCulture, $"root: {Root}\n");
        text.Append(CultureInfo.InvariantCulture, $"verifier_key: {VerifierKey}\n");
        foreach (string hash in Proof)
        {
            text.Append(CultureInfo.InvariantCulture, $"proof: {hash}\n");
        }

        text.Append("checkpoint:\n").Append(Checkpoint);
        return text.ToString();
    }

    /// <summary>The JSON form.</summary>
    public string ToJson()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = CanonicalJson.WriterOptions.Encoder }))
        {
            writer.WriteStartObject();
            writer.WriteNumber("line", Line);
            writer.WriteString("leaf", Leaf);
            writer.WriteString("leaf_hash", LeafHash);
            writer.WriteNumber("tree_size", TreeSize);
            writer.WriteString("root", Root);
            writer.WriteStartArray("proof");
            foreach (string hash in Proof)
            {
                writer.WriteStringValue(hash);
            }

            writer.WriteEndArray();
            writer.WriteString("verifier_key", VerifierKey);
            writer.WriteString("checkpoint", Checkpoint);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static AuditInclusionProof ParseJson(string text)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(text);
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"the document is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object");
            }

            JsonElement proof = Field(root, "proof", JsonValueKind.Array);
            return new AuditInclusionProof
            {
                Line = Field(root, "line", JsonValueKind.Number).GetInt64(),
                Leaf = Text(root, "leaf"),
                LeafHash = Text(root, "leaf_hash"),
                TreeSize = Field(root, "tree_size", JsonValueKind.Number).GetInt64(),
                Root = Text(root, "root"),
                Proof = [.. proof.EnumerateArray().Select((e, i) => e.ValueKind == JsonValueKind.String
                    ? e.GetString()!
                    : throw new FormatException(string.Create(CultureInfo.InvariantCulture, $"field 'proof'[{i}] is a JSON {e.ValueKind.ToString().ToLowerInvariant()}, not a string")))],
                VerifierKey = Text(root, "verifier_key"),
                Checkpoint = Text(root, "checkpoint"),
            };
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new FormatException($"Not a SecureFed inclusion proof (JSON): {ex.Message}", ex);
        }

        // A field missing, null or of another type is named (a null string field used to reach the verifier and crash it).
        static JsonElement Field(JsonElement root, string name, JsonValueKind kind) =>
            !root.TryGetProperty(name, out JsonElement value) ? throw new FormatException($"field '{name}' is missing")
            : value.ValueKind != kind ? throw new FormatException($"field '{name}' is a JSON {value.ValueKind.ToString().ToLowerInvariant()}, not a {(kind == JsonValueKind.Array ? "list" : kind.ToString().ToLowerInvariant())}")
            : value;

        static string Text(JsonElement root, string name) => Field(root, name, JsonValueKind.String).GetString()!;
    }

    private static AuditInclusionProof ParseText(string text)
    {
        string normalized = text.Replace("\r\n", "\n", StringComparison.Ordinal);
        int marker = normalized.IndexOf("\ncheckpoint:\n", StringComparison.Ordinal);
        if (!normalized.StartsWith(TextHeader + "\n", StringComparison.Ordinal) || marker < 0)
        {
            throw new FormatException($"Not a SecureFed inclusion proof: expected a first line '{TextHeader}' and a 'checkpoint:' section.");
        }

        string checkpoint = normalized[(marker + "\ncheckpoint:\n".Length)..].TrimEnd('\n') + "\n";
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var proof = new List<string>();
        foreach (string line in normalized[(TextHeader.Length + 1)..marker].Split('\n'))
        {
            int colon = line.IndexOf(": ", StringComparison.Ordinal);
            string name = colon < 0 ? line.TrimEnd(':') : line[..colon];
            string value = colon < 0 ? string.Empty : line[(colon + 2)..];
            if (name == "proof")
            {
                proof.Add(value);
            }
            else if (!values.TryAdd(name, value))
            {
                throw new FormatException($"Inclusion proof repeats '{name}'.");
            }
        }

        string Get(string name) => values.TryGetValue(name, out string? v) ? v : throw new FormatException($"Inclusion proof has no '{name}:' line.");
        long Number(string name) => long.TryParse(Get(name), NumberStyles.None, CultureInfo.InvariantCulture, out long n)
            ? n : throw new FormatException($"Inclusion proof '{name}' is not a number.");

        return new AuditInclusionProof
        {
            Line = Number("line"),
            Leaf = Get("leaf"),
            LeafHash = Get("leaf_hash"),
            TreeSize = Number("tree_size"),
            Root = Get("root"),
            Proof = proof,
            VerifierKey = Get("verifier_key"),
            Checkpoint = checkpoint,
        };
    }
}
