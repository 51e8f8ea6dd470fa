using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Agent;

/// <summary>
/// Local training of the TorchSharp tagger with DP-SGD (Poisson sampling, per-example clipping, Gaussian noise) from
/// the global model received in a round. The training data never leaves this object.
/// </summary>
public sealed class TaggerLocalTrainer : ILocalTrainer, IDisposable
{
    private readonly ModelSpec _spec;
    private readonly IReadOnlyList<Sentence> _train;
    private readonly IReadOnlyList<Sentence> _dev;
    private readonly TaggerModel _model;
    private readonly double _learningRate;
    private readonly int _seed;
    private readonly TaggerOptimizer _optimizer;

    /// <summary>Creates the trainer (Adam).</summary>
    public TaggerLocalTrainer(ModelSpec spec, IReadOnlyList<Sentence> train, IReadOnlyList<Sentence> dev, string device, double learningRate, int seed)
        : this(spec, train, dev, device, learningRate, seed, TaggerOptimizer.Adam)
    {
    }

    /// <summary>Creates the trainer with the given local optimiser (plain SGD with a large learning rate is the classic DP-SGD choice).</summary>
    public TaggerLocalTrainer(ModelSpec spec, IReadOnlyList<Sentence> train, IReadOnlyList<Sentence> dev, string device, double learningRate, int seed, TaggerOptimizer optimizer)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(learningRate);
        if (!Enum.IsDefined(optimizer))
        {
            throw new ArgumentOutOfRangeException(nameof(optimizer), optimizer, "Unknown optimiser.");
        }

        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(train);
        if (train.Count == 0)
        {
            throw new ArgumentException("The local training set is empty.", nameof(train));
        }

        _spec = spec;
        _train = train;
        _dev = dev ?? [];
        _learningRate = learningRate;
        _seed = seed;
        _optimizer = optimizer;
        _model = TaggerModel.Create(spec.Config, spec.Labels, seed, device);
        ParameterCount = checked((int)_model.ParameterCount);
    }

    /// <inheritdoc />
    /// <summary>DP-SGD keeps the embedding tables fixed (<see cref="DpSgdOptions.FreezeEmbeddings"/>).</summary>
    /// <value>The default value is false.</value>
    public bool FreezeEmbeddings { get; init; }

    /// <summary>DP-SGD keeps the model's dropout in each example's gradient (the opposite of <see cref="DpSgdOptions.NoDropout"/>).</summary>
    /// <value>The default value is false: no dropout under DP-SGD.</value>
    public bool DpDropout { get; init; }

    public string ModelSpecSha256 => _spec.Sha256;

    /// <inheritdoc />
    public ModelSpec ModelSpec => _spec;

    /// <inheritdoc />
    public int ParameterCount { get; }

    /// <inheritdoc />
    public IReadOnlyList<long>? TensorSizes => [.. _model.ParameterLayout.Select(p => p.Shape.Aggregate(1L, (a, b) => a * b))];

    /// <inheritdoc />
    public long ExampleCount => _train.Count;

    /// <summary>The initial parameters of a model built from the spec with <paramref name="seed"/> (for the aggregator's version 0).</summary>
    public static float[] InitialParameters(ModelSpec spec, int seed)
    {
        ArgumentNullException.ThrowIfNull(spec);
        using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, seed, "cpu");
        return model.Flatten();
    }

    /// <inheritdoc />
    public long ExpectedSteps(LocalTrainingPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return plan.Steps;
    }

    /// <inheritdoc />
    public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(globalModel);
        ArgumentNullException.ThrowIfNull(plan);
        _model.Unflatten(globalModel);
        // The received global model is scored before local training (federated evaluation reports model v(r−1)).
        cancellationToken.ThrowIfCancellationRequested();
        (EvaluationCounts? devCounts, double devF1) = DevEvaluation.Score(_model, _dev, plan.EvaluationCountCap, cancellationToken);
        cancellationToken.ThrowIfCancellationRequested(); // the trainer checks between DP-SGD steps
        var options = new TrainOptions
        {
            Epochs = plan.LocalEpochs,
            LearningRate = _learningRate,
            Seed = unchecked(_seed + (int)plan.Round),
            Optimizer = _optimizer,
            Patience = int.MaxValue,
            MaxSteps = plan.MaxSteps > 0 ? plan.MaxSteps : null,
            // With split noise (k shares) this site adds σ/√k; the sum of ≥ k sites' steps carries σ.
            // Layer scales (public, from public data): each example's gradient of tensor i is scaled by factor i before clipping.
            DpSgd = new DpSgdOptions(plan.SiteNoiseMultiplier, plan.MaxGradNorm, plan.SampleRate)
            {
                FreezeEmbeddings = FreezeEmbeddings,
                NoDropout = !DpDropout,
                Preconditioner = plan.LayerScales.Count == 0 ? null : TaggerPreconditioner.ExpandLayerScales(_model.ParameterLayout, plan.LayerScales),
            },
        };
        TrainResult result = new TaggerTrainer().Train(_model, _train, null, options, null, cancellationToken);
        float[] local = _model.Flatten();
        float[] delta = new float[local.Length];
        for (int i = 0; i < delta.Length; i++)
        {
            delta[i] = local[i] - globalModel[i];
        }

        return new LocalUpdate(delta, _train.Count, result.DpSteps, result.SampleRate, result.FinalLoss, devF1) { GlobalDevCounts = devCounts, TokensPerSecond = result.TokensPerSecond };
    }

    /// <summary>Dev F1 of <paramref name="parameters"/> (for reporting the fused model).</summary>
    public double Evaluate(float[] parameters, IReadOnlyList<Sentence> sentences)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _model.Unflatten(parameters);
        return TaggerEvaluator.Evaluate(_model, sentences).F1;
    }

    /// <inheritdoc />
    public void Dispose() => _model.Dispose();
}
