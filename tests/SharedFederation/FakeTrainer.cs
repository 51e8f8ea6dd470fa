using SecureFed.Agent;

namespace SecureFed.Testing;

/// <summary>A deterministic stand-in for the TorchSharp trainer: fast, with known updates per site and round.</summary>
internal sealed class FakeTrainer(string site, int parameters, long examples) : ILocalTrainer
{
    public const string SpecSha = "0000000000000000000000000000000000000000000000000000000000000001";

    public string ModelSpecSha256 => SpecSha;

    public int ParameterCount => parameters;

    public long ExampleCount => examples;

    /// <summary>Tensor sizes to report for layer scales (null: this trainer cannot apply them, as the interface's default).</summary>
    public IReadOnlyList<long>? TensorSizes { get; init; }

    public List<(long Round, float[] Global)> Seen { get; } = [];

    /// <summary>Every plan this trainer was asked to train with.</summary>
    public List<LocalTrainingPlan> Plans { get; } = [];

    public long ExpectedSteps(LocalTrainingPlan plan)
    {
        long steps = (long)Math.Ceiling(plan.LocalEpochs / plan.SampleRate);
        return plan.MaxSteps > 0 ? Math.Min(steps, plan.MaxSteps) : steps;
    }

    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
    {
        lock (Seen)
        {
            Seen.Add((plan.Round, (float[])globalModel.Clone()));
            Plans.Add(plan);
        }

        int siteFactor = site.Aggregate(0, (h, c) => h + c) % 7 + 1;
        float[] delta = new float[parameters];
        for (int i = 0; i < delta.Length; i++)
        {
            delta[i] = 0.002f * siteFactor * MathF.Sin(i + plan.Round);
        }

        return new LocalUpdate(delta, examples, (int)ExpectedSteps(plan), plan.SampleRate, 0.5, double.NaN);
    }
}
