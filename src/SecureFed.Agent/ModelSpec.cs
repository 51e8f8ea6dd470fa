using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
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

    /// <summary>Canonical JSON: {"config":…,"entity_types":[…sorted…]}.</summary>
    public string ToJson() => "{\"config\":" + Config.ToJson() + ",\"entity_types\":" + JsonSerializer.Serialize(EntityTypes.Order(StringComparer.Ordinal).ToArray()) + "}";

    /// <summary>SHA-256 hex of <see cref="ToJson"/>.</summary>
    public string Sha256 => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ToJson())));

    /// <summary>Parses a spec file; errors name the file.</summary>
    public static ModelSpec Load(string path)
    {
        try
        {
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            TaggerConfig config = TaggerConfig.FromJson(doc.RootElement.GetProperty("config").GetRawText());
            string[] types = [.. doc.RootElement.GetProperty("entity_types").EnumerateArray().Select(e => e.GetString() ?? throw new InvalidDataException("null entity type"))];
            return new ModelSpec(config, types);
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: not a valid model specification ({ex.Message}).", ex);
        }
    }

    /// <summary>The default spec: the product's five clinical types on the default (or tiny) tagger.</summary>
    public static ModelSpec Clinical(bool tiny) => new(tiny ? TaggerConfig.Tiny : TaggerConfig.Default, LabelSet.ClinicalTypes);
}
