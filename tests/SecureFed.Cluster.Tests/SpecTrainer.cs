using SecureFed.Agent;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// <see cref="FakeTrainer"/> under the model-spec digest the <c>securefed aggregator</c> process announces (the default
/// clinical tagger's), so agents with deterministic updates can join a coordinator silo started by the CLI.
/// With <paramref name="devCounts"/> it also reports those as its dev counts of the received model whenever the round
/// asks for them (federated evaluation).
/// </summary>
internal sealed class SpecTrainer(ILocalTrainer inner, string modelSpecSha256, EvaluationCounts? devCounts = null) : ILocalTrainer
{
    public string ModelSpecSha256 => modelSpecSha256;

    public int ParameterCount => inner.ParameterCount;

    public long ExampleCount => inner.ExampleCount;

    public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
    {
        LocalUpdate update = inner.Train(globalModel, plan, cancellationToken);
        return devCounts is not null && plan.EvaluationCountCap > 0 ? update with { GlobalDevCounts = devCounts } : update;
    }
}
