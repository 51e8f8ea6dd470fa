namespace SecureFed.Tagger;

/// <summary>Outcome of <see cref="TaggerLanguageModel.Pretrain"/>.</summary>
/// <param name="EpochLosses">Mean cross-entropy (nats) per predicted token of each epoch, both directions together.</param>
/// <param name="Steps">Optimiser steps taken (skipped ones not counted, <see cref="SkippedSteps"/>).</param>
/// <param name="Predictions">Predicted tokens per epoch (each direction predicts every token but one per sentence).</param>
/// <param name="TokensPerSecond">Training throughput over the input tokens.</param>
/// <param name="Elapsed">Wall-clock time.</param>
public sealed record LanguageModelResult(IReadOnlyList<double> EpochLosses, int Steps, long Predictions, double TokensPerSecond, TimeSpan Elapsed)
{
    /// <summary>Steps skipped because the loss or its gradient was not a finite number (not in <see cref="Steps"/>).</summary>
    public int SkippedSteps { get; init; }

    /// <summary>The last epoch's mean loss.</summary>
    public double FinalLoss => EpochLosses.Count == 0 ? double.NaN : EpochLosses[^1];

    /// <summary>exp(<see cref="FinalLoss"/>): the training perplexity over the hashed word buckets.</summary>
    public double Perplexity => Math.Exp(FinalLoss);
}
