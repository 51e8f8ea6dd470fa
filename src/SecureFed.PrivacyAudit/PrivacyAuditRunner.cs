using System.Diagnostics;
using System.Globalization;
using SecureFed.Experiments;
using SecureFed.PrivacyAudit.Internal;
using SecureFed.Tagger;

namespace SecureFed.PrivacyAudit;

/// <summary>
/// <c>securefed privacy audit</c>: splits the corpus across the sites as <c>securefed experiment</c> does, changes
/// site-1's data (secret canaries repeated r times, audit canaries and natural sentences each in with probability ½),
/// trains each arm (no DP, then DP-SGD at each ε) through the experiment's federated training with real secure
/// aggregation, and attacks the fused model: canary exposure, membership inference (AUC, TPR at 1 % FPR) and the
/// one-run ε lower bound of Steinke et al., next to the accountant's ε.
/// </summary>
public sealed class PrivacyAuditRunner
{
    private readonly PrivacyAuditOptions _options;
    private readonly Action<string> _progress;

    /// <summary>Creates the runner.</summary>
    /// <param name="options">Settings (validated here).</param>
    /// <param name="progress">Receives one line per step of long work.</param>
    public PrivacyAuditRunner(PrivacyAuditOptions options, Action<string>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _progress = progress ?? (_ => { });
    }

    /// <summary>Runs every arm; privacy-audit.json and the PNGs are rewritten after each arm.</summary>
    public PrivacyAuditReport Run(CancellationToken cancellationToken = default)
    {
        DateTimeOffset started = DateTimeOffset.UtcNow;
        var experiment = new ExperimentRunner(_options.Experiment with { Seeds = 1 }, _progress);
        ExperimentData split = experiment.LoadSplit(_options.Seed);
        AuditPlan plan = AuditPlan.Create(split, _options, _options.Seed);
        _progress($"[audit] {plan.Data.Description}");
        _progress($"[audit] {plan.Data.Sites[0].Name}: {plan.Data.Sites[0].Source}");
        float[] initial = experiment.CreateInitialModel(plan.Data, _options.Seed, cancellationToken);
        var arms = new List<PrivacyAuditArm>();
        PrivacyAuditReport? report = null;
        IEnumerable<double?> epsilons = (_options.IncludeNoDp ? new double?[] { null } : []).Concat(_options.Epsilons.Select(e => (double?)e));
        foreach (double? epsilon in epsilons)
        {
            var watch = Stopwatch.StartNew();
            AttackResult? attack = null;
            ArmResult trained = experiment.RunFederatedArm(plan.Data, initial, _options.Seed, epsilon, model => attack = Attack(model, plan, cancellationToken), cancellationToken);
            if (attack is null)
            {
                throw new InvalidOperationException($"{trained.Arm}: the fused model was not handed to the audit.");
            }

            PrivacyAuditArm arm = attack.ToArm(trained, watch.Elapsed.TotalSeconds);
            arms.Add(arm);
            _progress(PrivacyAuditTable.ArmLine(arm));
            if (arm.BoundExceedsClaim)
            {
                _progress($"[audit] WARNING {arm.Arm}: an empirical ε lower bound exceeds the accountant's ε {arm.EpsilonSpent:F3}; this is a DP bug or a broken audit to investigate.");
            }

            report = Write(new PrivacyAuditReport(plan.Data.Description, Configuration(plan), [.. arms], started, DateTimeOffset.UtcNow));
        }

        return report ?? throw new InvalidOperationException("No arm ran.");
    }

    private AttackResult Attack(TaggerModel model, AuditPlan plan, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var candidateRandom = new Random(unchecked((_options.Seed * 31_337) + 15));
        var exposures = new List<double>();
        var extrapolated = new List<double>();
        var control = new List<double>();
        foreach (((int id, int phrase), bool inserted) in plan.ExposureCanaries.Select(c => (c, true)).Concat(plan.ControlCanaries.Select(c => (c, false))))
        {
            cancellationToken.ThrowIfCancellationRequested();
            int[] candidates = plan.Generator.Candidates(_options.Candidates, candidateRandom);
            Sentence[] sentences = [plan.Generator.Sentence(id, phrase), .. candidates.Select(c => plan.Generator.Sentence(c, phrase))];
            double[] scores = TaggerScorer.LogLikelihoods(model, sentences);
            double[] others = scores[1..];
            if (inserted)
            {
                exposures.Add(AuditStatistics.Exposure(scores[0], others));
                extrapolated.Add(AuditStatistics.ExtrapolatedExposure(scores[0], others));
            }
            else
            {
                control.Add(AuditStatistics.Exposure(scores[0], others));
            }
        }

        double delta = _options.Experiment.Delta;
        double[] canaryScores = TaggerScorer.LogLikelihoods(model, [.. plan.AuditCanaries.Select(c => plan.Generator.Sentence(c.Id, c.Phrase))]);
        double[] naturalScores = TaggerScorer.LogLikelihoods(model, plan.NaturalSentences);
        (double? canaryAuc, _, _) = Mia(canaryScores, plan.AuditCanaryIncluded);
        (double? auc, double? tpr, var roc) = Mia(naturalScores, plan.NaturalIncluded);
        OneRunAuditResult? canaryAudit = canaryScores.Length == 0 ? null : OneRunAudit.Run(canaryScores, plan.AuditCanaryIncluded, delta, _options.PValue);
        OneRunAuditResult? naturalAudit = naturalScores.Length == 0 ? null : OneRunAudit.Run(naturalScores, plan.NaturalIncluded, delta, _options.PValue);
        _progress(string.Create(CultureInfo.InvariantCulture, $"[audit] attacks scored {(exposures.Count + control.Count) * (_options.Candidates + 1) + canaryScores.Length + naturalScores.Length} sentences in {watch.Elapsed.TotalSeconds:F0} s"));
        return new AttackResult(exposures, extrapolated, control, Math.Log2(_options.Candidates + 1.0), auc, tpr, canaryAuc, canaryAudit, naturalAudit, roc);
    }

    private static (double? Auc, double? Tpr, IReadOnlyList<(double, double)> Roc) Mia(double[] scores, IReadOnlyList<bool> included)
    {
        double[] members = [.. scores.Where((_, i) => included[i])];
        double[] nonMembers = [.. scores.Where((_, i) => !included[i])];
        if (members.Length == 0 || nonMembers.Length == 0)
        {
            return (null, null, []);
        }

        return (AuditStatistics.Auc(members, nonMembers), AuditStatistics.TruePositiveRateAt(members, nonMembers, 0.01), AuditStatistics.RocCurve(members, nonMembers));
    }

    private PrivacyAuditReport Write(PrivacyAuditReport report)
    {
        Directory.CreateDirectory(_options.OutputDirectory);
        string json = Path.Combine(_options.OutputDirectory, "privacy-audit.json");
        string roc = Path.Combine(_options.OutputDirectory, "privacy-audit-roc.png");
        string exposure = Path.Combine(_options.OutputDirectory, "privacy-audit-exposure.png");
        File.WriteAllText(json, PrivacyAuditJson.Report(report));
        PrivacyAuditChart.WriteRoc(report, roc);
        PrivacyAuditChart.WriteExposure(report, exposure);
        return report with { JsonPath = json, RocChartPath = roc, ExposureChartPath = exposure };
    }

    private Dictionary<string, object> Configuration(AuditPlan plan)
    {
        ExperimentOptions e = _options.Experiment;
        return new Dictionary<string, object>
        {
            ["data"] = e.DataDirectory!,
            ["sites"] = plan.Data.Sites.Count,
            ["split"] = e.Split.ToString().ToLowerInvariant(),
            ["config"] = e.ConfigName,
            ["seed"] = _options.Seed,
            ["rounds"] = e.Rounds,
            ["local_epochs"] = e.LocalEpochs,
            ["max_train_sentences"] = e.MaxTrainSentences,
            ["max_eval_sentences"] = e.MaxEvalSentences,
            ["sample_rate"] = e.SampleRate,
            ["dp_steps_per_round"] = e.EffectiveDpStepsPerRound,
            ["grad_clip"] = e.GradClip,
            ["dp_lr"] = e.DpLearningRate,
            ["lr"] = e.LearningRate,
            ["delta"] = e.Delta,
            ["audited_site"] = plan.Data.Sites[0].Name,
            ["canaries"] = _options.Canaries,
            ["repeats"] = _options.Repeats,
            ["candidates_per_canary"] = _options.Candidates,
            ["candidate_space"] = CanaryGenerator.SpaceSize,
            ["canary_entity_type"] = plan.EntityType,
            ["audit_canaries"] = plan.AuditCanaries.Count,
            ["audit_canaries_in"] = plan.AuditCanaryIncluded.Count(b => b),
            ["audit_sentences"] = plan.NaturalSentences.Count,
            ["audit_sentences_in"] = plan.NaturalIncluded.Count(b => b),
            ["p_value"] = _options.PValue,
        };
    }

    private sealed record AttackResult(
        IReadOnlyList<double> Exposures,
        IReadOnlyList<double> Extrapolated,
        IReadOnlyList<double> Control,
        double Cap,
        double? Auc,
        double? Tpr,
        double? CanaryAuc,
        OneRunAuditResult? CanaryAudit,
        OneRunAuditResult? NaturalAudit,
        IReadOnlyList<(double, double)> Roc)
    {
        public PrivacyAuditArm ToArm(ArmResult trained, double seconds) =>
            new(trained.Arm, trained.Epsilon, trained.EpsilonSpent, trained.TestF1, Exposures, Extrapolated, Control, Cap, Auc, Tpr, CanaryAuc, CanaryAudit, NaturalAudit, Roc, seconds);
    }
}
