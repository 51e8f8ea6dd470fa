using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

using SecureFed.Crypto;

namespace SecureFed.Audit;

/// <summary>
/// A transparency-log checkpoint (c2sp.org/tlog-checkpoint) in signed-note form (c2sp.org/signed-note):
/// <c>origin\nsize\nbase64(root)\n</c>, a blank line, then one or more lines <c>— name base64(key ID || signature)</c>.
/// </summary>
public sealed class SignedCheckpoint
{
    /// <summary>The signature-line prefix: em dash (U+2014) and a space.</summary>
    public const string SignaturePrefix = "\u2014 ";

    private const int MaxSignatures = 100;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private readonly byte[] _rootHash;

    private SignedCheckpoint(string origin, long size, byte[] rootHash, IReadOnlyList<string> extensions, string body,
                             IReadOnlyList<NoteSignature> signatures, string text)
    {
        Origin = origin;
        Size = size;
        _rootHash = rootHash;
        Extensions = extensions;
        Body = body;
        Signatures = signatures;
        Text = text;
    }

    /// <summary>The origin line: the log's identity.</summary>
    public string Origin { get; }

    /// <summary>The tree size (number of log lines covered).</summary>
    public long Size { get; }

    /// <summary>A copy of the 32-byte RFC 9162 root hash at <see cref="Size"/>.</summary>
    public byte[] RootHash => (byte[])_rootHash.Clone();

    /// <summary>Optional extension lines after the root hash (SecureFed writes none).</summary>
    public IReadOnlyList<string> Extensions { get; }

    /// <summary>The signed note text (everything before the blank line, including the final newline).</summary>
    public string Body { get; }

    /// <summary>The signature lines, in order.</summary>
    public IReadOnlyList<NoteSignature> Signatures { get; }

    /// <summary>The complete signed note, exactly as stored.</summary>
    public string Text { get; }

    /// <summary>Signs a checkpoint for a tree of <paramref name="size"/> leaves with root <paramref name="rootHash"/>; the key name is the origin.</summary>
    /// <exception cref="ArgumentException">The origin is not a valid key name or the root is not 32 bytes.</exception>
    public static SignedCheckpoint Sign(string origin, long size, ReadOnlySpan<byte> rootHash, Ed25519PrivateKey signingKey)
    {
        ArgumentNullException.ThrowIfNull(origin);
        ArgumentNullException.ThrowIfNull(signingKey);
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        if (!NoteVerifierKey.IsValidKeyName(origin))
        {
            throw new ArgumentException($"Origin '{origin}' must be a valid signed-note key name (non-empty, no spaces, no '+').", nameof(origin));
        }

        if (rootHash.Length != MerkleTree.HashSize)
        {
            throw new ArgumentException($"A root hash is {MerkleTree.HashSize} bytes, got {rootHash.Length}.", nameof(rootHash));
        }

        string body = string.Create(CultureInfo.InvariantCulture, $"{origin}\n{size}\n{Convert.ToBase64String(rootHash)}\n");
        uint keyId = NoteVerifierKey.ComputeKeyId(origin, signingKey.PublicKey);
        byte[] signature = signingKey.Sign(Encoding.UTF8.GetBytes(body));
        byte[] blob = new byte[4 + signature.Length];
        BinaryPrimitives.WriteUInt32BigEndian(blob, keyId);
        signature.CopyTo(blob, 4);
        string text = body + "\n" + SignaturePrefix + origin + " " + Convert.ToBase64String(blob) + "\n";
        return new SignedCheckpoint(origin, size, rootHash.ToArray(), [], body,
                                    [new NoteSignature(origin, keyId, signature)], text);
    }

    /// <summary>Parses a signed checkpoint; every malformation is rejected with a message naming it.</summary>
    /// <exception cref="FormatException">The text is not a well-formed signed tlog checkpoint.</exception>
    public static SignedCheckpoint Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if ((c < 0x20 && c != '\n') || c == 0x7F)
            {
                throw new FormatException($"Checkpoint contains control character U+{(int)c:X4} at offset {i}; only newlines are allowed.");
            }
        }

        try
        {
            _ = StrictUtf8.GetByteCount(text);
        }
        catch (EncoderFallbackException)
        {
            throw new FormatException("Checkpoint is not valid Unicode text (unpaired surrogate).");
        }

        int split = text.LastIndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0)
        {
            throw new FormatException("Checkpoint has no blank line separating the note text from its signatures.");
        }

        string body = text[..(split + 1)];
        string signatureBlock = text[(split + 2)..];
        if (signatureBlock.Length == 0)
        {
            throw new FormatException("Checkpoint has no signature lines after the blank line.");
        }

        if (signatureBlock[^1] != '\n')
        {
            throw new FormatException("Checkpoint's last signature line does not end with a newline (truncated?).");
        }

        var signatures = new List<NoteSignature>();
        foreach (string line in signatureBlock[..^1].Split('\n'))
        {
            signatures.Add(ParseSignatureLine(line));
            if (signatures.Count > MaxSignatures)
            {
                throw new FormatException($"Checkpoint has more than {MaxSignatures} signature lines.");
            }
        }

        string[] lines = body[..^1].Split('\n');
        if (lines.Length < 3)
        {
            throw new FormatException($"Checkpoint text has {lines.Length} line(s); it needs origin, tree size and root hash.");
        }

        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                throw new FormatException($"Checkpoint text line {i + 1} is empty.");
            }
        }

        string origin = lines[0];
        long size = ParseSize(lines[1]);
        byte[] root = ParseRoot(lines[2]);
        return new SignedCheckpoint(origin, size, root, lines[3..], body, signatures, text);
    }

    /// <summary>
    /// Checks that this checkpoint carries a valid signature by <paramref name="key"/> (matched by key name and ID;
    /// signatures by other keys are ignored, as the signed-note spec requires).
    /// </summary>
    public bool TryVerify(NoteVerifierKey key, [NotNullWhen(false)] out string? problem)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] message = Encoding.UTF8.GetBytes(Body);
        bool found = false;
        foreach (NoteSignature signature in Signatures)
        {
            if (signature.KeyName != key.Name || signature.KeyId != key.KeyId)
            {
                continue;
            }

            found = true;
            if (!key.Verify(message, signature.Signature))
            {
                problem = string.Create(CultureInfo.InvariantCulture, $"the signature by key {key.Name}+{key.KeyId:x8} is invalid (forged or the checkpoint text was altered)");
                return false;
            }
        }

        if (!found)
        {
            string signers = string.Join(", ", Signatures.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.KeyName}+{s.KeyId:x8}")));
            problem = string.Create(CultureInfo.InvariantCulture, $"it is not signed by the expected key {key.Name}+{key.KeyId:x8} (signed by: {signers})");
            return false;
        }

        problem = null;
        return true;
    }

    /// <summary>Whether this checkpoint carries a valid signature by <paramref name="key"/>.</summary>
    public bool Verify(NoteVerifierKey key) => TryVerify(key, out _);

    /// <inheritdoc />
    public override string ToString() => Text;

    private static NoteSignature ParseSignatureLine(string line)
    {
        if (!line.StartsWith(SignaturePrefix, StringComparison.Ordinal))
        {
            throw new FormatException("Checkpoint signature line does not start with an em dash (U+2014) and a space.");
        }

        string rest = line[SignaturePrefix.Length..];
        int space = rest.IndexOf(' ', StringComparison.Ordinal);
        if (space <= 0)
        {
            throw new FormatException("Checkpoint signature line must be '— <key name> <base64 signature>'.");
        }

        string name = rest[..space];
        string b64 = rest[(space + 1)..];
        if (!NoteVerifierKey.IsValidKeyName(name))
        {
            throw new FormatException($"Checkpoint signature key name '{name}' is not a valid key name.");
        }

        byte[] blob;
        try
        {
            if (b64.Length == 0 || b64.Any(char.IsWhiteSpace))
            {
                throw new FormatException();
            }

            blob = Convert.FromBase64String(b64);
        }
        catch (FormatException)
        {
            throw new FormatException($"Checkpoint signature by '{name}' is not valid base64.");
        }

        if (blob.Length < 5)
        {
            throw new FormatException($"Checkpoint signature by '{name}' is too short ({blob.Length} bytes; needs a 4-byte key ID and a signature).");
        }

        return new NoteSignature(name, BinaryPrimitives.ReadUInt32BigEndian(blob), blob[4..]);
    }

    private static long ParseSize(string line)
    {
        bool digits = line.All(char.IsAsciiDigit);
        if (!digits || (line.Length > 1 && line[0] == '0') || !long.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out long size))
        {
            throw new FormatException($"Checkpoint tree size '{line}' is not a decimal number without leading zeros.");
        }

        return size;
    }

    private static byte[] ParseRoot(string line)
    {
        byte[] root;
        try
        {
            if (line.Any(char.IsWhiteSpace))
            {
                throw new FormatException();
            }

            root = Convert.FromBase64String(line);
        }
        catch (FormatException)
        {
            throw new FormatException($"Checkpoint root hash '{line}' is not valid base64.");
        }

        if (root.Length != MerkleTree.HashSize)
        {
            throw new FormatException($"Checkpoint root hash is {root.Length} bytes; expected {MerkleTree.HashSize}.");
        }

        return root;
    }
}
