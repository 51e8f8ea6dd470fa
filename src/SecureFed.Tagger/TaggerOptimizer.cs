namespace SecureFed.Tagger;

/// <summary>The optimiser used by <see cref="TaggerTrainer"/>.</summary>
public enum TaggerOptimizer
{
    /// <summary>Adam (default).</summary>
    Adam,

    /// <summary>Plain SGD without momentum (exact update = -lr * gradient; used to test DP-SGD bounds).</summary>
    Sgd,
}
