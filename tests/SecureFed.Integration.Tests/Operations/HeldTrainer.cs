using SecureFed.Agent;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// A trainer under a given model specification that trains rounds before <paramref name="holdFrom"/> as
/// <paramref name="inner"/> does and holds the agent at the start of local training from that round on (until
/// cancelled): a test can then read the agent while it is still running, with nothing changing under it.
/// </summary>
internal sealed class HeldTrainer(ILocalTrainer inner, string specSha256, long holdFrom) : ILocalTrainer
{
    private readonly TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the agent has reached local training of round <c>holdFrom</c>.</summary>
    public Task Held => _held.Task;

    public string ModelSpecSha256 => specSha256;

    public int ParameterCount => inner.ParameterCount;

    public long ExampleCount => inner.ExampleCount;

    public long ExpectedSteps(LocalTrainingPlan plan) => inner.ExpectedSteps(plan);

    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
    {
        if (plan.Round >= holdFrom)
        {
            _held.TrySetResult();
            cancellationToken.WaitHandle.WaitOne();
            cancellationToken.ThrowIfCancellationRequested();
        }

        return inner.Train(globalModel, plan, cancellationToken);
    }
}
