namespace SecureFed.Tagger.Internal;

/// <summary>IOB tag helpers shared by the reader, the evaluator and decoding.</summary>
internal static class Iob
{
    /// <summary>Splits a tag into prefix ('B', 'I' or 'O') and entity type ("" for O).</summary>
    public static (char Prefix, string Type) Parse(string tag)
    {
        if (tag.Length >= 2 && (tag[0] == 'B' || tag[0] == 'I') && tag[1] == '-')
        {
            return (tag[0], tag[2..]);
        }

        return ('O', string.Empty);
    }

    /// <summary>Rewrites IOB1 (or already IOB2) tags as IOB2: an I- that starts a chunk becomes B-.</summary>
    public static string[] ToIob2(IReadOnlyList<string> tags)
    {
        var result = new string[tags.Count];
        char prevPrefix = 'O';
        string prevType = string.Empty;
        for (int i = 0; i < tags.Count; i++)
        {
            (char prefix, string type) = Parse(tags[i]);
            result[i] = prefix == 'I' && (prevPrefix == 'O' || !string.Equals(prevType, type, StringComparison.Ordinal))
                ? "B-" + type
                : tags[i];
            prevPrefix = prefix;
            prevType = type;
        }

        return result;
    }

    /// <summary>Entity chunks with conlleval semantics: an I- after O or after another type starts a new chunk.</summary>
    public static List<(int Start, int End, string Type)> Chunks(IReadOnlyList<string> tags)
    {
        var chunks = new List<(int Start, int End, string Type)>();
        int start = -1;
        string currentType = string.Empty;
        for (int i = 0; i < tags.Count; i++)
        {
            (char prefix, string type) = Parse(tags[i]);
            bool continues = start >= 0 && prefix == 'I' && string.Equals(type, currentType, StringComparison.Ordinal);
            if (start >= 0 && !continues)
            {
                chunks.Add((start, i, currentType));
                start = -1;
            }

            if (prefix != 'O' && !continues)
            {
                start = i;
                currentType = type;
            }
        }

        if (start >= 0)
        {
            chunks.Add((start, tags.Count, currentType));
        }

        return chunks;
    }
}
