using System.Globalization;
using System.Text;
using SecureFed.Federation.Internal;
using SecureFed.Tagger.Internal;

namespace SecureFed.Tagger;

/// <summary>
/// Streaming reader for CoNLL-style token files: one token per line as <c>TOKEN&lt;TAB&gt;TAG</c> or
/// space-separated columns (the first column is the token, the last one the tag), a blank line between
/// sentences, optional <c>-DOCSTART-</c> lines; every token line of a document (up to the next <c>-DOCSTART-</c>) has
/// the same number of columns. IOB1 input is accepted and converted to IOB2; untyped <c>B</c>/<c>I</c> tags (e.g.
/// BioBERT's JNLPBA) become <c>B-Entity</c>/<c>I-Entity</c>.
/// </summary>
public static class ConllReader
{
    /// <summary>The entity type given to untyped <c>B</c>/<c>I</c> tags.</summary>
    public const string UntypedEntity = "Entity";

    /// <summary>Reads the sentences of a file lazily.</summary>
    /// <param name="path">The CoNLL file.</param>
    /// <returns>The sentences, in file order.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InputDataException">
    /// The path is not a regular file (a named pipe, a device, a socket: refused before it is opened, the message names it
    /// and what it is; /dev/stdin and /dev/fd/N, a descriptor given explicitly, are read), a line is malformed, an entity
    /// type is spelled with other letter case than where the file first has it, or its bytes are not UTF-8 (the message is <c>file:line: problem</c>).
    /// </exception>
    public static IEnumerable<Sentence> ReadFile(string path) => ReadFile(path, new EntityTypeSpellings());

    /// <summary>
    /// As <see cref="ReadFile(string)"/>, with the entity types' spellings checked against <paramref name="spellings"/>,
    /// shared with the other files whose types make one label set: a type spelled with other letter case than where it was
    /// first met (B-disease after B-Disease) is refused, naming both spellings and lines.
    /// </summary>
    /// <param name="path">The CoNLL file.</param>
    /// <param name="spellings">The types' first spellings, from this file and the others read with it.</param>
    /// <returns>The sentences, in file order.</returns>
    public static IEnumerable<Sentence> ReadFile(string path, EntityTypeSpellings spellings)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(spellings);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"CoNLL file not found: {path}", path);
        }

        // File.Exists is true for a named pipe, a device or a socket too: opening a FIFO waited for a writer forever
        // (tagger train, the agent and experiment hung at start-up with no message), and /dev/zero would be read without end.
        // A stream named explicitly (standard input, or a shell's process substitution <(zcat train.tsv.gz)) has its writer
        // already and is read once, as asked.
        if (!IsExplicitStream(path) && RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new InputDataException($"{path}{RegularFile.LinkText(path)} is {kind}, not a regular file; a CoNLL corpus is read from a regular file (copy the data into one). It was not opened.");
        }

        return ReadFileIterator(path, spellings);
    }

    /// <summary>Whether <paramref name="path"/> names an open descriptor of this process (/dev/stdin, /dev/fd/N), not a file.</summary>
    internal static bool IsExplicitStream(string path) =>
        !OperatingSystem.IsWindows() && (path == "/dev/stdin" || (path.StartsWith("/dev/fd/", StringComparison.Ordinal) && int.TryParse(path.AsSpan(8), out _)));

    /// <summary>
    /// UTF-8 that refuses bytes it cannot decode (a Latin-1 corpus would otherwise train on U+FFFD tokens). With its own
    /// preamble, so that a reader meeting a UTF-8 BOM strips it and keeps this decoder (without one it would switch to
    /// the lenient <see cref="Encoding.UTF8"/>).
    /// </summary>
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: true, throwOnInvalidBytes: true);

    private static IEnumerable<Sentence> ReadFileIterator(string path, EntityTypeSpellings spellings)
    {
        using var reader = new StreamReader(path, StrictUtf8, detectEncodingFromByteOrderMarks: true);
        using IEnumerator<Sentence> sentences = ReadIterator(reader, path, spellings).GetEnumerator();
        while (true)
        {
            bool more;
            try
            {
                more = sentences.MoveNext();
            }
            catch (DecoderFallbackException ex)
            {
                throw NotUtf8(path, ex, Locate(path));
            }

            if (!more)
            {
                yield break;
            }

            yield return sentences.Current;
        }
    }

    /// <summary>
    /// Reads a whole text file (raw text to tag, say) as strict UTF-8, as <see cref="ReadFile"/> reads a corpus: bytes
    /// that are not UTF-8 (a binary or Latin-1 file) are refused instead of becoming U+FFFD characters.
    /// </summary>
    /// <param name="stream">The text's bytes (a UTF-8 byte order mark is skipped).</param>
    /// <param name="sourceName">Name used in the error message (the file's path, or "stdin").</param>
    /// <param name="cancellationToken">Stops the reading.</param>
    /// <returns>The text.</returns>
    /// <exception cref="InputDataException">The bytes are not UTF-8; the message names <paramref name="sourceName"/> and the line.</exception>
    public static async Task<string> ReadTextAsync(Stream stream, string sourceName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(sourceName);
        // Held as bytes first (the text is read whole anyway), so that a refusal can name the line (stdin cannot be read twice).
        using var bytes = new MemoryStream();
        await stream.CopyToAsync(bytes, cancellationToken).ConfigureAwait(false);
        bytes.Position = 0;
        using var reader = new StreamReader(bytes, StrictUtf8, detectEncodingFromByteOrderMarks: true, leaveOpen: true);
        try
        {
            return await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (DecoderFallbackException ex)
        {
            bytes.Position = 0;
            throw NotUtf8(sourceName, ex, Utf8Scan.FirstInvalid(bytes));
        }
    }

    /// <summary>
    /// Where the file stops being UTF-8: the strict decoder reads ahead in blocks, so its exception says which bytes but
    /// not where (the message named the file only). Null when the file cannot be read again.
    /// </summary>
    private static Utf8Scan.Position? Locate(string path)
    {
        try
        {
            using FileStream file = File.OpenRead(path);
            return Utf8Scan.FirstInvalid(file);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static InputDataException NotUtf8(string source, DecoderFallbackException ex, Utf8Scan.Position? at) => at is { } p
        ? new(string.Create(CultureInfo.InvariantCulture, $"{source}:{p.Line}: not UTF-8 text ({p.Describe()}); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)."), ex)
        : new($"{source}: not UTF-8 text ({ex.Message}); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8).", ex);

    /// <summary>Reads sentences lazily from a text reader.</summary>
    /// <param name="reader">The text source.</param>
    /// <param name="sourceName">Name used in error messages (usually the file path).</param>
    /// <returns>The sentences, in order.</returns>
    /// <exception cref="InputDataException">A line is malformed; the message is <c>source:line: problem</c>.</exception>
    public static IEnumerable<Sentence> Read(TextReader reader, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(sourceName);
        return ReadIterator(reader, sourceName, new EntityTypeSpellings());
    }

    private static IEnumerable<Sentence> ReadIterator(TextReader reader, string sourceName, EntityTypeSpellings spellings)
    {
        var tokens = new List<string>();
        var tags = new List<string>();
        int lineNumber = 0;
        int firstWidth = 0; // columns of the document's first token line, and that line
        int firstWidthLine = 0;
        var buffer = new System.Text.StringBuilder();
        string? line;
        while ((line = ReadLine(reader, buffer, sourceName, lineNumber + 1)) is not null)
        {
            lineNumber++;
            string trimmed = line.Trim();
            if (trimmed.Length == 0 || trimmed.StartsWith("-DOCSTART-", StringComparison.Ordinal))
            {
                if (trimmed.Length > 0)
                {
                    firstWidth = 0; // a new document may have other columns
                }

                if (tokens.Count > 0)
                {
                    yield return new Sentence(tokens.ToArray(), Iob.ToIob2(tags));
                    tokens.Clear();
                    tags.Clear();
                }

                continue;
            }

            string[] columns = trimmed.Contains('\t', StringComparison.Ordinal)
                ? trimmed.Split('\t', StringSplitOptions.TrimEntries)
                : trimmed.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (columns.Length < 2)
            {
                throw Malformed(sourceName, lineNumber, $"expected 'TOKEN<TAB>TAG' (or space-separated columns), found one column \"{Shorten(trimmed)}\"");
            }

            // The token is the first column and the tag the last: a line of another width than the document's first (a
            // 'token gold predicted' line among TOKEN<TAB>TAG ones, a token with a space in a space-separated file) would
            // be read without its middle columns, silently.
            if (firstWidth == 0)
            {
                firstWidth = columns.Length;
                firstWidthLine = lineNumber;
            }
            else if (columns.Length != firstWidth)
            {
                throw Malformed(sourceName, lineNumber, string.Create(CultureInfo.InvariantCulture,
                    $"{columns.Length} columns, but line {firstWidthLine} has {firstWidth} (every token line of a document has the same columns: the token first, the tag last), found \"{Shorten(trimmed)}\""));
            }

            string token = columns[0];
            if (token.Length == 0)
            {
                throw Malformed(sourceName, lineNumber, "empty token");
            }

            tokens.Add(token);
            string tag = NormalizeTag(columns[^1], sourceName, lineNumber);
            if (tag != "O")
            {
                spellings.Add(tag, sourceName, lineNumber);
            }

            tags.Add(tag);
        }

        if (tokens.Count > 0)
        {
            yield return new Sentence(tokens.ToArray(), Iob.ToIob2(tags));
        }
    }

    private static string NormalizeTag(string tag, string sourceName, int lineNumber)
    {
        switch (tag)
        {
            case "O":
                return tag;
            case "B":
            case "I":
                return tag + "-" + UntypedEntity;
        }

        if (tag.Length > 2 && (tag[0] == 'B' || tag[0] == 'I') && tag[1] == '-' && !tag.AsSpan(2).ContainsAny(' ', '\t'))
        {
            return tag;
        }

        throw Malformed(sourceName, lineNumber, $"invalid tag \"{Shorten(tag)}\" (expected O, B-TYPE or I-TYPE)");
    }

    private static InputDataException Malformed(string source, int line, string what) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{source}:{line}: {what}"));

    /// <summary>The most characters a line may hold: a token line needs a few dozen; a CoNLL file has no longer one.</summary>
    internal const int MaxLineChars = 1 << 20;

    /// <summary>
    /// <see cref="TextReader.ReadLine"/> (a line ends at \n, \r or \r\n) that stops at <see cref="MaxLineChars"/>: a file
    /// without line breaks (a 1.2 GB one, say) was read whole into one string until the runtime's string limit ended it
    /// with an OutOfMemoryException and a stack trace.
    /// </summary>
    private static string? ReadLine(TextReader reader, System.Text.StringBuilder buffer, string sourceName, int lineNumber)
    {
        buffer.Clear();
        int c = reader.Read();
        if (c < 0)
        {
            return null;
        }

        while (c >= 0 && c != '\n' && c != '\r')
        {
            if (buffer.Length == MaxLineChars)
            {
                throw Malformed(sourceName, lineNumber, string.Create(CultureInfo.InvariantCulture,
                    $"line longer than {MaxLineChars:N0} characters (starting \"{buffer.ToString(0, 60)}...\"); a CoNLL file has one token per line: this is not one"));
            }

            buffer.Append((char)c);
            c = reader.Read();
        }

        if (c == '\r' && reader.Peek() == '\n')
        {
            reader.Read();
        }

        return buffer.ToString();
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..60] + "...";
}
