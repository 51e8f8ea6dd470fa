namespace SecureFed.Tagger;

/// <summary>Result of <see cref="TaggerEvaluator"/>: overall (micro) and per-type entity scores.</summary>
public sealed record EvaluationResult
{
    /// <summary>Overall counts.</summary>
    public required EntityScore Overall { get; init; }

    /// <summary>Scores per entity type (types seen in gold or predictions), ordinal order.</summary>
    public required IReadOnlyDictionary<string, EntityScore> PerType { get; init; }

    /// <summary>Number of sentences.</summary>
    public int Sentences { get; init; }

    /// <summary>Number of tokens.</summary>
    public long Tokens { get; init; }

    /// <summary>Fraction of tokens whose tag is exactly right.</summary>
    public double TokenAccuracy { get; init; }

    /// <summary>Inference throughput (0 when only scoring).</summary>
    public double TokensPerSecond { get; init; }

    /// <summary>Overall precision.</summary>
    public double Precision => Overall.Precision;

    /// <summary>Overall recall.</summary>
    public double Recall => Overall.Recall;

    /// <summary>Overall F1.</summary>
    public double F1 => Overall.F1;
}
