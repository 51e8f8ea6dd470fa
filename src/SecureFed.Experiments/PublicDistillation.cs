using System.Diagnostics;
using System.Globalization;
using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// Self-training on public unlabelled text (<see cref="ExperimentOptions.DistillTextDirectories"/>): a federated arm's
/// final model (the teacher) tags the public sentences with its IOB2-constrained Viterbi labels, and a student
/// initialised from the teacher is trained on those pseudo-labels with Adam for <see cref="ExperimentOptions.DistillEpochs"/>
/// epochs; the epoch with the best dev F1 is kept. Only the teacher and public text (every split, tokens only: the public
/// corpora's labels are ignored) reach the student, so under DP it is post-processing and costs no privacy.
/// </summary>
internal sealed class PublicDistillation
{
    /// <summary>The kind of the students' result rows.</summary>
    public const string StudentKind = "self_trained_student";

    private readonly ExperimentOptions _options;
    private readonly Action<string> _progress;
    private readonly Func<IReadOnlyList<IReadOnlyList<string>>> _readText;
    private IReadOnlyList<IReadOnlyList<string>>? _text;

    /// <summary>Creates the distillation stage.</summary>
    /// <param name="options">The run's options.</param>
    /// <param name="progress">Receives one line per step.</param>
    /// <param name="text">The public text (<see cref="ExperimentInputs.Text"/> of the folders, read before any training).</param>
    public PublicDistillation(ExperimentOptions options, Action<string> progress, Func<IReadOnlyList<IReadOnlyList<string>>> text)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(progress);
        ArgumentNullException.ThrowIfNull(text);
        _options = options;
        _progress = progress;
        _readText = text;
    }

    /// <summary>
    /// Distils <paramref name="model"/> (the teacher, whose dev and test F1 are given) in place into the student chosen by
    /// dev F1, and returns the student's result row; <paramref name="arm"/> names the teacher.
    /// </summary>
    public ArmResult Run(TaggerModel model, ExperimentData data, int seed, string arm, double? epsilon, double teacherDevF1, double teacherTestF1, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        var watch = Stopwatch.StartNew();
        IReadOnlyList<IReadOnlyList<string>> text = Text();
        Sentence[] pseudo = PseudoLabel(model, text);
        int entities = pseudo.Sum(s => s.Tags.Count(t => t.StartsWith("B-", StringComparison.Ordinal)));
        long tokens = pseudo.Sum(s => (long)s.Length);
        _progress(string.Create(CultureInfo.InvariantCulture,
            $"[seed {seed}] {arm}: self-training on public text: the teacher (dev F1 {teacherDevF1:F3}, test F1 {teacherTestF1:F3}) labelled {pseudo.Length} sentences, {tokens} tokens ({entities} entities); student from the teacher, Adam lr {_options.DistillLearningRate}, batch {_options.BatchSize}, {_options.DistillEpochs} epochs"));
        (double[] dev, double[] test, EvaluationResult chosen, int best) = TrainStudent(model, pseudo, data, seed, arm, cancellationToken);
        var distillation = new DistillationResult(arm, teacherDevF1, teacherTestF1, best, dev, test, pseudo.Length, tokens, entities);
        _progress(string.Create(CultureInfo.InvariantCulture,
            $"[seed {seed}] {arm}: self-trained student, epoch {best} of {dev.Length} by dev F1: dev F1 {distillation.StudentDevF1:F3} (teacher {teacherDevF1:F3}), test F1 {distillation.StudentTestF1:F3} (teacher {teacherTestF1:F3}) ({watch.Elapsed.TotalSeconds:F0} s)"));
        var perType = data.EntityTypes.ToDictionary(t => t, t => chosen.PerType.TryGetValue(t, out EntityScore? s) ? s.F1 : 0, StringComparer.Ordinal);
        return new ArmResult(StudentArm(arm), StudentKind, seed, epsilon, distillation.StudentTestF1, perType, dev, watch.Elapsed.TotalSeconds)
        {
            Distillation = distillation,
        };
    }

    /// <summary>The display name of the student of <paramref name="teacherArm"/>.</summary>
    public static string StudentArm(string teacherArm) => teacherArm + " → self-trained student";

    /// <summary>Stage 1: the public text, every split of every folder, tokens only (read before any arm trained).</summary>
    internal IReadOnlyList<IReadOnlyList<string>> Text()
    {
        if (_text is null)
        {
            _text = _readText();
            _progress(string.Create(CultureInfo.InvariantCulture,
                $"public text for self-training: {_text.Count} sentences of {string.Join(", ", _options.DistillTextDirectories)} (train + dev + test, labels ignored)"));
        }

        return _text;
    }

    /// <summary>The sentences of train.tsv, dev.tsv and test.tsv of each folder, their tokens only.</summary>
    internal static IReadOnlyList<IReadOnlyList<string>> ReadText(IReadOnlyList<string> directories) =>
        ExperimentInputs.ReadPublicText(directories).Text(directories);

    /// <summary>Stage 2: the teacher's Viterbi labels on <paramref name="text"/>, as training sentences.</summary>
    internal static Sentence[] PseudoLabel(TaggerModel teacher, IReadOnlyList<IReadOnlyList<string>> text)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(text);
        IReadOnlyList<IReadOnlyList<string>> tags = teacher.Predict(text);
        return [.. text.Select((tokens, i) => new Sentence(tokens, tags[i]))];
    }

    /// <summary>
    /// Stage 3: trains <paramref name="model"/> on <paramref name="pseudo"/> (one Adam run over all epochs), scores each
    /// epoch's model on dev and test, and leaves the model at the epoch with the best dev F1 (the first on a tie).
    /// </summary>
    private (double[] Dev, double[] Test, EvaluationResult Chosen, int BestEpoch) TrainStudent(TaggerModel model, Sentence[] pseudo, ExperimentData data, int seed, string arm, CancellationToken cancellationToken)
    {
        var options = new TrainOptions
        {
            Epochs = _options.DistillEpochs,
            BatchSize = _options.BatchSize,
            LearningRate = _options.DistillLearningRate,
            Optimizer = TaggerOptimizer.Adam,
            Seed = unchecked((seed * 100_003) + 55_541),
            Patience = 0,
            Threads = _options.Threads,
        };
        var epochWeights = new List<float[]>();
        var dev = new List<double>();
        var progress = new SyncProgress<TrainProgress>(p =>
        {
            if (p.EpochCompleted)
            {
                // The trainer has just scored dev with these weights; keep them to score test after training.
                epochWeights.Add(model.Flatten());
                dev.Add(p.DevF1 ?? double.NaN);
            }
        });
        new TaggerTrainer().Train(model, pseudo, data.Dev, options, progress, cancellationToken);
        var test = new double[epochWeights.Count];
        var scores = new EvaluationResult[epochWeights.Count];
        for (int e = 0; e < epochWeights.Count; e++)
        {
            model.Unflatten(epochWeights[e]);
            scores[e] = TaggerEvaluator.Evaluate(model, data.Test);
            test[e] = scores[e].F1;
            _progress(string.Create(CultureInfo.InvariantCulture, $"[seed {seed}] {arm}: self-training epoch {e + 1}/{epochWeights.Count}: dev F1 {dev[e]:F3}, test F1 {test[e]:F3}"));
        }

        int best = 0;
        for (int e = 1; e < dev.Count; e++)
        {
            if (dev[e] > dev[best])
            {
                best = e;
            }
        }

        model.Unflatten(epochWeights[best]);
        return ([.. dev], test, scores[best], best + 1);
    }
}
