using SecureFed.Agent;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// <see cref="FakeTrainer"/> under the model-spec digest the <c>securefed aggregator</c> process announces (the default
/// clinical tagger's), so agents with deterministic updates can join a coordinator silo started by the CLI.
/// </summary>
internal sealed class SpecTrainer(ILocalTrainer inner, string modelSpecSha256) : ILocalTrainer
{
    public string ModelSpecSha256 => modelSpecSha256;

    public int ParameterCount => inner.ParameterCount;

    public long ExampleCount => inner.ExampleCount;

    public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken) => inner.Train(globalModel, plan, cancellationToken);
}
