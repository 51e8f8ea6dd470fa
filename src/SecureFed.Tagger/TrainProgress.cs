namespace SecureFed.Tagger;

/// <summary>A progress report from <see cref="TaggerTrainer.Train"/>.</summary>
/// <param name="Epoch">Current epoch (1-based).</param>
/// <param name="Epochs">Maximum epochs.</param>
/// <param name="Step">Optimiser steps so far.</param>
/// <param name="EpochFraction">Fraction of the current epoch done, in [0, 1].</param>
/// <param name="Loss">Running mean loss of the current epoch.</param>
/// <param name="DevF1">Latest dev F1 (null before the first evaluation or without dev).</param>
/// <param name="BestDevF1">Best dev F1 so far.</param>
/// <param name="TokensPerSecond">Training throughput so far.</param>
/// <param name="EpochCompleted">True for the report at the end of an epoch (after dev evaluation).</param>
public sealed record TrainProgress(int Epoch, int Epochs, int Step, double EpochFraction, double Loss, double? DevF1, double? BestDevF1, double TokensPerSecond, bool EpochCompleted);
