namespace SecureFed.Agent;

/// <summary>
/// Local training at a site. The real implementation trains the TorchSharp tagger with DP-SGD
/// (<see cref="TaggerLocalTrainer"/>); tests substitute a fast deterministic one.
/// </summary>
public interface ILocalTrainer
{
    /// <summary>SHA-256 (hex) of the model specification; must equal the round's announcement.</summary>
    string ModelSpecSha256 { get; }

    /// <summary>The model specification itself, for the error that names it when a round's differs; null when this trainer has none.</summary>
    ModelSpec? ModelSpec => null;

    /// <summary>Number of model parameters.</summary>
    int ParameterCount { get; }

    /// <summary>Sentences (examples) in the local training set.</summary>
    long ExampleCount { get; }

    /// <summary>Expected DP-SGD steps of one round under <paramref name="plan"/> (for the budget check beforehand).</summary>
    long ExpectedSteps(LocalTrainingPlan plan);

    /// <summary>
    /// Parameters per tensor of the model, in flatten order, for a round that announces layer scales (docs/PROTOCOL.md,
    /// "Layer scales"); null when this trainer cannot apply them (the site then declines such rounds).
    /// </summary>
    IReadOnlyList<long>? TensorSizes => null;

    /// <summary>Trains from <paramref name="globalModel"/> and returns the delta.</summary>
    LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken);
}
