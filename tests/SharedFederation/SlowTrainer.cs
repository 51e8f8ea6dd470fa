using SecureFed.Agent;

namespace SecureFed.Testing;

/// <summary>A trainer (the stand-in, or a real one) taking <paramref name="delay"/> longer per round, as real training would (or as a slower site does).</summary>
internal sealed class SlowTrainer(ILocalTrainer inner, TimeSpan delay) : ILocalTrainer
{
    public string ModelSpecSha256 => inner.ModelSpecSha256;

    public int ParameterCount => inner.ParameterCount;

    public long ExampleCount => inner.ExampleCount;

    public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
    {
        cancellationToken.WaitHandle.WaitOne(delay);
        cancellationToken.ThrowIfCancellationRequested();
        return inner.Train(globalModel, plan, cancellationToken);
    }
}
