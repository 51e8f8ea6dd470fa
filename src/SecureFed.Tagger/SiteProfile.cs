namespace SecureFed.Tagger;

/// <summary>
/// How one (fictional) hospital writes its notes, for <see cref="SyntheticClinicalCorpus"/>: which entity types it
/// mentions how often, its spelling and naming conventions and its date format.
/// </summary>
public sealed record SiteProfile
{
    /// <summary>Site id, e.g. <c>site-de</c>.</summary>
    public required string Name { get; init; }

    /// <summary>Human-readable description.</summary>
    public required string Description { get; init; }

    /// <summary>Relative frequency of Disease, Symptom, Drug, Procedure, Genetics mentions (5 values, same order as <see cref="LabelSet.ClinicalTypes"/>).</summary>
    public required IReadOnlyList<double> TypeWeights { get; init; }

    /// <summary>British spelling (anaemia, oedema, paracetamol) instead of American.</summary>
    public bool BritishSpelling { get; init; }

    /// <summary>Probability that a drug is written by brand name instead of the generic name.</summary>
    public double BrandNameRate { get; init; }

    /// <summary>Probability that an entity with a common abbreviation is abbreviated (HTN, T2DM, SOB).</summary>
    public double AbbreviationRate { get; init; }

    /// <summary>.NET date format for dates in the notes, e.g. <c>dd.MM.yyyy</c>.</summary>
    public required string DateFormat { get; init; }

    /// <summary>Which phrasing family the site prefers (0 narrative, 1 terse, 2 structured).</summary>
    public int PhrasingStyle { get; init; }

    /// <summary>Fraction of each lexicon this site's patients ever show (a site-specific subset: different entity mixes).</summary>
    public double LexiconCoverage { get; init; } = 0.8;
}
