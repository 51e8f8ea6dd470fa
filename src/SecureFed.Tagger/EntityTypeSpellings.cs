using System.Globalization;

namespace SecureFed.Tagger;

/// <summary>
/// The first spelling of each entity type met in CoNLL input (and where), so that a type spelled with other letter case
/// later (<c>B-disease</c> after <c>B-Disease</c>) is refused instead of becoming a second entity type: the label set
/// would silently hold both, and the model would split one type's mentions between them. Nothing is renamed: the data
/// must be fixed. Share one across the files whose types make one label set (train and dev, say).
/// </summary>
public sealed class EntityTypeSpellings
{
    private readonly Dictionary<string, (string Spelling, string Source, int Line)> _first = new(StringComparer.OrdinalIgnoreCase);
    private readonly bool _check;

    /// <summary>An empty table.</summary>
    public EntityTypeSpellings()
        : this(check: true)
    {
    }

    private EntityTypeSpellings(bool check) => _check = check;

    /// <summary>
    /// A table that checks nothing, for reads whose labels are ignored (public text kept as tokens only, or data whose
    /// other types become O): a type spelled two ways there makes no second type, and refusing it refused usable text.
    /// </summary>
    public static EntityTypeSpellings Unchecked { get; } = new(check: false);

    /// <summary>Records the type of <paramref name="tag"/> (B-TYPE or I-TYPE) read at <paramref name="source"/>:<paramref name="line"/>.</summary>
    /// <exception cref="InputDataException">The type was met before spelled with other letter case; the message names both spellings and where each was first met.</exception>
    internal void Add(string tag, string source, int line)
    {
        if (!_check)
        {
            return;
        }

        string type = tag[2..];
        if (!_first.TryGetValue(type, out var first))
        {
            _first.Add(type, (type, source, line));
            return;
        }

        if (!string.Equals(first.Spelling, type, StringComparison.Ordinal))
        {
            string where = string.Equals(first.Source, source, StringComparison.Ordinal)
                ? string.Create(CultureInfo.InvariantCulture, $"line {first.Line}")
                : string.Create(CultureInfo.InvariantCulture, $"{first.Source}:{first.Line}");
            throw new InputDataException(string.Create(CultureInfo.InvariantCulture,
                $"{source}:{line}: entity type \"{type}\" ({tag}) differs only in letter case from \"{first.Spelling}\" (first at {where}); they would be two entity types. Spell each type one way in the data (nothing is renamed)."));
        }
    }
}
