using System.Security.Cryptography;
using SecureFed.Crypto;
using SecureFed.Privacy;
using SecureFed.Protocol;

namespace SecureFed.Experiments;

/// <summary>
/// Federated averaging through the real secure-aggregation code, in one process: the aggregator's codec planning,
/// each site's privatization (clip, weight, stochastic quantization, optional distributed discrete Gaussian share),
/// real <see cref="ClientRound"/>s and a <see cref="ServerRound"/> with pairwise and self masks and Shamir shares
/// (<see cref="SecAggSimulation"/>), and the aggregator's update of the model from the unmasked sum. Only the network
/// is missing; a test checks that a round gives the same model bit for bit as the gRPC services.
/// </summary>
internal sealed class InProcessSecureAggregation : IDisposable
{
    private readonly string _federation;
    private readonly IReadOnlyList<string> _sites;
    private readonly Ed25519PrivateKey[] _identities;
    private readonly double _l2Clip;
    private readonly double _siteNoiseMultiplier;
    private readonly int _weightCap;
    private readonly double _serverLearningRate;
    private readonly int _configuredThreshold;
    private readonly EvaluationLayout? _evaluation;
    private readonly ServerOptimizer? _serverOptimizer;
    private readonly LookaheadFilter? _updateFilter;

    /// <summary>Creates the federation (fresh identity keys per site).</summary>
    /// <param name="federation">Federation name (bound into every round's context).</param>
    /// <param name="sites">Site names, in cohort order.</param>
    /// <param name="l2Clip">Site-level clip S of an update.</param>
    /// <param name="siteNoiseMultiplier">z of the distributed discrete Gaussian; 0 adds no site noise.</param>
    /// <param name="weightCap">Cap on a site's example count in the weight slot.</param>
    /// <param name="serverLearningRate">Server learning rate.</param>
    /// <param name="threshold">Configured threshold (0 = the planner's).</param>
    /// <param name="evaluation">Federated-evaluation slots (null = none), as the aggregator announces them.</param>
    /// <param name="serverOptimizer">The aggregator's update rule across rounds (null = plain averaging with <paramref name="serverLearningRate"/>).</param>
    /// <param name="updateFilter">Filters the averaged update before the update rule (null = none).</param>
    internal InProcessSecureAggregation(string federation, IReadOnlyList<string> sites, double l2Clip, double siteNoiseMultiplier, int weightCap, double serverLearningRate = 1.0, int threshold = 0, EvaluationLayout? evaluation = null, ServerOptimizer? serverOptimizer = null, LookaheadFilter? updateFilter = null)
    {
        ArgumentNullException.ThrowIfNull(sites);
        ArgumentOutOfRangeException.ThrowIfLessThan(sites.Count, 2);
        ArgumentOutOfRangeException.ThrowIfNegative(siteNoiseMultiplier);
        _federation = federation;
        _sites = sites;
        _identities = [.. sites.Select(_ => Ed25519PrivateKey.Generate())];
        _l2Clip = l2Clip;
        _siteNoiseMultiplier = siteNoiseMultiplier;
        _weightCap = weightCap;
        _serverLearningRate = serverLearningRate;
        _configuredThreshold = threshold;
        _evaluation = evaluation;
        _serverOptimizer = serverOptimizer;
        _updateFilter = updateFilter;
    }

    /// <summary>The privatized inputs of the last round (site order), for tests.</summary>
    public IReadOnlyList<uint[]> LastInputs { get; private set; } = [];

    /// <summary>The federated evaluation of the last round (the sum of the sites' counts), or null when none was published.</summary>
    public FederatedEvaluation? LastEvaluation { get; private set; }

    /// <summary>Why the last round published no federated evaluation (null when it did).</summary>
    public string? LastEvaluationNote { get; private set; }

    /// <summary>
    /// Runs one round: every site's delta (in <paramref name="deltas"/>, modified in place by clipping and weighting)
    /// is privatized and masked, the server unmasks the sum, and the next model is returned.
    /// </summary>
    /// <param name="round">Round number.</param>
    /// <param name="globalModel">The model the sites trained from.</param>
    /// <param name="deltas">θ_local − θ_global per site, in site order.</param>
    /// <param name="examples">Training examples per site.</param>
    /// <param name="randomness">Per-site randomness of rounding and noise (null = the system CSPRNG).</param>
    /// <param name="evaluations">Per site, its counts of <paramref name="globalModel"/> on its own dev data (federated evaluation; null = none).</param>
    /// <param name="serverUpdate">A public update the server adds to the averaged update before its rule (null = none; <see cref="ExperimentOptions.PublicMix"/>).</param>
    public float[] RunRound(long round, float[] globalModel, IReadOnlyList<float[]> deltas, IReadOnlyList<long> examples, IReadOnlyList<IRandomSource>? randomness = null, IReadOnlyList<EvaluationCounts?>? evaluations = null, IReadOnlyList<double>? serverUpdate = null)
    {
        ArgumentNullException.ThrowIfNull(globalModel);
        ArgumentNullException.ThrowIfNull(deltas);
        ArgumentNullException.ThrowIfNull(examples);
        int n = _sites.Count;
        if (deltas.Count != n || examples.Count != n || (randomness is not null && randomness.Count != n) || (evaluations is not null && evaluations.Count != n))
        {
            throw new ArgumentException($"Need one delta, example count (and random source) per site ({n}).");
        }

        int d = globalModel.Length;
        GraphPlan plan = GraphPlanner.Plan(n);
        int threshold = FederatedAveraging.Threshold(plan, _configuredThreshold);
        UpdateCodec codec;
        double sigmaSite = 0;
        if (_siteNoiseMultiplier > 0)
        {
            (codec, DistributedDpPlan dpPlan) = FederatedAveraging.PlanRound(d, _l2Clip, n, threshold, _siteNoiseMultiplier, _weightCap, _evaluation);
            sigmaSite = dpPlan.SigmaSite;
        }
        else
        {
            codec = UpdateCodec.Plan(d, _l2Clip, n, 0, _weightCap, evaluation: _evaluation);
        }

        var inputs = new uint[n][];
        for (int i = 0; i < n; i++)
        {
            inputs[i] = new uint[codec.VectorLength];
            FederatedAveraging.PrivatizeUpdate(deltas[i], examples[i], evaluations?[i], codec, _l2Clip, sigmaSite, randomness?[i] ?? SystemRandomSource.Instance, inputs[i]);
        }

        LastInputs = inputs;
        var participants = _sites.Select((name, i) => new Participant(i + 1, name, _identities[i].PublicKey)).ToArray();
        var parameters = new RoundParameters(_federation, round, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), participants,
            threshold, plan.Degree, codec.VectorLength, codec.BitWidth, _evaluation);
        SimulationResult result = SecAggSimulation.Run(parameters, _identities, inputs, []);
        if (result.Aggregation.Contributors.Count != n)
        {
            throw new InvalidOperationException($"Secure aggregation summed {result.Aggregation.Contributors.Count} of {n} inputs.");
        }

        float[] next;
        if (serverUpdate is null && _updateFilter is null)
        {
            next = _serverOptimizer is null
                ? FederatedAveraging.ApplyAggregate(globalModel, codec, result.Aggregation.Sum, _serverLearningRate, out _)
                : _serverOptimizer.Step(globalModel, FederatedAveraging.AverageUpdate(codec, result.Aggregation.Sum, out _));
        }
        else
        {
            if (serverUpdate is not null && serverUpdate.Count != d)
            {
                throw new ArgumentException($"The server update has {serverUpdate.Count} coordinates; the model has {d}.", nameof(serverUpdate));
            }

            double[] update = FederatedAveraging.AverageUpdate(codec, result.Aggregation.Sum, out _);
            for (int j = 0; serverUpdate is not null && j < d; j++)
            {
                update[j] += serverUpdate[j];
            }

            _updateFilter?.Filter(update);

            next = _serverOptimizer?.Step(globalModel, update) ?? [.. globalModel.Select((w, j) => (float)(w + (_serverLearningRate * update[j])))];
        }

        string? note = null;
        // Every in-process site is honest: each declares whether it put counts in (protocol index u is site u − 1).
        ScoringDeclaration[] declarations = [.. result.Aggregation.Contributors.Select(u => new ScoringDeclaration(_sites[u - 1], evaluations?[u - 1] is not null))];
        LastEvaluation = _evaluation is null ? null : FederatedAveraging.Evaluate(codec, result.Aggregation.Sum, declarations, threshold, out note);
        LastEvaluationNote = note;
        return next;
    }

    public void Dispose()
    {
        foreach (Ed25519PrivateKey key in _identities)
        {
            key.Dispose();
        }
    }
}
