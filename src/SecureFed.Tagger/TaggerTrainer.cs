using System.Diagnostics;
using System.Globalization;
using SecureFed.Tagger.Internal;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger;

/// <summary>
/// Trains a <see cref="TaggerModel"/> in place: Adam (or SGD), length-bucketed batches, one dispose scope per batch,
/// seeded, early stopping on dev F1 (the best-dev weights are restored at the end), optional DP-SGD.
/// </summary>
public sealed class TaggerTrainer
{
    private const int ReportEverySteps = 10;


    /// <summary>Trains <paramref name="model"/>.</summary>
    /// <param name="model">The model (modified in place).</param>
    /// <param name="train">Training sentences.</param>
    /// <param name="dev">Optional dev sentences for early stopping.</param>
    /// <param name="options">Training options.</param>
    /// <param name="progress">Optional progress sink.</param>
    /// <param name="cancellationToken">Cancels between steps.</param>
    /// <returns>Counts and throughput; DP runs report the number of DP steps and q for the accountant.</returns>
    public TrainResult Train(
        TaggerModel model,
        IReadOnlyList<Sentence> train,
        IReadOnlyList<Sentence>? dev,
        TrainOptions options,
        IProgress<TrainProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (train.Count == 0)
        {
            throw new ArgumentException("the training set is empty", nameof(train));
        }

        TorchRuntime.SetThreads(options.Threads);
        // DP-SGD's sampling, dropout and noise are secret unless reproducibility is asked for; every other run is seeded.
        bool secret = options.DpSgd is { ReproducibleRandomness: false };
        Random rng = secret ? new CryptoRandom() : new Random(options.Seed);
        ulong generatorSeed = rng is CryptoRandom crypto ? crypto.NextUInt64() : unchecked((ulong)options.Seed);
        if (!secret)
        {
            // Only the multi-layer nn.LSTM's own between-layer dropout still draws from torch's global generator.
            lock (TorchRuntime.GlobalGeneratorLock)
            {
                torch.random.manual_seed(options.Seed);
            }
        }

        using var generator = new Generator(generatorSeed, model.Device);
        model.Network.Generator = generator;
        try
        {
            return Run(model, train, dev, options, progress, rng, generator, cancellationToken);
        }
        finally
        {
            model.Network.Generator = null;
        }
    }

    private static TrainResult Run(
        TaggerModel model,
        IReadOnlyList<Sentence> train,
        IReadOnlyList<Sentence>? dev,
        TrainOptions options,
        IProgress<TrainProgress>? progress,
        Random rng,
        Generator generator,
        CancellationToken cancellationToken)
    {
        model.PrepareFeatures(train.Where(s => s.Length > 0), cancellationToken); // stops between sentences when cancelled
        var encodedTrain = train.Where(s => s.Length > 0).Select(model.Encode).ToArray();
        if (encodedTrain.Length == 0)
        {
            throw new ArgumentException("the training set has only empty sentences", nameof(train));
        }

        var parameters = model.Parameters.Select(p => p.Tensor).ToArray();
        // DP-SGD with frozen embeddings: the optimiser only knows the parameters DP-SGD trains.
        using var optimizer = new ParameterOptimizer(
            [.. model.Parameters.Where(p => options.DpSgd?.Trains(p.Name) ?? true).Select(p => p.Tensor)], options.Optimizer, options.LearningRate, options.WeightDecay);

        using var average = options.WeightAverageDecay > 0 ? new WeightAverage(parameters, options.WeightAverageDecay) : null;
        var total = Stopwatch.StartNew();
        var trainWatch = new Stopwatch();
        long tokensSeen = 0;
        int steps = 0;
        int dpSteps = 0;
        var dpNorms = new List<double>();
        // The DP-SGD preconditioner as tensors, built once per call rather than once per step: the part applied to each
        // example's gradient before clipping, and the part applied to the noisy averaged gradient.
        Tensor[]? preconditioner = options.DpSgd is null ? null : PreconditionerTensors(model, options.DpSgd, options.DpSgd.PreconditionBeforeClipExponent);
        Tensor[]? afterNoise = options.DpSgd is null ? null : PreconditionerTensors(model, options.DpSgd, 1 - options.DpSgd.PreconditionBeforeClipExponent);
        double? bestF1 = null;
        int bestEpoch = 0;
        float[]? bestWeights = null;
        int sinceBest = 0;
        double epochLoss = 0;
        int skipped = 0;
        bool diverged = false;
        int epoch = 0;
        bool stop = false;
        model.Network.train();

        while (!stop && epoch < options.Epochs)
        {
            epoch++;
            if (options.LearningRateDecay > 0)
            {
                optimizer.LearningRate = options.LearningRate / (1 + (options.LearningRateDecay * (epoch - 1)));
            }

            double lossSum = 0;
            int lossCount = 0;
            List<EncodedSentence[]> batches = options.DpSgd is null
                ? MakeBatches(encodedTrain, options.BatchSize, rng)
                : PoissonBatches(encodedTrain, options.DpSgd.SampleRate, rng);
            for (int b = 0; b < batches.Count; b++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (options.MaxSteps is int max && steps >= max)
                {
                    stop = true;
                    break;
                }

                trainWatch.Start();
                double loss = options.DpSgd is null
                    ? Step(model, optimizer, batches[b], options, rng)
                    : DpStep(model, optimizer, batches[b], options.DpSgd, encodedTrain.Length, rng, generator, dpNorms, preconditioner, afterNoise);
                average?.Update();
                trainWatch.Stop();
                steps++;
                if (options.DpSgd is not null)
                {
                    dpSteps++;
                }

                tokensSeen += batches[b].Sum(s => s.Length);
                if (!double.IsNaN(loss))
                {
                    lossSum += loss;
                    lossCount++;
                }
                else if (options.DpSgd is null)
                {
                    skipped++;
                }

                if (progress is not null && steps % ReportEverySteps == 0)
                {
                    progress.Report(new TrainProgress(epoch, options.Epochs, steps, (b + 1) / (double)batches.Count,
                        lossCount == 0 ? 0 : lossSum / lossCount, null, bestF1, Rate(tokensSeen, trainWatch), false));
                }
            }

            if (options.DpSgd is null && lossCount == 0 && batches.Count > 0 && !stop)
            {
                // Every step of the epoch was skipped (Step): the weights themselves are not numbers any more. With an
                // earlier epoch's weights kept for the dev set, training stops and returns them (Diverged); without, it is
                // an error, instead of carrying the last epoch's loss on as before.
                if (bestWeights is null)
                {
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"Training diverged in epoch {epoch}: the loss or its gradient was not a finite number at every one of its {batches.Count} steps, so no step was taken (learning rate {optimizer.LearningRate:G4}; try a smaller one)."));
                }

                diverged = true;
                stop = true;
            }

            epochLoss = lossCount == 0 ? epochLoss : lossSum / lossCount;
            double? devF1 = null;
            float[]? raw = null;
            if (dev is not null && dev.Count > 0 && !diverged)
            {
                // With weight averaging, the averaged weights are the ones scored and kept; training continues from the raw ones.
                raw = average is null ? null : model.Flatten();
                average?.CopyTo(parameters);
                devF1 = TaggerEvaluator.Evaluate(model, dev).F1;
                model.Network.train();
                if (bestF1 is null || devF1 > bestF1)
                {
                    bestF1 = devF1;
                    bestEpoch = epoch;
                    bestWeights = model.Flatten();
                    sinceBest = 0;
                }
                else
                {
                    sinceBest++;
                    if (options.Patience > 0 && sinceBest >= options.Patience)
                    {
                        stop = true;
                    }
                }
            }
            else if (!diverged)
            {
                bestEpoch = epoch;
            }

            if (raw is not null)
            {
                model.Unflatten(raw);
            }

            progress?.Report(new TrainProgress(epoch, options.Epochs, steps, 1.0, epochLoss, devF1, bestF1, Rate(tokensSeen, trainWatch), true));
        }

        if (bestWeights is not null && (bestEpoch != epoch || average is not null))
        {
            model.Unflatten(bestWeights);
        }
        else if (average is not null)
        {
            average.CopyTo(parameters);
        }

        foreach (Tensor factor in (preconditioner ?? []).Concat(afterNoise ?? []))
        {
            factor.Dispose();
        }

        model.Network.eval();
        return new TrainResult(epoch, steps, dpSteps, options.DpSgd?.SampleRate ?? 0, epochLoss, bestF1, Rate(tokensSeen, trainWatch))
        {
            BestEpoch = bestEpoch,
            SkippedSteps = skipped,
            Diverged = diverged,
            Elapsed = total.Elapsed,
            DpClippedFraction = dpNorms.Count == 0 ? 0 : dpNorms.Count(n => n > options.DpSgd!.MaxGradNorm) / (double)dpNorms.Count,
            DpMedianGradNorm = dpNorms.Count == 0 ? 0 : dpNorms.Order().ElementAt(dpNorms.Count / 2),
            DpUnclippedCount = dpNorms.Count(n => n <= options.DpSgd!.MaxGradNorm),
            DpSampledExamples = dpNorms.Count,
        };
    }

    private static double Rate(long tokens, Stopwatch watch) =>
        watch.Elapsed.TotalSeconds > 0 ? tokens / watch.Elapsed.TotalSeconds : 0;

    internal static List<EncodedSentence[]> MakeBatches(EncodedSentence[] data, int batchSize, Random rng)
    {
        // Bucket by length with a little jitter so batches differ between epochs, then shuffle the batch order.
        var order = Enumerable.Range(0, data.Length)
            .Select(i => (Index: i, Key: data[i].Length + rng.NextDouble() * 4))
            .OrderBy(x => x.Key)
            .Select(x => x.Index)
            .ToArray();
        var batches = new List<EncodedSentence[]>();
        for (int start = 0; start < order.Length; start += batchSize)
        {
            batches.Add([.. order[start..Math.Min(order.Length, start + batchSize)].Select(i => data[i])]);
        }

        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(batches));
        return batches;
    }

    private static List<EncodedSentence[]> PoissonBatches(EncodedSentence[] data, double q, Random rng)
    {
        int stepsPerEpoch = (int)DpSgdOptions.StepsPerEpoch(q);
        var batches = new List<EncodedSentence[]>(stepsPerEpoch);
        for (int s = 0; s < stepsPerEpoch; s++)
        {
            batches.Add([.. data.Where(_ => rng.NextDouble() < q)]);
        }

        return batches;
    }

    private static double Step(TaggerModel model, ParameterOptimizer optimizer, EncodedSentence[] batch, TrainOptions options, Random rng)
    {
        using var scope = torch.NewDisposeScope();
        var tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: true, model.Config.WordDropout, rng);
        Tensor scores = model.Network.Forward(tensors);

        // Per-token mean (token cross-entropy, or the CRF's sentence NLLs summed and divided by the token count),
        // so the learning rate and the gradient clip mean the same for both heads.
        using Scalar tokens = Math.Max(1, tensors.TokenCount).ToScalar();
        Tensor loss = model.Network.SummedLoss(scores, tensors).div(tokens);
        optimizer.ZeroGrad();
        float value = loss.item<float>();
        if (!float.IsFinite(value))
        {
            return double.NaN; // skipped: a step along a gradient that is not a number would make every weight NaN
        }

        loss.backward();
        if (!GradientGuard.ClipAndCheck(model.Parameters.Select(p => p.Tensor), options.GradientClip))
        {
            optimizer.ZeroGrad();
            return double.NaN; // skipped, as above (a NaN gradient can sit behind a finite loss, clipped or not)
        }

        optimizer.Step();
        return value;
    }

    /// <summary>
    /// One DP-SGD step: each example's gradient clipped to L2 norm C over all parameters, summed (one batched
    /// forward and backward pass, <see cref="BatchedClipping"/>; or one backward pass per example), plus
    /// N(0, (sigma C)^2) per coordinate, divided by the expected batch size q N.
    /// </summary>
    private static double DpStep(TaggerModel model, ParameterOptimizer optimizer, EncodedSentence[] batch, DpSgdOptions dp, int datasetSize, Random rng, Generator generator, List<double> norms, Tensor[]? preconditioner, Tensor[]? after)
    {
        using var scope = torch.NewDisposeScope();
        if (dp.Subspace is not null)
        {
            return ProjectedDpStep(model, optimizer, batch, dp, datasetSize, rng, generator, norms, preconditioner, after);
        }

        Parameter[] parameters = [.. model.Parameters.Select(p => p.Tensor)];
        string[] names = [.. model.Parameters.Select(p => p.Name)];
        Tensor[] sum = ClippedSum(model, batch, dp, rng, out double lossSum, norms, preconditioner);
        using Scalar expectedBatch = (dp.SampleRate * datasetSize).ToScalar();
        using Scalar noiseStd = (dp.NoiseMultiplier * dp.MaxGradNorm).ToScalar();
        using (torch.no_grad())
        {
            for (int i = 0; i < parameters.Length; i++)
            {
                if (!dp.Trains(names[i]))
                {
                    continue; // frozen: not in the optimiser, no noise
                }

                Tensor noisy = dp.NoiseMultiplier > 0
                    ? sum[i].add(torch.randn(sum[i].shape, sum[i].dtype, sum[i].device, generator: generator), noiseStd)
                    : sum[i];
                SetGradient(parameters[i], noisy.div(expectedBatch), after?[i]);
            }
        }

        optimizer.Step();
        return batch.Length == 0 ? double.NaN : lossSum / batch.Length;
    }

    /// <summary>Sets <paramref name="parameter"/>'s gradient to <paramref name="grad"/>, times the preconditioner's part after the noise when there is one.</summary>
    private static void SetGradient(Parameter parameter, Tensor grad, Tensor? after)
    {
        Tensor value = after is null ? grad : grad.mul(after);
        if (parameter.grad is Tensor g)
        {
            g.copy_(value);
        }
        else
        {
            parameter.grad = value.detach().clone().DetachFromDisposeScope();
        }
    }

    /// <summary>
    /// One projected DP-SGD step (<see cref="DpSgdOptions.Subspace"/>): each example's gradient, scaled by the
    /// preconditioner's part before clipping and restricted to the trained parameters, is projected onto the public
    /// subspace (w = V g, k numbers), clipped to C there and summed; N(0, (σC)²) noise is added to each of the k
    /// coordinates; Vᵀ of the result, divided by q N (and scaled by the part after the noise), is the gradient.
    /// </summary>
    private static double ProjectedDpStep(TaggerModel model, ParameterOptimizer optimizer, EncodedSentence[] batch, DpSgdOptions dp, int datasetSize, Random rng, Generator generator, List<double> norms, Tensor[]? preconditioner, Tensor[]? after)
    {
        TaggerGradientSubspace subspace = dp.Subspace!;
        if (subspace.ParameterCount != model.ParameterCount)
        {
            throw new ArgumentException($"the gradient subspace is for {subspace.ParameterCount} parameters but the model has {model.ParameterCount}", nameof(dp));
        }

        Parameter[] parameters = [.. model.Parameters.Select(p => p.Tensor)];
        string[] names = [.. model.Parameters.Select(p => p.Name)];
        Tensor basis = subspace.Basis(model.Device);
        Tensor sum = ProjectedClippedSum(model, batch, dp, rng, basis, preconditioner, norms, out double lossSum);
        using Scalar expectedBatch = (dp.SampleRate * datasetSize).ToScalar();
        using Scalar noiseStd = (dp.NoiseMultiplier * dp.MaxGradNorm).ToScalar();
        using (torch.no_grad())
        {
            Tensor noisy = dp.NoiseMultiplier > 0 ? sum.add(torch.randn(sum.shape, sum.dtype, sum.device, generator: generator), noiseStd) : sum;
            Tensor flat = noisy.matmul(basis).div(expectedBatch);
            long offset = 0;
            for (int i = 0; i < parameters.Length; i++)
            {
                long n = parameters[i].numel();
                Tensor grad = flat.narrow(0, offset, n).reshape(parameters[i].shape);
                offset += n;
                if (dp.Trains(names[i]))
                {
                    SetGradient(parameters[i], grad, after?[i]);
                }
            }
        }

        optimizer.Step();
        return batch.Length == 0 ? double.NaN : lossSum / batch.Length;
    }

    /// <summary>
    /// Σ over <paramref name="batch"/> of clip_C(V (A ⊙ gᵢ)) (k numbers; zeros for an empty batch), V the subspace's basis
    /// and A the preconditioner's part before clipping; each projected norm is added to <paramref name="norms"/>. One
    /// batched pass (<see cref="BatchedClipping.PerExampleGradients"/>) or, with <see cref="DpSgdOptions.PerExampleLoop"/>
    /// or the character CNN, one backward pass per example.
    /// </summary>
    internal static Tensor ProjectedClippedSum(TaggerModel model, EncodedSentence[] batch, DpSgdOptions dp, Random rng, Tensor basis, Tensor[]? preconditioner, List<double>? norms, out double lossSum)
    {
        bool dropoutOff = WithoutDropout(model, dp);
        try
        {
            return ProjectedClippedSumCore(model, batch, dp, rng, basis, preconditioner, norms, out lossSum);
        }
        finally
        {
            RestoreDropout(model, dropoutOff);
        }
    }

    private static Tensor ProjectedClippedSumCore(TaggerModel model, EncodedSentence[] batch, DpSgdOptions dp, Random rng, Tensor basis, Tensor[]? preconditioner, List<double>? norms, out double lossSum)
    {
        Parameter[] parameters = [.. model.Parameters.Select(p => p.Tensor)];
        string[] names = [.. model.Parameters.Select(p => p.Name)];
        Tensor projected; // [B, k]
        if (batch.Length == 0)
        {
            lossSum = 0;
            return torch.zeros([basis.shape[0]], ScalarType.Float32, model.Device);
        }

        if (!dp.PerExampleLoop && BatchedClipping.Supports(model.Config))
        {
            var tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: true, dp.NoDropout ? 0 : model.Config.WordDropout, rng);
            Dictionary<string, Tensor>? byName = preconditioner is null ? null : names.Select((n, i) => (n, Scale: preconditioner[i])).ToDictionary(x => x.n, x => x.Scale, StringComparer.Ordinal);
            Tensor gradients = BatchedClipping.PerExampleGradients(model, tensors, dp.Trains, out lossSum, byName);
            using (torch.no_grad())
            {
                projected = gradients.matmul(basis.t());
            }
        }
        else
        {
            Tensor mask = torch.cat([.. parameters.Select((p, i) => (preconditioner is null ? torch.ones_like(p) : preconditioner[i]).reshape(-1).mul(dp.Trains(names[i]) ? TorchScalars.One : TorchScalars.Zero))]);
            var rows = new Tensor[batch.Length];
            lossSum = 0;
            for (int e = 0; e < batch.Length; e++)
            {
                Tensor[] grads = PerExampleGradient(model, batch[e], rng, out double loss, dp.NoDropout);
                lossSum += loss;
                using (torch.no_grad())
                {
                    rows[e] = basis.matmul(torch.cat([.. grads.Select(g => g.reshape(-1))]).mul(mask));
                }
            }

            projected = torch.stack(rows);
        }

        using (torch.no_grad())
        {
            Tensor exampleNorms = projected.to(ScalarType.Float64).norm(1);
            norms?.AddRange(exampleNorms.cpu().data<double>().ToArray());
            using Scalar c = dp.MaxGradNorm.ToScalar();
            using Scalar tiny = 1e-12.ToScalar();
            Tensor factors = exampleNorms.add(tiny, TorchScalars.OneInt).reciprocal().mul(c).clamp_max(TorchScalars.One).to(ScalarType.Float32);
            return projected.mul(factors.unsqueeze(1)).sum(dim: 0);
        }
    }

    /// <summary>
    /// Σ over <paramref name="batch"/> of each example's gradient clipped to norm C (zeros for an empty batch); with
    /// <see cref="DpSgdOptions.FreezeEmbeddings"/> the norm is over the trained parameters and the frozen ones get zeros.
    /// </summary>
    internal static Tensor[] ClippedSum(TaggerModel model, EncodedSentence[] batch, DpSgdOptions dp, Random rng, out double lossSum) =>
        ClippedSum(model, batch, dp, rng, out lossSum, null, PreconditionerTensors(model, dp, dp.PreconditionBeforeClipExponent));

    /// <summary>
    /// As above, with the part of <paramref name="dp"/>'s preconditioner applied before clipping already made into tensors
    /// (<paramref name="preconditioner"/>, null for none); each example's norm before clipping is added to
    /// <paramref name="norms"/> when given.
    /// </summary>
    internal static Tensor[] ClippedSum(TaggerModel model, EncodedSentence[] batch, DpSgdOptions dp, Random rng, out double lossSum, List<double>? norms, Tensor[]? preconditioner)
    {
        bool dropoutOff = WithoutDropout(model, dp);
        try
        {
            return ClippedSumCore(model, batch, dp, rng, out lossSum, norms, preconditioner);
        }
        finally
        {
            RestoreDropout(model, dropoutOff);
        }
    }

    /// <summary>
    /// Puts the network in evaluation mode (no dropout) for <see cref="DpSgdOptions.NoDropout"/> when it is training;
    /// true when it did, so <see cref="RestoreDropout"/> puts it back.
    /// </summary>
    private static bool WithoutDropout(TaggerModel model, DpSgdOptions dp)
    {
        if (!dp.NoDropout || !model.Network.training)
        {
            return false;
        }

        model.Network.eval();
        return true;
    }

    private static void RestoreDropout(TaggerModel model, bool dropoutOff)
    {
        if (dropoutOff)
        {
            model.Network.train();
        }
    }

    private static Tensor[] ClippedSumCore(TaggerModel model, EncodedSentence[] batch, DpSgdOptions dp, Random rng, out double lossSum, List<double>? norms, Tensor[]? preconditioner)
    {
        if (batch.Length > 0 && !dp.PerExampleLoop && BatchedClipping.Supports(model.Config))
        {
            Dictionary<string, Tensor>? byName = preconditioner is null ? null : model.Parameters.Select((p, i) => (p.Name, Scale: preconditioner[i])).ToDictionary(x => x.Name, x => x.Scale, StringComparer.Ordinal);
            if (batch.Length <= ClippingChunk)
            {
                return BatchedClippedSum(model, batch, dp, rng, byName, out lossSum, norms);
            }

            // Each example is clipped on its own, so the clipped sum of a batch is the sum of its chunks' clipped sums.
            // Chunks bound the memory of one step: the padded [B, T, input] tensors and their gradients grow with B,
            // and with the pretrained encoder's 384 columns a Poisson batch of 500 sentences needed gigabytes.
            Tensor[] total = [.. model.Parameters.Select(p => torch.zeros_like(p.Tensor))];
            lossSum = 0;
            foreach (EncodedSentence[] chunk in batch.Chunk(ClippingChunk))
            {
                using var chunkScope = torch.NewDisposeScope();
                Tensor[] part = BatchedClippedSum(model, chunk, dp, rng, byName, out double chunkLoss, norms);
                lossSum += chunkLoss;
                for (int i = 0; i < total.Length; i++)
                {
                    total[i].add_(part[i], TorchScalars.OneInt);
                }
            }

            return total;
        }

        Tensor[] sum = [.. model.Parameters.Select(p => torch.zeros_like(p.Tensor))];
        int[] trained = [.. Enumerable.Range(0, sum.Length).Where(i => dp.Trains(model.Parameters[i].Name))];
        lossSum = 0;
        foreach (EncodedSentence example in batch)
        {
            using var exampleScope = torch.NewDisposeScope();
            Tensor[] grads = PerExampleGradient(model, example, rng, out double loss, dp.NoDropout);
            lossSum += loss;
            double norm = ClipAndAccumulate([.. trained.Select(i => preconditioner is null ? grads[i] : grads[i].mul(preconditioner[i]))], [.. trained.Select(i => sum[i])], dp.MaxGradNorm);
            norms?.Add(norm);
        }

        return sum;
    }

    /// <summary>The most sentences <see cref="BatchedClipping"/> takes in one pass; a larger DP-SGD batch is summed in chunks of this size.</summary>
    internal const int ClippingChunk = 64;

    /// <summary>One pass of <see cref="BatchedClipping.ClippedSum"/> over <paramref name="batch"/> (at most <see cref="ClippingChunk"/> sentences).</summary>
    private static Tensor[] BatchedClippedSum(TaggerModel model, EncodedSentence[] batch, DpSgdOptions dp, Random rng, Dictionary<string, Tensor>? byName, out double lossSum, List<double>? norms)
    {
        var tensors = BatchTensors.Create(batch, model.Config, model.Device, withLabels: true, dp.NoDropout ? 0 : model.Config.WordDropout, rng);
        Tensor[] result = BatchedClipping.ClippedSum(model, tensors, dp.MaxGradNorm, dp.Trains, out lossSum, out Tensor exampleNorms, byName);
        norms?.AddRange(exampleNorms.cpu().data<double>().ToArray());
        return result;
    }

    /// <summary>
    /// The preconditioner of <paramref name="dp"/> raised to <paramref name="exponent"/>, as one tensor per parameter
    /// (null without a preconditioner or for the exponent 0).
    /// </summary>
    private static Tensor[]? PreconditionerTensors(TaggerModel model, DpSgdOptions dp, double exponent)
    {
        if (dp.Preconditioner is not { } flat || exponent == 0)
        {
            return null;
        }

        if (flat.Count != model.ParameterCount)
        {
            throw new ArgumentException($"the DP-SGD preconditioner has {flat.Count} factors but the model has {model.ParameterCount} parameters", nameof(dp));
        }

        float[] values = exponent == 1 ? flat as float[] ?? [.. flat] : [.. flat.Select(f => (float)Math.Pow(f, exponent))];
        var result = new Tensor[model.Parameters.Count];
        int offset = 0;
        for (int i = 0; i < result.Length; i++)
        {
            Tensor p = model.Parameters[i].Tensor;
            int n = checked((int)p.numel());
            result[i] = torch.tensor(values.AsSpan(offset, n).ToArray(), p.shape).to(p.device);
            offset += n;
        }

        return result;
    }

    /// <summary>Gradient of one example's summed token loss, copied out of the parameters' grads.</summary>
    internal static Tensor[] PerExampleGradient(TaggerModel model, EncodedSentence example, Random rng, out double loss, bool noDropout = false)
    {
        var tensors = BatchTensors.Create([example], model.Config, model.Device, withLabels: true, noDropout ? 0 : model.Config.WordDropout, rng);
        Tensor scores = model.Network.Forward(tensors);
        Tensor lossTensor = model.Network.SummedLoss(scores, tensors);
        foreach ((_, Parameter p) in model.Parameters)
        {
            p.grad?.zero_();
        }

        lossTensor.backward();
        loss = lossTensor.item<float>();
        return [.. model.Parameters.Select(p => p.Tensor.grad is Tensor g ? g.detach().clone() : torch.zeros_like(p.Tensor))];
    }

    /// <summary>Scales <paramref name="grads"/> to L2 norm at most <paramref name="maxNorm"/> (jointly) and adds them to <paramref name="sum"/>.</summary>
    /// <returns>The norm before clipping.</returns>
    internal static double ClipAndAccumulate(Tensor[] grads, Tensor[] sum, double maxNorm)
    {
        using var noGrad = torch.no_grad();
        double squared = 0;
        foreach (Tensor g in grads)
        {
            using Tensor g64 = g.to(ScalarType.Float64);
            using Tensor s = g64.mul(g64).sum();
            squared += s.item<double>();
        }

        double norm = Math.Sqrt(squared);
        using Scalar factor = Math.Min(1.0, maxNorm / (norm + 1e-12)).ToScalar();
        for (int i = 0; i < grads.Length; i++)
        {
            sum[i].add_(grads[i], factor);
        }

        return norm;
    }
}
