namespace SecureFed.Tagger;

/// <summary>Outcome of <see cref="TaggerTrainer.Train"/>.</summary>
/// <param name="Epochs">Epochs run.</param>
/// <param name="Steps">Optimiser steps taken.</param>
/// <param name="DpSteps">DP-SGD steps taken (0 without DP); each sampled with rate <paramref name="SampleRate"/>.</param>
/// <param name="SampleRate">Poisson sampling rate q of the DP steps (0 without DP).</param>
/// <param name="FinalLoss">Mean training loss of the last epoch.</param>
/// <param name="BestDevF1">Best dev F1 (the weights kept), or null without a dev set.</param>
/// <param name="TokensPerSecond">Training throughput (forward + backward + step; dev evaluation excluded).</param>
public sealed record TrainResult(int Epochs, int Steps, int DpSteps, double SampleRate, double FinalLoss, double? BestDevF1, double TokensPerSecond)
{
    /// <summary>Epoch whose weights were kept (1-based), or the last epoch without a dev set.</summary>
    public int BestEpoch { get; init; }

    /// <summary>Steps of ordinary training (not DP-SGD) not taken because the loss or its gradient was not a finite number.</summary>
    public int SkippedSteps { get; init; }

    /// <summary>
    /// Whether training stopped early because a whole epoch's steps were skipped (the weights were no longer numbers); the
    /// model then holds the best earlier epoch's weights (<see cref="BestEpoch"/>). Without a dev set that is an error instead.
    /// </summary>
    public bool Diverged { get; init; }

    /// <summary>Wall-clock training time.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>
    /// DP-SGD: the fraction of sampled examples whose gradient norm (after the preconditioner, if any) exceeded the clip C
    /// and was scaled down (0 without DP). Near 1 means C cuts every gradient, near 0 that C (and the noise, σ·C) could be smaller.
    /// </summary>
    public double DpClippedFraction { get; init; }

    /// <summary>
    /// DP-SGD: the number of sampled examples whose gradient norm (the same norm the clip was applied to: after the
    /// preconditioner's part before clipping, in the subspace with projected DP-SGD) is at most the clip C, i.e. left
    /// unscaled; summed over the steps (0 without DP). Adaptive clipping releases it with noise.
    /// </summary>
    public long DpUnclippedCount { get; init; }

    /// <summary>DP-SGD: the number of sampled examples over all steps (0 without DP).</summary>
    public long DpSampledExamples { get; init; }

    /// <summary>DP-SGD: the median of the sampled examples' gradient norms before clipping (0 without DP); a usual choice of C.</summary>
    public double DpMedianGradNorm { get; init; }
}
