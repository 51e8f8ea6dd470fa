using System.Diagnostics;
using System.Globalization;
using SecureFed.Federation;
using SecureFed.Federation.Internal;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// <c>securefed experiment</c>: what federation buys a hospital. For each seed it splits the data, then trains the
/// arms one after the other (one model at a time in the process): each site alone, pooled centralized training,
/// federated averaging through the real secure-aggregation code, and the latter with patient-level DP-SGD at each ε
/// (optionally with site-level distributed DP too). Every arm has the same model config, seed, initial model and
/// budget of Rounds × LocalEpochs epochs over its data, and is scored with conlleval on the held-out test set.
/// </summary>
public sealed partial class ExperimentRunner
{
    private readonly ExperimentOptions _options;
    private readonly Action<string> _progress;
    private readonly PublicDistillation? _distillation;
    private ExperimentInputs? _inputs;
    private float[]? _preconditioner;
    private Sentence[]? _publicTrain;

    /// <summary>Creates the runner.</summary>
    /// <param name="options">Validated settings.</param>
    /// <param name="progress">Receives one line per step of long work.</param>
    public ExperimentRunner(ExperimentOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _progress = progress ?? (_ => { });
        _distillation = options.DistillTextDirectories.Count > 0 ? new PublicDistillation(options, _progress, () => Inputs.Text(options.DistillTextDirectories)) : null;
    }

    /// <summary>
    /// Runs every arm for every seed and writes results.json and f1-per-round.png; both are rewritten after every arm,
    /// so an interrupted run keeps what it measured, and results.json says <c>"complete": true</c> only at the end.
    /// Every corpus file the options name is read and checked first (stage 0), before anything trains.
    /// </summary>
    public ExperimentReport Run(CancellationToken cancellationToken = default)
    {
        string startLoad = LoadAverage();
        DateTimeOffset started = DateTimeOffset.UtcNow;
        ReadInputs();
        var results = new List<ArmResult>();
        ExperimentData? first = null;
        ExperimentReport? report = null;
        void Record(ArmResult result)
        {
            results.Add(result);
            report = WriteOutputs(Report(first!, results, startLoad, started));
        }

        for (int i = 0; i < _options.Seeds; i++)
        {
            int seed = _options.FirstSeed + i; // at most int.MaxValue (Validate): FirstSeed + Seeds itself may not fit
            ExperimentData data = LoadData(seed);
            first ??= data;
            _progress($"[seed {seed}] {data.Description}");
            RunSeed(data, seed, Record, cancellationToken);
        }

        return report is null ? throw new InvalidOperationException("No arm ran.") : WriteOutputs(report with { Complete = true });
    }

    /// <summary>
    /// Stage 0: every corpus file the options name (<see cref="ExperimentInputs"/>), read and parsed once, so that a
    /// missing or malformed one fails the run before any arm trains; the later stages take their sentences from it.
    /// </summary>
    private void ReadInputs()
    {
        ExperimentInputs inputs = Inputs;
        _progress($"inputs: {inputs.FileCount} corpus files read and checked");
    }

    /// <summary>The corpus files of stage 0, read on first use (<see cref="Run"/> and the audit's <see cref="LoadSplit"/> come here first).</summary>
    private ExperimentInputs Inputs => _inputs ??= ExperimentInputs.Read(_options);

    /// <summary>Stages 2 and 3 of one seed: the initial model, then the arms in order (or stage 3f alone with --distill-teacher).</summary>
    private void RunSeed(ExperimentData data, int seed, Action<ArmResult> record, CancellationToken cancellationToken)
    {
        if (_options.DistillTeacherDirectory is not null)
        {
            DistillSavedTeacher(data, seed, record, cancellationToken);
            return;
        }

        float[] initial = InitialModel(data, seed, record, cancellationToken);
        if (_options.PooledOnly)
        {
            record(RunPooled(data, initial, seed, cancellationToken));
            return;
        }

        if (_options.RunNonPrivateArms)
        {
            if (_options.RunCentralizedArms)
            {
                foreach (ArmResult alone in RunSitesAlone(data, initial, seed, cancellationToken))
                {
                    record(alone);
                }

                record(RunPooled(data, initial, seed, cancellationToken));
            }

            RunFederatedAndDistill(data, initial, seed, null, 0, record, cancellationToken);
        }

        foreach (double epsilon in _options.Epsilons)
        {
            RunFederatedAndDistill(data, initial, seed, epsilon, 0, record, cancellationToken);
        }

        if (_options.SiteNoiseMultiplier > 0 && _options.Epsilons.Count > 0)
        {
            RunFederatedAndDistill(data, initial, seed, _options.Epsilons.Max(), _options.SiteNoiseMultiplier, record, cancellationToken);
        }
    }

    /// <summary>
    /// Stage 3c–3e plus 3f: one federated arm, its final model written to the output folder (models/), and with
    /// --distill-text its self-trained student (<see cref="PublicDistillation"/>) recorded after it and written too.
    /// </summary>
    private void RunFederatedAndDistill(ExperimentData data, float[] initial, int seed, double? epsilon, double siteNoise, Action<ArmResult> record, CancellationToken cancellationToken)
    {
        ArmResult? student = null;
        ArmResult teacher = RunFederated(data, initial, seed, epsilon, siteNoise, cancellationToken, (model, arm) =>
        {
            string name = ModelName(seed, epsilon, siteNoise);
            model.Save(Path.Combine(_options.OutputDirectory, "models", name));
            if (_distillation is null)
            {
                return;
            }

            // The student is trained in place; the teacher's weights are put back for the arm's own scoring.
            float[] weights = model.Flatten();
            double dev = TaggerEvaluator.Evaluate(model, data.Dev).F1;
            double test = TaggerEvaluator.Evaluate(model, data.Test).F1;
            student = _distillation.Run(model, data, seed, arm, epsilon, dev, test, cancellationToken);
            model.Save(Path.Combine(_options.OutputDirectory, "models", name + "-student"));
            model.Unflatten(weights);
        });
        record(teacher);
        if (student is not null)
        {
            record(student);
        }
    }

    /// <summary>
    /// Stage 3f alone (--distill-teacher): a model an earlier run wrote, scored as the teacher and self-trained on the
    /// public text, its student written to models/ under the teacher's folder name.
    /// </summary>
    private void DistillSavedTeacher(ExperimentData data, int seed, Action<ArmResult> record, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        string directory = _options.DistillTeacherDirectory!;
        using TaggerModel model = TaggerModel.Load(directory, "cpu");
        if (!model.Labels.EntityTypes.SequenceEqual(data.EntityTypes, StringComparer.Ordinal))
        {
            throw new InvalidDataException($"{directory}: a model of the types {string.Join(", ", model.Labels.EntityTypes)}, the data has {string.Join(", ", data.EntityTypes)}.");
        }

        string arm = $"saved model {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)))}";
        double dev = TaggerEvaluator.Evaluate(model, data.Dev).F1;
        ArmResult teacher = Finish(arm, "saved_teacher", seed, null, model, data, [dev], watch);
        ArmResult student = _distillation!.Run(model, data, seed, arm, null, dev, teacher.TestF1, cancellationToken);
        model.Save(Path.Combine(_options.OutputDirectory, "models", Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory))) + "-student"));
        record(teacher);
        record(student);
    }

    /// <summary>The folder name under models/ of a federated arm's final model.</summary>
    private static string ModelName(int seed, double? epsilon, double siteNoise) =>
        string.Create(CultureInfo.InvariantCulture, $"seed{seed}-") + (epsilon is double e ? "dp-eps" + EpsilonText.Format(e) : "federated")
        + (siteNoise > 0 ? "-site-dp" : "");

    private ExperimentReport Report(ExperimentData first, IReadOnlyList<ArmResult> results, string startLoad, DateTimeOffset started)
    {
        var machine = new Dictionary<string, string>
        {
            ["processors"] = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture),
            ["load_average_start"] = startLoad,
            ["load_average_now"] = LoadAverage(),
            ["started_utc"] = started.ToString("u", CultureInfo.InvariantCulture),
            ["written_utc"] = DateTimeOffset.UtcNow.ToString("u", CultureInfo.InvariantCulture),
        };
        return new ExperimentReport(Configuration(first), first.Description, first.Sites, [.. results], Summarize(results), machine);
    }

    /// <summary>Stage 1: the data of one seed (the iid and skewed splits are re-drawn per seed from the files of stage 0).</summary>
    private ExperimentData LoadData(int seed) => DataSplitter.Load(_options, seed, Inputs.Part);

    /// <summary>Stage 2: the initial model every arm starts from (random, or trained on a public corpus).</summary>
    private float[] InitialModel(ExperimentData data, int seed, Action<ArmResult> record, CancellationToken cancellationToken)
    {
        using TaggerModel model = TaggerModel.Create(_options.Config, LabelSet.Create(data.EntityTypes), seed, "cpu");
        if (_options.WarmStartDirectory is null)
        {
            return model.Flatten();
        }

        var watch = Stopwatch.StartNew();
        var types = data.EntityTypes.ToHashSet(StringComparer.Ordinal);
        // Public data: the warm-start corpus's training sentences, with the types the sites do not annotate turned to O.
        IReadOnlyList<string> splits = ExperimentInputs.WarmStartSplits(_options);
        Sentence[] publicTrain = [.. splits.SelectMany(split => Inputs.Part(_options.WarmStartDirectory, split, 0, seed))
            .Select(s => s with { Tags = [.. s.Tags.Select(t => t.Length > 2 && types.Contains(t[2..]) ? t : "O")] })];
        _progress($"[seed {seed}] public warm start: {publicTrain.Length} sentences of {_options.WarmStartDirectory} ({string.Join(" + ", splits)}; types kept: {string.Join(", ", types)}), {_options.WarmStartEpochs} epochs");
        string? cached = WarmStartCachePath(model, data, seed);
        if (cached is not null && File.Exists(cached))
        {
            model.Unflatten(ReadFloats(cached, model.Flatten().Length));
            _progress($"[seed {seed}] public warm start loaded from {cached}");
        }
        else
        {
            TrainWarmStart(model, data, publicTrain, cached, seed, cancellationToken);
        }

        _publicTrain = publicTrain;
        if (_options.DpPrecondition)
        {
            _preconditioner = Preconditioner(model, publicTrain, cached, seed);
        }

        EvaluationResult test = TaggerEvaluator.Evaluate(model, data.Test);
        double dev = TaggerEvaluator.Evaluate(model, data.Dev).F1;
        record(new ArmResult("public warm start only", "public_warm_start", seed, null, test.F1, PerType(test, data.EntityTypes), [dev], watch.Elapsed.TotalSeconds));
        _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] public warm start only: test F1 {test.F1:F3}, dev F1 {dev:F3} ({watch.Elapsed.TotalSeconds:F0} s)"));
        return model.Flatten();
    }

    /// <summary>The public warm start: the encoder pretrained on --pretrain-text when given, then --warm-start-epochs of supervised training on the public corpus.</summary>
    private void TrainWarmStart(TaggerModel model, ExperimentData data, Sentence[] publicTrain, string? cached, int seed, CancellationToken cancellationToken)
    {
        Pretrain(model, data, seed, cancellationToken);
        if (_options.WarmStartEpochs > 0)
        {
            var options = TrainingOptions(null, _options.WarmStartEpochs, unchecked((seed * 100_003) + 99_991), 1);
            var progress = new WarmStartProgress(publicTrain.Length, line => _progress($"[seed {seed}] public warm start: {line}"));
            new TaggerTrainer().Train(model, publicTrain, null, options, progress, cancellationToken);
            if (cached is not null)
            {
                WriteFloats(cached, model.Flatten());
            }
        }
    }

    /// <summary>
    /// Stage 2a: pretrains the encoder on the unlabelled public text of --pretrain-text with the language-model objective
    /// (<see cref="TaggerLanguageModel"/>), or loads it from the cache next to the warm start; nothing without --pretrain-text.
    /// </summary>
    private void Pretrain(TaggerModel model, ExperimentData data, int seed, CancellationToken cancellationToken)
    {
        if (_options.PretrainTextDirectories.Count == 0)
        {
            return;
        }

        string? cached = PretrainCachePath(model, data, seed);
        if (cached is not null && File.Exists(cached))
        {
            model.Unflatten(ReadFloats(cached, (int)model.ParameterCount));
            _progress($"[seed {seed}] pretrained encoder loaded from {cached}");
            return;
        }

        IReadOnlyList<IReadOnlyList<string>> text = Inputs.Text(_options.PretrainTextDirectories);
        long tokens = text.Sum(t => (long)t.Count);
        _progress(string.Create(CultureInfo.InvariantCulture,
            $"[seed {seed}] language-model pretraining: {text.Count} sentences, {tokens} tokens of {string.Join(", ", _options.PretrainTextDirectories)} (train + dev + test, labels ignored), {_options.PretrainEpochs} epochs"));
        var options = new LanguageModelOptions
        {
            Epochs = _options.PretrainEpochs,
            BatchSize = _options.BatchSize,
            LearningRate = _options.LearningRate,
            Seed = unchecked((seed * 100_003) + 77_773),
            Threads = _options.Threads,
        };
        var progress = new SyncProgress<TrainProgress>(p => _progress(string.Create(CultureInfo.InvariantCulture,
            $"[seed {seed}] language-model pretraining: epoch {p.Epoch}/{p.Epochs} {p.EpochFraction:P0}, step {p.Step}, loss {p.Loss:F3} (perplexity {Math.Exp(p.Loss):F1}), {p.TokensPerSecond:F0} tokens/s")));
        LanguageModelResult result = new TaggerLanguageModel().Pretrain(model, text, options, progress, cancellationToken);
        _progress(string.Create(CultureInfo.InvariantCulture,
            $"[seed {seed}] language-model pretraining done: loss per epoch {string.Join(" ", result.EpochLosses.Select(l => l.ToString("F3", CultureInfo.InvariantCulture)))}, perplexity {result.Perplexity:F1} over {model.Config.WordBuckets} word buckets, {result.Steps} steps, {result.TokensPerSecond:F0} tokens/s, {result.Elapsed.TotalSeconds:F0} s"));
        if (cached is not null)
        {
            WriteFloats(cached, model.Flatten());
        }
    }

    /// <summary>The pretrained-encoder cache file for this seed: a digest of everything the pretraining depends on.</summary>
    private string? PretrainCachePath(TaggerModel model, ExperimentData data, int seed)
    {
        if (_options.WarmStartCache is null)
        {
            return null;
        }

        Directory.CreateDirectory(_options.WarmStartCache);
        return Path.Combine(_options.WarmStartCache, $"pretrained-{PretrainDigest(model, data, seed)}.f32");
    }

    private string PretrainDigest(TaggerModel model, ExperimentData data, int seed)
    {
        string key = string.Join('\n', "language model v1", string.Join(',', _options.PretrainTextDirectories.Select(ExperimentOptions.CanonicalDirectory)),
            _options.PretrainEpochs.ToString(CultureInfo.InvariantCulture), _options.Config.ToJson(), string.Join(',', data.EntityTypes),
            seed.ToString(CultureInfo.InvariantCulture), _options.LearningRate.ToString("R", CultureInfo.InvariantCulture),
            _options.BatchSize.ToString(CultureInfo.InvariantCulture), model.ParameterCount.ToString(CultureInfo.InvariantCulture));
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..16];
    }

    /// <summary>DP-SGD's public preconditioner at the public model, from the cache next to the warm start when there is one.</summary>
    private float[] Preconditioner(TaggerModel model, Sentence[] publicTrain, string? warmStartCache, int seed)
    {
        string? path = warmStartCache is null ? null : string.Create(CultureInfo.InvariantCulture,
            $"{Path.ChangeExtension(warmStartCache, null)}-preconditioner-b{_options.BatchSize}-f{_options.DpPreconditionFloor:R}{(_options.DpPreconditionPerTensor ? "-tensor" : "")}.f32");
        if (path is not null && File.Exists(path))
        {
            _progress($"[seed {seed}] DP-SGD preconditioner loaded from {path}");
            return ReadFloats(path, model.Flatten().Length);
        }

        float[] factors = TaggerPreconditioner.FromPublicData(model, publicTrain, _options.BatchSize, _options.DpPreconditionFloor, _options.DpPreconditionPerTensor);
        if (path is not null)
        {
            WriteFloats(path, factors);
        }

        _progress($"[seed {seed}] DP-SGD preconditioner estimated on the public corpus ({publicTrain.Length} sentences; AdaDPS)");
        return factors;
    }

    /// <summary>The warm-start cache file for this seed: a digest of everything the public model depends on.</summary>
    private string? WarmStartCachePath(TaggerModel model, ExperimentData data, int seed)
    {
        if (_options.WarmStartCache is null || _options.WarmStartDirectory is null)
        {
            return null;
        }

        string key = string.Join('\n', Path.GetFullPath(_options.WarmStartDirectory), _options.WarmStartEpochs.ToString(CultureInfo.InvariantCulture),
            _options.Config.ToJson(), string.Join(',', data.EntityTypes), seed.ToString(CultureInfo.InvariantCulture),
            _options.LearningRate.ToString("R", CultureInfo.InvariantCulture), _options.BatchSize.ToString(CultureInfo.InvariantCulture),
            _options.Optimizer.ToString(), model.ParameterCount.ToString(CultureInfo.InvariantCulture)) + (_options.WarmStartAllSplits ? "\nall splits" : "")
            + (_options.PretrainTextDirectories.Count > 0 ? "\npretrained " + PretrainDigest(model, data, seed) : "");
        string digest = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(key)))[..16];
        Directory.CreateDirectory(_options.WarmStartCache);
        return Path.Combine(_options.WarmStartCache, $"warm-start-{digest}.f32");
    }

    internal static float[] ReadFloats(string path, int expected)
    {
        // A file of the --warm-start-cache folder. File.Exists is true for a named pipe too: reading one waited for a
        // writer forever (the run hung after the corpora were read, with no message); a link to /dev/zero had no end.
        if (RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new InvalidDataException($"--warm-start-cache: {path}{RegularFile.LinkText(path)} is {kind}, not a regular file; the cache holds only the files this command writes: remove it to train the warm start again. It was not opened.");
        }

        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length != expected * sizeof(float))
        {
            throw new InvalidDataException($"{path}: {bytes.Length} bytes, expected {expected * sizeof(float)} ({expected} float32 parameters); delete it to train the warm start again.");
        }

        float[] values = new float[expected];
        Buffer.BlockCopy(bytes, 0, values, 0, bytes.Length);
        return values;
    }

    /// <summary>
    /// Writes a file of the --warm-start-cache folder atomically (<see cref="AtomicFile"/>: a temporary file of a unique
    /// name, created new, then renamed over <paramref name="path"/>). The fixed <c>&lt;file&gt;.tmp</c> it used was opened
    /// whatever it was: a named pipe there blocked the run forever after the warm start had trained, with no message.
    /// </summary>
    internal static void WriteFloats(string path, float[] values)
    {
        byte[] bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        AtomicFile.WriteAllBytes(path, bytes);
    }

    /// <summary>Stage 3a: each site trains on its own data only.</summary>
    private IEnumerable<ArmResult> RunSitesAlone(ExperimentData data, float[] initial, int seed, CancellationToken cancellationToken)
    {
        for (int i = 0; i < data.Sites.Count; i++)
        {
            SiteData site = data.Sites[i];
            // A hospital alone has nobody to mark the types it does not annotate: it trains them as O (its own tagger),
            // never on partial labels, which without another source of those types would never learn to reject them.
            IReadOnlyList<Sentence> train = [.. site.Train.Select(s => s.AnnotatedTypes is null ? s : s with { AnnotatedTypes = null })];
            yield return RunCentralized($"{site.Name} alone", "site_alone", train, data, initial, seed, i + 1, cancellationToken);
        }
    }

    /// <summary>Stage 3b: pooled centralized training on every site's data (the upper bound no hospital may run).</summary>
    private ArmResult RunPooled(ExperimentData data, float[] initial, int seed, CancellationToken cancellationToken) =>
        RunCentralized("pooled (centralized)", "pooled", data.Pooled, data, initial, seed, 0, cancellationToken);

    private ArmResult RunCentralized(string arm, string kind, IReadOnlyList<Sentence> train, ExperimentData data, float[] initial, int seed, int siteIndex, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        using TaggerModel model = TaggerModel.Create(_options.Config, LabelSet.Create(data.EntityTypes), seed, "cpu");
        model.Unflatten(initial);
        var curve = new List<double>();
        for (int round = 1; round <= _options.Rounds; round++)
        {
            new TaggerTrainer().Train(model, train, null, TrainingOptions(null, _options.LocalEpochs, LocalSeed(seed, round, siteIndex), round), null, cancellationToken);
            curve.Add(TaggerEvaluator.Evaluate(model, data.Dev).F1);
            RoundProgress(seed, arm, round, curve[^1], watch);
        }

        return Finish(arm, kind, seed, null, model, data, curve, watch);
    }

    /// <summary>
    /// The server optimizer of an arm. With <see cref="ExperimentOptions.ServerNoiseCorrection"/> on a DP arm, Φ is the
    /// variance per coordinate of the patient-level noise in the averaged update: site s steps by
    /// −lr (Σ clipped + σₛ C z) / (q Nₛ) and the update weighs it by Nₛ / N, so Φ = (lr C / (q N))² Σₛ σₛ²
    /// (σ² with the noise split across the sites, n σ² with each adding all of it). The site-level noise of the
    /// "+ site DP" arm is not in Φ (that arm's correction is too small by its variance).
    /// </summary>
    private ServerOptimizerOptions ServerOptimizerFor(ExperimentData data, DpSgdOptions? dp)
    {
        ServerOptimizerOptions options = _options.ServerOptimizer;
        if (!_options.ServerNoiseCorrection || dp is null || dp.NoiseMultiplier <= 0)
        {
            return options;
        }

        double phi = NoiseVariance(data, dp);
        _progress(string.Create(CultureInfo.InvariantCulture, $"server Adam corrected for the DP noise: Φ = {phi:G4} per coordinate, floor {options.NoiseFloor:G3} Φ"));
        return options with { NoiseVariance = phi };
    }

    /// <summary>Φ of <see cref="ServerOptimizerFor"/> for <paramref name="dp"/>'s σ and C (with adaptive clipping: this round's C).</summary>
    private double NoiseVariance(ExperimentData data, DpSgdOptions dp)
    {
        double total = data.Sites.Sum(s => (double)s.Train.Count);
        double sigmaSquares = data.Sites.Count * dp.NoiseMultiplier * dp.NoiseMultiplier;
        double scale = _options.DpLearningRate * dp.MaxGradNorm / (dp.SampleRate * total);
        return scale * scale * sigmaSquares;
    }

    /// <summary>
    /// Stage 3c/3d/3e: federated averaging through the real secure aggregation; with <paramref name="epsilon"/>, each
    /// site trains with DP-SGD calibrated by the accountant so that it ends at ε (δ from the options) after all rounds;
    /// with <paramref name="siteNoise"/> &gt; 0 each site also adds its distributed discrete Gaussian share.
    /// </summary>
    private ArmResult RunFederated(ExperimentData data, float[] initial, int seed, double? epsilon, double siteNoise, CancellationToken cancellationToken, Action<TaggerModel, string>? fusedModel = null)
    {
        var watch = Stopwatch.StartNew();
        DpSgdOptions? dp = null;
        long plannedSteps = 0;
        double sigma = 0; // the calibrated σ: each site's with local noise, the sum's with distributed noise
        double gradientSigma = 0; // σ_Δ of the clipped sum: σ, or a little more with adaptive clipping's count
        double countNoise = 0; // adaptive clipping's σ_b: each site's count's with local noise, the sum's with distributed noise
        AdaptiveClipping? clipping = null;
        string arm = "federated (secure aggregation)";
        if (epsilon is double eps)
        {
            plannedSteps = (long)_options.Rounds * _options.EffectiveDpStepsPerRound;
            sigma = _options.PldAccounting
                ? PldAccountant.NoiseMultiplierFor(eps, _options.Delta, _options.SampleRate, plannedSteps)
                : NoiseCalibration.NoiseMultiplierFor(eps, _options.Delta, _options.SampleRate, plannedSteps);
            gradientSigma = sigma;
            if (_options.AdaptiveClipQuantile > 0)
            {
                // The same step releases the clipped sum and the centred unclipped count: σ_Δ for the sum so the pair is σ.
                countNoise = _options.ClipCountNoise ?? _options.SampleRate * (_options.DpDistributedNoise ? data.Sites.Sum(s => s.Train.Count) : data.Sites.Min(s => s.Train.Count)) / 20;
                if (!(countNoise > sigma / 2))
                {
                    throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"--clip-count-noise σ_b = {countNoise:G4} must exceed σ/2 = {sigma / 2:G4} (σ = {sigma:G4} for --epsilon {eps} over {plannedSteps} steps at --sample-rate {_options.SampleRate}): the count alone would spend the budget. Raise --clip-count-noise (default: the expected batch size / 20) or leave out --adaptive-clip."));
                }

                gradientSigma = AdaptiveClipping.GradientNoiseMultiplier(sigma, countNoise);
                clipping = new AdaptiveClipping(_options.GradClip, _options.AdaptiveClipQuantile, _options.ClipLearningRate, countNoise);
            }

            // Distributed: each site adds its 1/k share of the noise variance (k = n by default); the revealed sum of the
            // n sites carries σ √(n/k).
            double siteSigma = _options.DpDistributedNoise ? gradientSigma / Math.Sqrt(NoiseShares(data.Sites.Count)) : gradientSigma;
            dp = new DpSgdOptions(siteSigma, _options.GradClip, _options.SampleRate)
            {
                FreezeEmbeddings = _options.DpFreezeEmbeddings,
                NoDropout = _options.DpNoDropout,
                Preconditioner = _preconditioner,
                PreconditionAfterNoise = _options.DpPreconditionAfterNoise,
                PreconditionSplit = _options.DpPreconditionSplit,
                // A simulation: the same seed must give the same table (an agent's real training keeps this secret).
                ReproducibleRandomness = true,
            };
            arm = string.Create(CultureInfo.InvariantCulture, $"federated + {(_options.DpDistributedNoise ? "distributed " : "")}DP-SGD ε={EpsilonText.Format(eps)}") + (siteNoise > 0 ? string.Create(CultureInfo.InvariantCulture, $" + site DP z={siteNoise:0.###}") : "");
            _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: σ={sigma:F3}{(_options.DpDistributedNoise ? (_options.DpNoiseShares is int k ? $" in any {k} sites' sum" : " in the sum") + $" ({siteSigma:F3} per site)" : "")}, q={_options.SampleRate}, C={_options.GradClip}, {plannedSteps} DP-SGD steps per site, δ={_options.Delta:G2}, {(_options.PldAccounting ? "PLD" : "RDP")} accountant"));
            if (clipping is not null)
            {
                _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: adaptive clipping to the unclipped fraction γ = {clipping.TargetQuantile} (η_C = {clipping.LearningRate}, C₀ = {clipping.Clip}); count noise σ_b = {countNoise:G4}{(_options.DpDistributedNoise ? " in the sum" : " per site")}, so the clipped sum's σ_Δ = {gradientSigma:F4} (σ_Δ and σ_b together: σ = {sigma:F4})"));
            }
        }

        using TaggerModel model = TaggerModel.Create(_options.Config, LabelSet.Create(data.EntityTypes), seed, "cpu");
        if (dp is not null && _options.DpSubspace > 0)
        {
            dp = dp with { Subspace = Subspace(model, initial, dp, seed) };
        }

        string[] names = [.. data.Sites.Select(s => s.Name)];
        int weightCap = Math.Max(1, data.Sites.Max(s => s.Train.Count));
        // Federated evaluation: each site scores the model it received on its own shard of the dev set; only the sum
        // of the counts is decoded (the cap: the largest shard's token count, so nothing is clamped).
        IReadOnlyList<Sentence>[] devShards = FederatedEvaluationShards.Split(data.Dev, names.Length);
        var evaluation = EvaluationLayout.Create(data.EntityTypes, FederatedEvaluationShards.CountCap(devShards));
        ServerOptimizer? serverOptimizer = _options.ServerOptimizer.Kind == ServerOptimizerKind.Average ? null : new ServerOptimizer(ServerOptimizerFor(data, dp));
        LookaheadFilter? lookahead = _options.ServerKalman < 1 ? new LookaheadFilter(_options.ServerKalman) : null;
        using var secAgg = new InProcessSecureAggregation("securefed-experiment", names, _options.UpdateClip, siteNoise, weightCap, _options.ServerLearningRate, evaluation: evaluation,
            serverOptimizer: serverOptimizer, updateFilter: lookahead);
        if (lookahead is not null)
        {
            _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: Kalman filter on the averaged update, κ = {_options.ServerKalman}; the sites train from x_t + {lookahead.Gamma:0.###}·(x_t − x_t−1)"));
        }
        if (dp is not null && _options.PublicMix > 0)
        {
            _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: public server steps on {_publicTrain?.Length} public sentences, weight {_options.PublicMix} decaying linearly to 0 after round {(_options.PublicMixUntil > 0 ? _options.PublicMixUntil : _options.Rounds)}"));
        }

        var federatedF1 = new List<double?>();
        float[] global = (float[])initial.Clone();
        var curve = new List<double>();
        long[] dpSteps = new long[names.Length];
        float[]? average = null;
        List<double>? clips = clipping is null ? null : [];
        List<double>? unclippedFractions = clipping is null ? null : [];
        // Adaptive clipping's count noise: a simulation, drawn from the seed like the rest (see ReproducibleRandomness).
        var countRandom = new Random(unchecked((seed * 7_919) + 17));
        double siteCountNoise = _options.DpDistributedNoise ? countNoise / Math.Sqrt(NoiseShares(names.Length)) : countNoise;
        double expectedBatch = _options.SampleRate * data.Sites.Sum(s => (double)s.Train.Count);
        ModelAverages.TailAccumulator? tail = _options.ServerAverageFrom > 0 ? new(_options.ServerAverageFrom) : null;
        List<float[]>? history = _options.ServerAverageSweep ? [] : null;
        for (int round = 1; round <= _options.Rounds; round++)
        {
            var deltas = new float[names.Length][];
            var examples = new long[names.Length];
            var devCounts = new EvaluationCounts?[names.Length];
            double clippedFraction = 0;
            double medianNorm = 0;
            double centredCount = 0; // Σ over the sites of their noised Σ (b_i − ½)
            if (clipping is not null)
            {
                dp = dp! with { MaxGradNorm = clipping.Clip };
                clips!.Add(clipping.Clip);
                if (serverOptimizer is not null && serverOptimizer.NoiseVariance > 0)
                {
                    serverOptimizer.SetNoiseVariance(NoiseVariance(data, dp));
                }
            }

            // With the Kalman filter the sites train from the extrapolated point (and score the global model).
            float[] start = lookahead?.TrainingPoint(global) ?? global;
            for (int i = 0; i < names.Length; i++)
            {
                // One model at a time: the same TaggerModel is reset to the global model for every site.
                model.Unflatten(global);
                devCounts[i] = FederatedEvaluationShards.Score(model, devShards[i]);
                if (!ReferenceEquals(start, global))
                {
                    model.Unflatten(start);
                }

                TrainResult trained = new TaggerTrainer().Train(model, data.Sites[i].Train, null, TrainingOptions(dp, dp is null ? _options.LocalEpochs : DpEpochs, LocalSeed(seed, round, i + 1), round), null, cancellationToken);
                dpSteps[i] += trained.DpSteps;
                clippedFraction += trained.DpClippedFraction / names.Length;
                medianNorm += trained.DpMedianGradNorm / names.Length;
                if (clipping is not null)
                {
                    // Each site releases its centred unclipped count (sensitivity ½) with its share of the count noise.
                    centredCount += trained.DpUnclippedCount - (trained.DpSampledExamples / 2.0) + (siteCountNoise * Normal(countRandom));
                }

                float[] local = model.Flatten();
                deltas[i] = new float[local.Length];
                for (int j = 0; j < local.Length; j++)
                {
                    deltas[i][j] = local[j] - start[j];
                }

                examples[i] = data.Sites[i].Train.Count;
            }

            double mix = dp is null ? 0 : _options.PublicMixWeight(round);
            double[]? serverUpdate = mix > 0 ? PublicStep(model, global, dp!, weightCap, mix, LocalSeed(seed, round, names.Length + 1), round, cancellationToken) : null;
            try
            {
                global = secAgg.RunRound(round, global, deltas, examples, evaluations: devCounts, serverUpdate: serverUpdate);
            }
            catch (RoundAbortedException ex)
            {
                // In process no site drops out: an abort is mostly the server's update rule taking the model out of the float
                // range (an error naming the option, not a crash with a stack trace).
                string hint = ex.Reason.Contains("not finite", StringComparison.Ordinal)
                    ? string.Create(CultureInfo.InvariantCulture, $" (--server-lr {_options.ServerLearningRate}: a smaller --server-lr keeps the model finite)")
                    : string.Empty;
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"[seed {seed}] {arm}: round {round} aborted at {ex.Stage}: {ex.Reason}{hint}."), ex);
            }

            if (dp?.Subspace is not null && _options.DpSubspaceRefresh > 0 && round % _options.DpSubspaceRefresh == 0 && round < _options.Rounds)
            {
                dp.Subspace.Dispose();
                dp = dp with { Subspace = Subspace(model, global, dp, seed) };
            }

            if (clipping is not null)
            {
                double unclipped = (centredCount + (expectedBatch / 2)) / expectedBatch;
                unclippedFractions!.Add(unclipped);
                clipping.Update(unclipped);
            }

            federatedF1.Add(secAgg.LastEvaluation?.F1);
            average = AverageModels(average, global, round);
            history?.Add((float[])global.Clone());
            model.Unflatten(average ?? tail?.Add(round, global) ?? global);
            curve.Add(TaggerEvaluator.Evaluate(model, data.Dev).F1);
            RoundProgress(seed, arm, round, curve[^1], watch, dp is null ? null : (clippedFraction, medianNorm),
                clipping is null ? null : (clips![^1], unclippedFractions![^1], clipping.Clip));
        }

        dp?.Subspace?.Dispose();
        ArmResult result = Finish(arm, epsilon is null ? "federated" : siteNoise > 0 ? "federated_dp_site_dp" : _options.DpDistributedNoise ? "federated_distributed_dp" : "federated_dp", seed, epsilon, model, data, curve, watch)
            with { FederatedEvaluationF1PerRound = federatedF1 };
        // After the arm's own scoring, so its wall time leaves out what the callback does (e.g. self-training).
        fusedModel?.Invoke(model, arm);
        if (history is not null)
        {
            AverageSweep(model, history, data, seed, arm);
        }

        if (dp is null)
        {
            return result;
        }

        if (dpSteps.Any(s => s != plannedSteps))
        {
            throw new InvalidOperationException($"DP-SGD took {string.Join(", ", dpSteps)} steps per site; the noise was calibrated for {plannedSteps}.");
        }

        // Local noise: each site's own σ. Distributed: the sum's σ (every site's share), and each site's share alone.
        return result with
        {
            NoiseMultiplier = sigma,
            DpStepsPerSite = plannedSteps,
            EpsilonSpent = Spent(dp.SampleRate, sigma, plannedSteps),
            SiteNoiseMultiplier = siteNoise,
            DistributedNoise = _options.DpDistributedNoise,
            // Each site's share, σ / √k (with adaptive clipping its σ_Δ / √k and σ_b / √k together are that).
            CollusionEpsilon = _options.DpDistributedNoise ? Spent(dp.SampleRate, sigma / Math.Sqrt(NoiseShares(data.Sites.Count)), plannedSteps) : null,
            ClipPerRound = clips,
            UnclippedFractionPerRound = unclippedFractions,
            GradientNoiseMultiplier = clipping is null ? null : gradientSigma,
            ClipCountNoise = clipping is null ? null : countNoise,
        };
    }

    /// <summary>k of <see cref="ExperimentOptions.DpNoiseShares"/> for <paramref name="sites"/> sites (n unless given).</summary>
    private int NoiseShares(int sites) => Math.Min(_options.DpNoiseShares ?? sites, sites); // validated: at most --sites

    /// <summary>Projected DP-SGD's public gradient subspace at <paramref name="weights"/> (a public model: the initial or the announced global one).</summary>
    private TaggerGradientSubspace Subspace(TaggerModel model, float[] weights, DpSgdOptions dp, int seed)
    {
        var watch = Stopwatch.StartNew();
        model.Unflatten(weights);
        IReadOnlyList<float>? scale = dp.Preconditioner is { } a && dp.PreconditionBeforeClipExponent != 0
            ? [.. a.Select(f => (float)Math.Pow(f, dp.PreconditionBeforeClipExponent))]
            : null;
        Sentence[] publicTrain = _publicTrain ?? throw new InvalidOperationException("--dp-subspace needs the public warm-start corpus.");
        TaggerGradientSubspace subspace = TaggerGradientSubspace.FromPublicData(model, publicTrain, _options.DpSubspace, _options.DpSubspaceSentences, scale, dp.Trains);
        _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] public gradient subspace: k = {subspace.Dimension} of {subspace.ParameterCount} parameters from {Math.Min(publicTrain.Length, _options.DpSubspaceSentences)} public sentences, {subspace.ExplainedShare:P0} of their squared norm ({watch.Elapsed.TotalSeconds:F0} s)"));
        return subspace;
    }

    /// <summary>
    /// <see cref="ExperimentOptions.PublicMix"/>: one noiseless step of the sites' kind (same preconditioner, clip and
    /// learning rate) on a Poisson batch of the public corpus whose expected size is one site's, from
    /// <paramref name="global"/>, times <paramref name="weight"/>.
    /// </summary>
    internal double[] PublicStep(TaggerModel model, float[] global, DpSgdOptions dp, int siteSentences, double weight, int stepSeed, int round, CancellationToken cancellationToken)
    {
        Sentence[] publicTrain = _publicTrain ?? throw new InvalidOperationException("--public-mix needs the public warm-start corpus.");
        DpSgdOptions noiseless = dp with { NoiseMultiplier = 0, SampleRate = Math.Min(1, dp.SampleRate * siteSentences / publicTrain.Length) };
        model.Unflatten(global);
        new TaggerTrainer().Train(model, publicTrain, null, TrainingOptions(noiseless, 1, stepSeed, round), null, cancellationToken);
        float[] local = model.Flatten();
        var step = new double[local.Length];
        for (int j = 0; j < step.Length; j++)
        {
            step[j] = weight * (local[j] - global[j]);
        }

        return step;
    }

    /// <summary>
    /// <see cref="ExperimentOptions.ServerAverageSweep"/>: dev and test F1 of the last global model and of averages of
    /// the run's global models over several windows, one line each (leaves <paramref name="model"/> at the last one scored).
    /// </summary>
    private void AverageSweep(TaggerModel model, List<float[]> history, ExperimentData data, int seed, string arm)
    {
        int rounds = history.Count;
        var candidates = new List<(string Name, Func<float[]> Weights)> { ("last global model", () => history[^1]) };
        foreach (int window in new[] { 10, 25, 50, 100, rounds / 2 }.Where(w => w > 1 && w <= rounds).Distinct().Order())
        {
            candidates.Add((string.Create(CultureInfo.InvariantCulture, $"tail mean of the last {window} rounds (from round {rounds - window + 1})"), new Func<float[]>(() => ModelAverages.Tail(history, rounds - window + 1))));
        }

        foreach (double decay in new[] { 0.9, 0.95, 0.98, 0.99 })
        {
            candidates.Add((string.Create(CultureInfo.InvariantCulture, $"moving average, decay {decay} (bias-corrected)"), new Func<float[]>(() => ModelAverages.Ema(history, decay))));
        }

        foreach ((string name, Func<float[]> weights) in candidates)
        {
            model.Unflatten(weights());
            double dev = TaggerEvaluator.Evaluate(model, data.Dev).F1;
            double test = TaggerEvaluator.Evaluate(model, data.Test).F1;
            _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: average sweep: {name}: dev F1 {dev:F3}, test F1 {test:F3}"));
        }
    }

    private float[]? AverageModels(float[]? average, float[] global, int round)
    {
        if (_options.ServerWeightAverage <= 0)
        {
            return null;
        }

        if (average is null)
        {
            return (float[])global.Clone();
        }

        float decay = (float)Math.Min(_options.ServerWeightAverage, (1.0 + round) / (10.0 + round));
        for (int j = 0; j < average.Length; j++)
        {
            average[j] = (decay * average[j]) + ((1 - decay) * global[j]);
        }

        return average;
    }

    private double Spent(double sampleRate, double sigma, long steps)
    {
        if (_options.PldAccounting)
        {
            return PldAccountant.Epsilon(sigma, sampleRate, steps, _options.Delta);
        }

        var accountant = new RdpAccountant();
        accountant.AddSubsampledGaussian(sampleRate, sigma, steps);
        return accountant.GetPrivacySpent(_options.Delta).Epsilon;
    }

    /// <summary>Stage 4: mean and spread over seeds, per arm, in the order the arms ran.</summary>
    private static IReadOnlyList<ArmSummary> Summarize(IReadOnlyList<ArmResult> results) =>
        [.. results.GroupBy(r => r.Arm).Select(g => ArmSummary.Of([.. g]))];

    /// <summary>Stage 5: results.json and the PNG in the output folder.</summary>
    private ExperimentReport WriteOutputs(ExperimentReport report)
    {
        Directory.CreateDirectory(_options.OutputDirectory);
        string json = Path.Combine(_options.OutputDirectory, "results.json");
        string png = Path.Combine(_options.OutputDirectory, "f1-per-round.png");
        File.WriteAllText(json, ExperimentJson.Report(report));
        ExperimentChart.Write(report.Summaries, _options, png);
        return report with { JsonPath = json, ChartPath = png };
    }

    private ArmResult Finish(string arm, string kind, int seed, double? epsilon, TaggerModel model, ExperimentData data, List<double> curve, Stopwatch watch)
    {
        EvaluationResult test = TaggerEvaluator.Evaluate(model, data.Test);
        var result = new ArmResult(arm, kind, seed, epsilon, test.F1, PerType(test, data.EntityTypes), curve, watch.Elapsed.TotalSeconds);
        _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: test F1 {test.F1:F3} ({watch.Elapsed.TotalSeconds:F0} s)"));
        return result;
    }

    private void RoundProgress(int seed, string arm, int round, double devF1, Stopwatch watch, (double Fraction, double MedianNorm)? clipping = null, (double Clip, double NoisedUnclipped, double Next)? adaptive = null) =>
        _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: round {round}/{_options.Rounds}, dev F1 {devF1:F3}")
            + (clipping is var (fraction, median) ? string.Create(CultureInfo.InvariantCulture, $", {fraction:P0} of the sampled gradients clipped (median norm {median:G3})") : "")
            + (adaptive is var (c, b, next) ? string.Create(CultureInfo.InvariantCulture, $", C {c:G3}, noised unclipped fraction {b:F3}, next C {next:G3}") : "")
            + string.Create(CultureInfo.InvariantCulture, $" ({watch.Elapsed.TotalSeconds:F0} s)"));

    private TrainOptions TrainingOptions(DpSgdOptions? dp, int epochs, int seed, int round) => new()
    {
        Epochs = epochs,
        BatchSize = _options.BatchSize,
        LearningRate = (dp is null ? _options.LearningRate : _options.DpLearningRate) / (1 + (_options.LearningRateDecay * (round - 1))),
        Optimizer = dp is null ? _options.Optimizer : _options.DpOptimizer,
        WeightDecay = dp is null ? 0 : _options.DpWeightDecay,
        Seed = seed,
        Patience = 0,
        MaxSteps = dp is null ? null : _options.EffectiveDpStepsPerRound,
        Threads = _options.Threads,
        DpSgd = dp,
    };

    /// <summary>Epochs (of round(1/q) Poisson steps each) that cover the DP-SGD steps of one round; the step cap ends the round.</summary>
    private int DpEpochs => DpSgdOptions.EpochsFor(_options.EffectiveDpStepsPerRound, _options.SampleRate);

    /// <summary>A standard normal draw (Box–Muller).</summary>
    private static double Normal(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static int LocalSeed(int seed, int round, int site) => unchecked((seed * 100_003) + (round * 1_009) + site);

    private static Dictionary<string, double> PerType(EvaluationResult result, IReadOnlyList<string> types) =>
        types.ToDictionary(t => t, t => result.PerType.TryGetValue(t, out EntityScore? s) ? s.F1 : 0, StringComparer.Ordinal);

    private Dictionary<string, object> Configuration(ExperimentData data) => new()
    {
        ["split"] = _options.Split.ToString().ToLowerInvariant(),
        ["data"] = _options.Split == ExperimentSplit.ByCorpus ? string.Join(",", _options.Corpora) : _options.DataDirectory!,
        ["sites"] = data.Sites.Count,
        ["skew_shares"] = _options.Split == ExperimentSplit.Skewed ? _options.EffectiveSkewShares() : Array.Empty<double>(),
        ["seeds"] = _options.Seeds,
        ["first_seed"] = _options.FirstSeed,
        ["config"] = _options.ConfigName,
        ["entity_types"] = data.EntityTypes,
        ["recipe"] = _options.RecipeName,
        ["rounds"] = _options.Rounds,
        ["local_epochs"] = _options.LocalEpochs,
        ["max_train_sentences"] = _options.MaxTrainSentences,
        ["max_eval_sentences"] = _options.MaxEvalSentences,
        ["optimizer"] = _options.Optimizer.ToString().ToLowerInvariant(),
        ["lr"] = _options.LearningRate,
        ["lr_decay_per_round"] = _options.LearningRateDecay,
        ["batch_size"] = _options.BatchSize,
        ["dp_optimizer"] = _options.DpOptimizer.ToString().ToLowerInvariant(),
        ["dp_lr"] = _options.DpLearningRate,
        ["dp_weight_decay"] = _options.DpWeightDecay,
        ["sample_rate"] = _options.SampleRate,
        ["dp_steps_per_round"] = _options.EffectiveDpStepsPerRound,
        ["grad_clip"] = _options.GradClip,
        ["dp_freeze_embeddings"] = _options.DpFreezeEmbeddings,
        ["dp_no_dropout"] = _options.DpNoDropout,
        ["delta"] = _options.Delta,
        ["epsilons"] = _options.Epsilons,
        ["update_clip"] = _options.UpdateClip,
        ["site_noise_multiplier"] = _options.SiteNoiseMultiplier,
        ["partial_annotation"] = _options.Split == ExperimentSplit.ByCorpus && _options.PartialAnnotation,
        ["server_lr"] = _options.ServerLearningRate,
        ["server_optimizer"] = _options.ServerOptimizer.Kind.ToString().ToLowerInvariant(),
        ["server_beta1"] = _options.ServerBeta1,
        ["server_beta2"] = _options.ServerBeta2,
        ["server_tau"] = _options.ServerTau,
        ["server_noise_correction"] = _options.ServerNoiseCorrection,
        ["server_noise_floor"] = _options.ServerNoiseFloor,
        ["dp_precondition"] = _options.DpPrecondition,
        ["dp_precondition_floor"] = _options.DpPreconditionFloor,
        ["dp_precondition_per_tensor"] = _options.DpPreconditionPerTensor,
        ["accountant"] = _options.PldAccounting ? "pld" : "rdp",
        ["dp_subspace"] = _options.DpSubspace,
        ["dp_subspace_sentences"] = _options.DpSubspaceSentences,
        ["dp_subspace_refresh"] = _options.DpSubspaceRefresh,
        ["dp_noise"] = _options.DpDistributedNoise ? "distributed" : "local",
        ["dp_noise_shares"] = _options.DpDistributedNoise ? _options.DpNoiseShares ?? _options.Sites : 0, // k; 0 with local noise
        ["adaptive_clip"] = _options.AdaptiveClipQuantile,
        ["clip_lr"] = _options.ClipLearningRate,
        ["clip_count_noise"] = _options.ClipCountNoise ?? 0,
        ["server_ema"] = _options.ServerWeightAverage,
        ["server_kalman"] = _options.ServerKalman,
        ["server_average_from"] = _options.ServerAverageFrom,
        ["server_average_sweep"] = _options.ServerAverageSweep,
        ["public_mix"] = _options.PublicMix,
        ["public_mix_until"] = _options.PublicMixUntil > 0 ? _options.PublicMixUntil : _options.Rounds,
        ["dp_precondition_after_noise"] = _options.DpPreconditionAfterNoise,
        ["dp_precondition_split"] = _options.DpPreconditionSplit,
        ["warm_start"] = _options.WarmStartDirectory ?? "",
        ["warm_start_epochs"] = _options.WarmStartDirectory is null ? 0 : _options.WarmStartEpochs,
        ["warm_start_splits"] = _options.WarmStartAllSplits ? "all" : "train",
        ["pretrain_text"] = string.Join(',', _options.PretrainTextDirectories),
        ["pretrain_epochs"] = _options.PretrainTextDirectories.Count == 0 ? 0 : _options.PretrainEpochs,
        ["distill_text"] = string.Join(',', _options.DistillTextDirectories),
        ["distill_epochs"] = _options.DistillTextDirectories.Count == 0 ? 0 : _options.DistillEpochs,
        ["distill_lr"] = _options.DistillLearningRate,
        ["distill_teacher"] = _options.DistillTeacherDirectory ?? "",
    };

    private static string LoadAverage()
    {
        try
        {
            return File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
        }
        catch (IOException)
        {
            return "n/a";
        }
    }
}
