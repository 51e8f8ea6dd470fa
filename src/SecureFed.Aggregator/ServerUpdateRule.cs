using System.Globalization;
using SecureFed.Aggregator.Persistence;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// The aggregator's update rule (<see cref="AggregatorOptions.ServerOptimizer"/>) with its state: none for
/// <c>average</c> (FedAvg through <see cref="FederatedAveraging.ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, long, double, Span{float})"/>,
/// unchanged), the moments of a <see cref="ServerOptimizer"/> for <c>momentum</c> and <c>adam</c>. The moments belong to
/// the current model version: they are stored with it in one transaction
/// (<see cref="AggregatorStore.CompleteRoundWithModel(long, long, ReadOnlySpan{byte}, string, IReadOnlyList{string}, ServerOptimizerMoments?)"/>
/// with <see cref="Moments"/>) and restored from the store at start-up. A step that began (<see cref="BeginFusion"/>)
/// but whose model version was not stored (<see cref="Stored"/>) left the moments half-updated in memory; the next
/// step first reloads them from the store. The only whole-model memory it holds is the moments themselves.
/// </summary>
public sealed class ServerUpdateRule
{
    private readonly AggregatorStore _store;
    private readonly int _parameterCount;
    private ServerOptimizer? _optimizer;
    private bool _pending;

    private ServerUpdateRule(ServerOptimizerOptions options, AggregatorStore store, int parameterCount)
    {
        Options = options;
        _store = store;
        _parameterCount = parameterCount;
    }

    /// <summary>The rule's options (kind, η, β₁, β₂, τ, Φ).</summary>
    public ServerOptimizerOptions Options { get; }

    /// <summary>The rule's name as configured and audited: average, momentum or adam.</summary>
    public string Name => KindName(Options.Kind);

    /// <summary>Rounds the rule has applied since its moments started (0 for average).</summary>
    public long Steps => _optimizer?.Steps ?? 0;

    /// <summary>Where the state came from at start-up, for the log and the audit trail.</summary>
    public string History { get; private set; } = "";

    /// <summary>
    /// The state to store with the model version the last step produced: null for average (the store then deletes any
    /// saved state); the optimizer's own arrays otherwise, never copied.
    /// </summary>
    public ServerOptimizerMoments? Moments => _optimizer is null ? null : new(Name, _optimizer.Steps, _optimizer.FirstMoment, _optimizer.SecondMoment);

    /// <summary>The largest model a rule with moments serves: one moment, 8 bytes per parameter, is one value of the round store.</summary>
    public const int MaxParametersWithMoments = (int)(AggregatorStore.MaxValueBytes / sizeof(double));

    /// <summary>The configuration name of a rule.</summary>
    public static string KindName(ServerOptimizerKind kind) => kind.ToString().ToLowerInvariant();

    /// <summary>
    /// The rule of <paramref name="options"/> for a model of <paramref name="parameterCount"/> parameters at version
    /// <paramref name="modelVersion"/>, with the moments saved in <paramref name="store"/> for that version.
    /// </summary>
    /// <exception cref="InvalidDataException">The saved moments go with another model version or another parameter count (the message names both).</exception>
    /// <exception cref="InvalidOperationException">A rule with moments for a model whose moment would not fit in one value of the round store (<see cref="MaxParametersWithMoments"/>).</exception>
    public static ServerUpdateRule Open(ServerOptimizerOptions options, AggregatorStore store, long modelVersion, int parameterCount)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(store);
        if (options.Kind != ServerOptimizerKind.Average && parameterCount > MaxParametersWithMoments)
        {
            // Refused at start-up, not at the end of the first round, when the moments could not be stored.
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"SecureFed:ServerOptimizer {KindName(options.Kind)} keeps its moments (8 bytes per parameter each) with every model version in the round store, one SQLite value per moment of at most {AggregatorStore.MaxValueBytes:N0} bytes, so for at most {MaxParametersWithMoments:N0} parameters; this model has {parameterCount:N0}. Use ServerOptimizer average (FedAvg) for it, or a smaller model."));
        }

        var rule = new ServerUpdateRule(options, store, parameterCount);
        rule.History = rule.Restore(modelVersion);
        return rule;
    }

    /// <summary>
    /// Starts the fusion of a round's sum into the next model from <paramref name="baseModel"/> (version
    /// <paramref name="baseVersion"/>, the current one) under this rule. If an earlier step was never stored, the moments
    /// are first reloaded from the store.
    /// </summary>
    /// <exception cref="RoundAbortedException">The total weight is not positive.</exception>
    public SumFusion BeginFusion(float[] baseModel, long baseVersion, UpdateCodec codec, long totalWeight, bool digest)
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        if (baseModel.Length != _parameterCount)
        {
            throw new InvalidOperationException($"The server update rule was opened for {_parameterCount} parameters; the model has {baseModel.Length}.");
        }

        return new SumFusion(baseModel, codec, totalWeight, Options.LearningRate, digest, Prepare(baseVersion));
    }

    /// <summary>
    /// As <see cref="BeginFusion(float[], long, UpdateCodec, long, bool)"/>, run by run: the base model's coordinates come
    /// with each run (<see cref="SumFusion.Add(int, ReadOnlySpan{uint}, ReadOnlySpan{float}, Span{float})"/>), so the
    /// model need not be in memory (<see cref="StoredModelFusion"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The codec's parameter count is not the rule's.</exception>
    /// <exception cref="RoundAbortedException">The total weight is not positive.</exception>
    public SumFusion BeginFusion(long baseVersion, UpdateCodec codec, long totalWeight, bool digest)
    {
        ArgumentNullException.ThrowIfNull(codec);
        if (codec.ParameterCount != _parameterCount)
        {
            throw new InvalidOperationException($"The server update rule was opened for {_parameterCount} parameters; the round's model has {codec.ParameterCount}.");
        }

        return new SumFusion(codec, totalWeight, Options.LearningRate, digest, Prepare(baseVersion));
    }

    /// <summary>The optimizer for a step from <paramref name="baseVersion"/>, its moments reloaded if an earlier step was never stored.</summary>
    private ServerOptimizer? Prepare(long baseVersion)
    {
        if (_pending)
        {
            Restore(baseVersion); // a step began and its model version was never stored: its moments are not the store's
        }

        _pending = _optimizer is not null;
        return _optimizer;
    }

    /// <summary>The model version of the last step was stored with <see cref="Moments"/>: the moments in memory are the store's.</summary>
    public void Stored() => _pending = false;

    /// <summary>Sets the moments to those stored for <paramref name="modelVersion"/> (none: zero moments); returns how.</summary>
    private string Restore(long modelVersion)
    {
        if (Options.Kind == ServerOptimizerKind.Average)
        {
            _optimizer = null; // the moments are not read: average keeps none
            return _store.SavedServerOptimizerVersion() is not (long version, string kind)
                ? "no state (average)"
                : string.Create(CultureInfo.InvariantCulture, $"the {kind} moments saved with model version {version} are not used by average and are deleted with the next model version");
        }

        SavedServerOptimizer? saved = _store.LoadServerOptimizer();

        if (saved is not null && saved.ModelVersion != modelVersion)
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"The server optimizer's moments in '{_store.Path}' go with model version {saved.ModelVersion}, but the current model is version {modelVersion}: they are written in the same transaction as their model version, so the store was changed by other means; restore the data directory from a backup."));
        }

        if (saved is not null && (saved.First.Length != _parameterCount || (saved.Second is not null && saved.Second.Length != _parameterCount)))
        {
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"The server optimizer's moments saved with model version {saved.ModelVersion} in '{_store.Path}' have {saved.First.Length} values per moment, but the model has {_parameterCount} parameters."));
        }

        _optimizer = new ServerOptimizer(Options);
        if (saved is null)
        {
            return string.Create(CultureInfo.InvariantCulture, $"no saved moments: {Name} starts with zero moments at model version {modelVersion}");
        }

        if (!string.Equals(saved.Kind, Name, StringComparison.Ordinal) || (Options.Kind == ServerOptimizerKind.Adam && saved.Second is null))
        {
            return string.Create(CultureInfo.InvariantCulture, $"the {saved.Kind} moments saved with model version {modelVersion} do not fit {Name}: {Name} starts with zero moments");
        }

        _optimizer.AdoptState(new ServerOptimizerState(saved.Steps, saved.First, saved.Second));
        return string.Create(CultureInfo.InvariantCulture, $"{Name} moments restored from model version {modelVersion} after {saved.Steps} steps");
    }
}
