using SecureFed.Agent;
using SecureFed.Protocol;
using SecureFed.Testing;

namespace SecureFed.Reliability.Tests;

/// <summary>The fake trainer, reporting <paramref name="counts"/> as its dev counts of the received model whenever the round asks for them.</summary>
internal sealed class CountingTrainer(FakeTrainer inner, EvaluationCounts counts) : ILocalTrainer
{
    public string ModelSpecSha256 => inner.ModelSpecSha256;

    public int ParameterCount => inner.ParameterCount;

    public long ExampleCount => inner.ExampleCount;

    public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
    {
        LocalUpdate update = inner.Train(globalModel, plan, cancellationToken);
        return plan.EvaluationCountCap > 0 ? update with { GlobalDevCounts = counts } : update;
    }
}
