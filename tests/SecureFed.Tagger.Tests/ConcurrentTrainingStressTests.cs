namespace SecureFed.Tagger.Tests;

/// <summary>
/// Several trainers in one process (as the demo runs its three agents) with the garbage collector forced to run and
/// finalize all the time. Before the fix, a TorchSharp <c>Scalar</c> created by an implicit conversion (e.g.
/// <c>t.clamp_min(1.0)</c>, <c>t.square()</c>, Adam's <c>mul_(beta1)</c>) became unreachable as soon as its native
/// handle had been read; a collection triggered by another thread then ran its finalizer, which freed the native scalar
/// while libtorch was still reading it: "INTERNAL ASSERT FAILED at Scalar.h" or a segmentation fault, which kills the
/// whole process (so a failure here is a crashed test host, not a failed assertion).
/// Like every class of this assembly it runs alone (AssemblyInfo.cs).
/// </summary>
public sealed class ConcurrentTrainingStressTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    [Fact]
    public async Task Train_FourTrainersInParallelWithForcedCollections_AllFinishWithFiniteWeights()
    {
        using var stop = new CancellationTokenSource();
        int collections = 0;

        // A thread that collects and runs finalizers in a tight loop, so a Scalar that is unreachable while native code
        // uses it is finalized within microseconds instead of "some time later".
        var collector = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }, TaskCreationOptions.LongRunning);

        var trainers = Enumerable.Range(0, 4).Select(i => Task.Factory.StartNew(() => TrainOne(i), TaskCreationOptions.LongRunning)).ToArray();
        try
        {
            float[][] weights = await Task.WhenAll(trainers).WaitAsync(TimeSpan.FromMinutes(5));
            foreach (float[] w in weights)
            {
                Assert.All(w, x => Assert.True(float.IsFinite(x)));
            }
        }
        finally
        {
            await stop.CancelAsync();
            await collector.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.True(collections > 100, $"only {collections} forced collections ran");
    }

    private static float[] TrainOne(int index)
    {
        // Two DP-SGD trainers (per-example clipping, noise) and two ordinary ones, with Adam and SGD.
        bool dp = index % 2 == 0;
        var train = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[index % SyntheticClinicalCorpus.Profiles.Count], 120, seed: index + 1);
        var dev = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 20, seed: 50 + index);
        TaggerConfig config = index < 2 ? TaggerConfig.Tiny : TaggerConfig.Tiny with { Crf = !TaggerConfig.Tiny.Crf };
        using var model = TaggerModel.Create(config, Labels, seed: index + 1, device: "cpu");
        var options = new TrainOptions
        {
            Epochs = 3,
            BatchSize = 8,
            LearningRate = dp ? 0.5 : 0.01,
            Optimizer = index < 2 ? TaggerOptimizer.Adam : TaggerOptimizer.Sgd,
            WeightAverageDecay = index == 1 ? 0.9 : 0,
            Seed = index + 1,
            Threads = 1,
            Patience = 0,
            // Trainer 0 clips with the batched pass, trainer 2 with one backward pass per example.
            DpSgd = dp ? new DpSgdOptions(NoiseMultiplier: 1.0, MaxGradNorm: 1.0, SampleRate: 0.1) { PerExampleLoop = index == 2 } : null,
        };
        new TaggerTrainer().Train(model, train, dev, options);
        _ = TaggerEvaluator.Evaluate(model, dev);
        return model.Flatten();
    }
}
