namespace SecureFed.Tagger;

/// <summary>Options for <see cref="TaggerLanguageModel.Pretrain"/>.</summary>
public sealed record LanguageModelOptions
{
    /// <summary>Passes over the text.</summary>
    /// <value>The default value is 1.</value>
    public int Epochs { get; init; } = 1;

    /// <summary>Sentences per batch (length-bucketed).</summary>
    /// <value>The default value is 32.</value>
    public int BatchSize { get; init; } = 32;

    /// <summary>Adam's learning rate.</summary>
    /// <value>The default value is 0.003.</value>
    public double LearningRate { get; init; } = 0.003;

    /// <summary>Global gradient-norm clip (0 = off).</summary>
    /// <value>The default value is 5.</value>
    public double GradientClip { get; init; } = 5.0;

    /// <summary>Seed for the output layer's initialisation, batch order, word dropout and the dropout masks.</summary>
    /// <value>The default value is 1.</value>
    public int Seed { get; init; } = 1;

    /// <summary>Torch intra-op threads (0 = auto, see <see cref="TorchRuntime.SetThreads"/>).</summary>
    /// <value>The default value is 0.</value>
    public int Threads { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Epochs, nameof(Epochs));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize, nameof(BatchSize));
        if (!(LearningRate > 0 && double.IsFinite(LearningRate)))
        {
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be finite and > 0.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(GradientClip, nameof(GradientClip));
        ArgumentOutOfRangeException.ThrowIfNegative(Threads, nameof(Threads));
    }
}
