using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// Extension point for tools that need one federated arm rather than the whole experiment (the privacy audit): the same
/// data split, initial model and federated training (real secure aggregation, DP-SGD calibrated by the accountant) as
/// <see cref="Run"/>, on data the caller may change first (e.g. canaries inserted into one site), with the fused model
/// handed back before it is disposed.
/// </summary>
public sealed partial class ExperimentRunner
{
    /// <summary>The data of one seed, split across the sites exactly as <see cref="Run"/> splits it.</summary>
    public ExperimentData LoadSplit(int seed) => LoadData(seed);

    /// <summary>The initial model every arm of <paramref name="seed"/> starts from (random, or the public warm start).</summary>
    public float[] CreateInitialModel(ExperimentData data, int seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return InitialModel(data, seed, _ => { }, cancellationToken);
    }

    /// <summary>
    /// Trains one federated arm (no DP when <paramref name="epsilon"/> is null) on <paramref name="data"/> from
    /// <paramref name="initial"/>, and calls <paramref name="inspectFusedModel"/> with the final fused model.
    /// </summary>
    public ArmResult RunFederatedArm(ExperimentData data, float[] initial, int seed, double? epsilon, Action<TaggerModel> inspectFusedModel, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(initial);
        ArgumentNullException.ThrowIfNull(inspectFusedModel);
        return RunFederated(data, initial, seed, epsilon, 0, cancellationToken, (model, _) => inspectFusedModel(model));
    }
}
