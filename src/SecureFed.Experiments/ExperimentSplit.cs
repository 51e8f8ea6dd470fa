namespace SecureFed.Experiments;

/// <summary>How the training sentences are divided among the sites.</summary>
public enum ExperimentSplit
{
    /// <summary>Random sentences, equal shares.</summary>
    Iid,

    /// <summary>Random sentences, unequal shares (e.g. 60/30/10 %).</summary>
    Skewed,

    /// <summary>Each site holds one whole corpus (different hospitals annotate different things).</summary>
    ByCorpus,
}
