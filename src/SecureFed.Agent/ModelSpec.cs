using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using SecureFed.Federation.Internal;
using SecureFed.Tagger;

namespace SecureFed.Agent;

/// <summary>
/// What every site must share for their models to have the same shape: the tagger configuration and the entity
/// types (hence the label set). No vocabulary is part of it: features are hashed (see the tagger's docs), so no word
/// list ever leaves a site. Its SHA-256 is announced in every round and checked by every agent.
/// </summary>
public sealed record ModelSpec(TaggerConfig Config, IReadOnlyList<string> EntityTypes)
{
    /// <summary>The label set.</summary>
    public LabelSet Labels => LabelSet.Create(EntityTypes);

    /// <summary>
    /// Canonical JSON (docs/PROTOCOL.md §2, "Model specification"): no whitespace,
    /// <c>{"config":{…19 fields in a fixed order…[,"encoder":"…" when the model has one]},"entity_types":[…distinct, sorted by UTF-16 code unit…]}</c>; integers in
    /// decimal, the two dropout rates as the shortest round-trip decimal, strings with only <c>"</c>, <c>\</c> and
    /// control characters escaped. The hash therefore does not depend on how a spec file was formatted.
    /// </summary>
    public string ToJson()
    {
        TaggerConfig c = Config;
        var b = new StringBuilder("{\"config\":{");
        (string Name, string Value)[] fields =
        [
            ("word_buckets", Int(c.WordBuckets)), ("char_ngram_buckets", Int(c.CharNgramBuckets)), ("shape_buckets", Int(c.ShapeBuckets)),
            ("word_dim", Int(c.WordDim)), ("char_dim", Int(c.CharDim)), ("shape_dim", Int(c.ShapeDim)),
            ("min_ngram", Int(c.MinNgram)), ("max_ngram", Int(c.MaxNgram)), ("max_ngrams_per_token", Int(c.MaxNgramsPerToken)),
            ("hidden", Int(c.Hidden)), ("layers", Int(c.Layers)), ("dropout", Real(c.Dropout)), ("word_dropout", Real(c.WordDropout)),
            ("char_cnn_filters", Int(c.CharCnnFilters)), ("char_buckets", Int(c.CharBuckets)), ("char_emb_dim", Int(c.CharEmbDim)),
            ("char_cnn_width", Int(c.CharCnnWidth)), ("max_chars_per_token", Int(c.MaxCharsPerToken)), ("crf", c.Crf ? "true" : "false"),
        ];
        b.AppendJoin(',', fields.Select(f => $"\"{f.Name}\":{f.Value}"));
        if (c.Encoder.Length > 0)
        {
            b.Append(",\"encoder\":").Append(Quote(c.Encoder)); // only when set: specs without an encoder keep their hashes
        }

        b.Append("},\"entity_types\":[");
        b.AppendJoin(',', EntityTypes.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(Quote));
        b.Append("]}");
        return b.ToString();

        static string Int(int value) => value.ToString(CultureInfo.InvariantCulture);
        static string Real(double value) => value.ToString("R", CultureInfo.InvariantCulture);
        static string Quote(string value)
        {
            var q = new StringBuilder("\"");
            foreach (char ch in value)
            {
                _ = ch switch
                {
                    '"' => q.Append("\\\""),
                    '\\' => q.Append("\\\\"),
                    < ' ' => q.Append(CultureInfo.InvariantCulture, $"\\u{(int)ch:x4}"),
                    _ => q.Append(ch),
                };
            }

            return q.Append('"').ToString();
        }
    }

    /// <summary>SHA-256 hex of <see cref="ToJson"/>.</summary>
    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ToJson())));

    /// <summary>Parses a spec file; errors name the file.</summary>
    /// <exception cref="InvalidDataException">
    /// The file is not a valid model specification, or not a regular file (a named pipe, a device: refused before it is
    /// opened, naming the path and what it is).
    /// </exception>
    public static ModelSpec Load(string path)
    {
        // File.Exists is true for a named pipe too: reading one waited for a writer forever (the agent hung at start-up
        // with no message), and a link to /dev/zero was read without end.
        if (RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new InvalidDataException($"{path}{RegularFile.LinkText(path)} is {kind}, not a regular file; a model specification is a JSON file (as 'securefed model spec' writes it). It was not opened.");
        }

        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            TaggerConfig config = TaggerConfig.FromJson(doc.RootElement.GetProperty("config").GetRawText());
            string[] types = [.. doc.RootElement.GetProperty("entity_types").EnumerateArray().Select(e => e.GetString() ?? throw new InvalidDataException("null entity type"))];
            var spec = new ModelSpec(config, types);
            _ = spec.Labels; // every type a valid label name (no whitespace), or the spec is refused here, naming the file
            return spec;
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException or InvalidDataException)
        {
            throw new InvalidDataException($"{path}: not a valid model specification ({ex.Message}).", ex);
        }
    }

    /// <summary>The names <c>securefed model spec --size</c> takes, in its order.</summary>
    internal static readonly string[] SizeNames = ["default", "tiny", "tiny-crf", "tiny-encoder", "tiny-crf-encoder", "tiny-crf-encoder-mean"];

    /// <summary>
    /// How <c>securefed model spec</c> writes the spec whose SHA-256 is <paramref name="sha256"/> (<c>--size NAME</c>, with the
    /// clinical types), or null when it is no such spec: an announcement carries only the hash, and these are the specs a
    /// federation most often uses.
    /// </summary>
    public static string? KnownAs(string sha256)
    {
        ArgumentNullException.ThrowIfNull(sha256);
        string? size = SizeNames.FirstOrDefault(n => new ModelSpec(TaggerConfig.Resolve(n), LabelSet.ClinicalTypes).Sha256 == sha256);
        return size is null ? null : $"securefed model spec --size {size}";
    }

    /// <summary>
    /// This spec in a few words for an operator: the <c>--size</c> whose tagger it has (or the configuration's main numbers)
    /// and its entity types.
    /// </summary>
    public string Describe()
    {
        string? size = SizeNames.FirstOrDefault(n => TaggerConfig.Resolve(n) == Config);
        TaggerConfig c = Config;
        string tagger = size is not null
            ? $"the tagger of --size {size}"
            : string.Create(CultureInfo.InvariantCulture, $"a tagger of its own (hidden {c.Hidden}, layers {c.Layers}, word buckets {c.WordBuckets}, crf {(c.Crf ? "yes" : "no")}{(c.Encoder.Length > 0 ? ", encoder " + c.Encoder : "")})");
        return $"{tagger}; entity types {string.Join(", ", EntityTypes)}";
    }

    /// <summary>The default spec: the product's five clinical types on the default (or tiny) tagger.</summary>
    public static ModelSpec Clinical(bool tiny) => new(tiny ? TaggerConfig.Tiny : TaggerConfig.Default, LabelSet.ClinicalTypes);
}
