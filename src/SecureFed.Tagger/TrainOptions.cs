namespace SecureFed.Tagger;

/// <summary>Options for <see cref="TaggerTrainer.Train"/>.</summary>
public sealed record TrainOptions
{
    /// <summary>Maximum epochs (passes; with DP-SGD an epoch is round(1/q) Poisson-sampled steps).</summary>
    /// <value>The default value is 20.</value>
    public int Epochs { get; init; } = 20;

    /// <summary>Sentences per batch (non-DP training).</summary>
    /// <value>The default value is 32.</value>
    public int BatchSize { get; init; } = 32;

    /// <summary>Learning rate.</summary>
    /// <value>The default value is 0.003.</value>
    public double LearningRate { get; init; } = 0.003;

    /// <summary>Learning-rate decay per epoch: epoch e (1-based) uses LearningRate / (1 + decay * (e - 1)); 0 keeps it constant.</summary>
    /// <value>The default value is 0.</value>
    public double LearningRateDecay { get; init; }

    /// <summary>
    /// Decoupled weight decay λ (Loshchilov and Hutter, ICLR 2019): before each step every trained parameter is scaled by
    /// 1 − lr·λ, for SGD the same as adding λ·w to the gradient, for Adam AdamW's rule. Under DP-SGD it is
    /// post-processing (it reads only the model, never an example): the noise a step adds to a coordinate no example
    /// pulls back would otherwise accumulate as a random walk over the steps; with the decay it stays bounded. 0 = off.
    /// </summary>
    /// <value>The default value is 0.</value>
    public double WeightDecay { get; init; }

    /// <summary>
    /// Exponential moving average of the weights, updated after every step with this decay (warm-up: the decay used at
    /// step n is min(decay, (1 + n) / (10 + n))); the averaged weights are the ones scored on dev and returned. 0 = off.
    /// </summary>
    /// <value>The default value is 0.</value>
    public double WeightAverageDecay { get; init; }

    /// <summary>
    /// Seed for batch order, word dropout and the dropout masks. With DP-SGD it is used only when
    /// <see cref="DpSgdOptions.ReproducibleRandomness"/> is set; otherwise DP-SGD's randomness is secret.
    /// </summary>
    /// <value>The default value is 1.</value>
    public int Seed { get; init; } = 1;

    /// <summary>Stop after this many epochs without dev-F1 improvement; 0 disables early stopping.</summary>
    /// <value>The default value is 4.</value>
    public int Patience { get; init; } = 4;

    /// <summary>Optional cap on optimiser steps (null = no cap).</summary>
    /// <value>The default value is null.</value>
    public int? MaxSteps { get; init; }

    /// <summary>Global gradient-norm clip for non-DP training (0 = off).</summary>
    /// <value>The default value is 5.</value>
    public double GradientClip { get; init; } = 5.0;

    /// <summary>Optimiser.</summary>
    /// <value>The default value is <see cref="TaggerOptimizer.Adam"/>.</value>
    public TaggerOptimizer Optimizer { get; init; } = TaggerOptimizer.Adam;

    /// <summary>Torch intra-op threads (0 = auto: half the processors, at least 1; libgomp's spinning makes oversubscribed threads very slow on shared machines).</summary>
    /// <value>The default value is 0.</value>
    public int Threads { get; init; }

    /// <summary>DP-SGD settings; null trains without differential privacy.</summary>
    /// <value>The default value is null.</value>
    public DpSgdOptions? DpSgd { get; init; }

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Epochs, nameof(Epochs));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(BatchSize, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(LearningRate, nameof(LearningRate));
        ArgumentOutOfRangeException.ThrowIfNegative(LearningRateDecay, nameof(LearningRateDecay));
        if (!(WeightDecay >= 0 && LearningRate * WeightDecay < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "WeightDecay must be 0 or positive with LearningRate × WeightDecay below 1 (each step scales the weights by 1 − lr·λ).");
        }

        if (!(WeightAverageDecay >= 0 && WeightAverageDecay < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(WeightAverageDecay), WeightAverageDecay, "WeightAverageDecay must be in [0, 1).");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(Patience, nameof(Patience));
        ArgumentOutOfRangeException.ThrowIfNegative(GradientClip, nameof(GradientClip));
        ArgumentOutOfRangeException.ThrowIfNegative(Threads, nameof(Threads));
        if (MaxSteps is int max)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max, nameof(MaxSteps));
        }

        DpSgd?.Validate();
    }
}
