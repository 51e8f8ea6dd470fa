using System.Text;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// Turns a token into fixed-size integer features WITHOUT any vocabulary: the normalised word, its shape and its
/// character n-grams are hashed with 64-bit FNV-1a over UTF-8, keyed by a constant per-feature prefix, into
/// fixed bucket ranges. FNV-1a is stable across processes, machines and .NET versions (unlike
/// <see cref="string.GetHashCode()"/>, which is randomised per process), so every site maps the same word to the
/// same row without exchanging word lists: no site's vocabulary ever leaves the site. Index 0 of every table is
/// reserved for padding / unknown, hashes land in 1..buckets-1. Collisions are tolerated (the n-gram features
/// disambiguate). This is feature hashing, not encryption: a party holding the weights can test whether a
/// GUESSED word has a trained row; the threat model relies on secure aggregation and DP for that.
/// </summary>
internal sealed class FeatureHasher
{
    private const ulong FnvOffset = 14695981039346656037UL;
    private const ulong FnvPrime = 1099511628211UL;
    private const string Key = "securefed-tagger-v1";

    private readonly TaggerConfig _config;

    public FeatureHasher(TaggerConfig config)
    {
        _config = config;
    }

    /// <summary>
    /// Features of one sentence: word ids [T], shape ids [T], n-gram ids [T * MaxNgramsPerToken] (0-padded) and,
    /// when the character CNN is on, character ids [T * MaxCharsPerToken] (0-padded; empty otherwise).
    /// </summary>
    public (long[] Words, long[] Shapes, long[] Ngrams, long[] Chars) Encode(IReadOnlyList<string> tokens)
    {
        int k = _config.MaxNgramsPerToken;
        int c = _config.CharCnnFilters > 0 ? _config.MaxCharsPerToken : 0;
        var words = new long[tokens.Count];
        var shapes = new long[tokens.Count];
        var ngrams = new long[tokens.Count * k];
        var chars = new long[tokens.Count * c];
        for (int t = 0; t < tokens.Count; t++)
        {
            string normalized = Normalize(tokens[t]);
            words[t] = Bucket("w", normalized, _config.WordBuckets);
            shapes[t] = Bucket("s", Shape(tokens[t]), _config.ShapeBuckets);
            WriteNgrams(normalized, ngrams.AsSpan(t * k, k));
            if (c > 0)
            {
                WriteChars(tokens[t], chars.AsSpan(t * c, c));
            }
        }

        return (words, shapes, ngrams, chars);
    }

    /// <summary>Hashed characters of <c>&lt;token&gt;</c> (case kept); a long token keeps its first and last halves.</summary>
    private void WriteChars(string token, Span<long> destination)
    {
        string marked = "<" + token + ">";
        int n = Math.Min(marked.Length, destination.Length);
        int head = marked.Length <= destination.Length ? n : (n + 1) / 2;
        for (int i = 0; i < n; i++)
        {
            int source = i < head ? i : marked.Length - (n - i);
            destination[i] = Bucket("c", marked.AsSpan(source, 1), _config.CharBuckets);
        }
    }

    internal static string Normalize(string token)
    {
        var sb = new StringBuilder(token.Length);
        foreach (char c in token)
        {
            sb.Append(char.IsDigit(c) ? '0' : char.ToLowerInvariant(c));
        }

        return sb.ToString();
    }

    internal static string Shape(string token)
    {
        var sb = new StringBuilder(8);
        char last = '\0';
        int run = 0;
        foreach (char c in token)
        {
            char s = char.IsUpper(c) ? 'X' : char.IsLower(c) ? 'x' : char.IsDigit(c) ? 'd' : c;
            if (s == last)
            {
                run++;
                if (run >= 2)
                {
                    continue;
                }
            }
            else
            {
                run = 0;
            }

            sb.Append(s);
            last = s;
            if (sb.Length >= 12)
            {
                break;
            }
        }

        return sb.ToString();
    }

    private void WriteNgrams(string normalized, Span<long> destination)
    {
        string marked = "<" + normalized + ">";
        int count = 0;
        destination[count++] = Bucket("g", marked, _config.CharNgramBuckets);

        // Prefix and suffix n-grams first (most informative for biomedical morphology), then the interior.
        for (int n = _config.MinNgram; n <= _config.MaxNgram && count < destination.Length; n++)
        {
            if (n >= marked.Length)
            {
                break;
            }

            destination[count++] = Bucket("g", marked.AsSpan(0, n), _config.CharNgramBuckets);
            if (count < destination.Length)
            {
                destination[count++] = Bucket("g", marked.AsSpan(marked.Length - n, n), _config.CharNgramBuckets);
            }
        }

        for (int n = _config.MinNgram; n <= _config.MaxNgram; n++)
        {
            for (int i = 1; i + n < marked.Length; i++)
            {
                if (count >= destination.Length)
                {
                    return;
                }

                destination[count++] = Bucket("g", marked.AsSpan(i, n), _config.CharNgramBuckets);
            }
        }
    }

    internal static long Bucket(string kind, ReadOnlySpan<char> text, int buckets)
    {
        ulong hash = Fnv1a(FnvOffset, Key);
        hash = Fnv1a(hash, kind);
        hash = Fnv1a(hash, "\u001f");
        hash = Fnv1a(hash, text);
        return 1 + (long)(hash % (ulong)(buckets - 1));
    }

    internal static ulong Fnv1a(ulong hash, ReadOnlySpan<char> text)
    {
        Span<byte> buffer = stackalloc byte[256];
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        byte[]? rented = max > buffer.Length ? new byte[max] : null;
        Span<byte> bytes = rented ?? buffer;
        int written = Encoding.UTF8.GetBytes(text, bytes);
        foreach (byte b in bytes[..written])
        {
            hash ^= b;
            hash *= FnvPrime;
        }

        return hash;
    }
}
