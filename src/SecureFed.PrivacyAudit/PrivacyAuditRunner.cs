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
        if (plan.Note is { } note)
        {
            _progress("[audit] note: " + note);
        }
        float[] initial = experiment.CreateInitialModel(plan.Data, _options.Seed, cancellationToken);
        AttackTargets targets = Targets(plan);
        AttackScores? initialScores = null;
        if (_options.Reference == AuditReference.Initial)
        {
            using TaggerModel reference = TaggerModel.Create(_options.Experiment.Config, LabelSet.Create(plan.Data.EntityTypes), _options.Seed, "cpu");
            reference.Unflatten(initial);
            initialScores = targets.Score(reference, cancellationToken);
        }

        // The reference federation: every site but the audited one, so no target was ever in its training data.
        ExperimentData withoutSite = plan.Data with { Sites = [.. plan.Data.Sites.Skip(1)] };
        var arms = new List<PrivacyAuditArm>();
        PrivacyAuditReport? report = null;
        IEnumerable<double?> epsilons = (_options.IncludeNoDp ? new double?[] { null } : []).Concat(_options.Epsilons.Select(e => (double?)e));
        foreach (double? epsilon in epsilons)
        {
            var watch = Stopwatch.StartNew();
            AttackScores? scores = null;
            var scoring = new Stopwatch();
            ArmResult trained = experiment.RunFederatedArm(plan.Data, initial, _options.Seed, epsilon, model =>
            {
                scoring.Start();
                scores = targets.Score(model, cancellationToken);
                scoring.Stop();
            }, cancellationToken);
            if (scores is null)
            {
                throw new InvalidOperationException($"{trained.Arm}: the fused model was not handed to the audit.");
            }

            _progress(string.Create(CultureInfo.InvariantCulture, $"[audit] {trained.Arm}: the fused model scored {targets.Count} sentences in {scoring.Elapsed.TotalSeconds:F0} s"));
            AttackScores? referenceScores = initialScores;
            if (referenceScores is null)
            {
                _progress($"[audit] reference for {trained.Arm}: the same training without {plan.Data.Sites[0].Name}");
                ArmResult reference = experiment.RunFederatedArm(withoutSite, initial, _options.Seed, epsilon, model => referenceScores = targets.Score(model, cancellationToken), cancellationToken);
                if (referenceScores is null)
                {
                    throw new InvalidOperationException($"{reference.Arm}: the reference model was not handed to the audit.");
                }
            }

            AttackResult attack = Attack(scores, referenceScores, plan, targets, trained.EpsilonSpent);
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

    /// <summary>Every sentence the attacks score; the same for every arm and its reference.</summary>
    private AttackTargets Targets(AuditPlan plan)
    {
        var candidateRandom = new Random(unchecked((_options.Seed * 31_337) + 15));
        var exposure = new List<(bool Inserted, Sentence[] Sentences)>();
        foreach (((int id, int phrase), bool inserted) in plan.ExposureCanaries.Select(c => (c, true)).Concat(plan.ControlCanaries.Select(c => (c, false))))
        {
            int[] candidates = plan.Generator.Candidates(_options.Candidates, candidateRandom);
            exposure.Add((inserted, [plan.Generator.Sentence(id, phrase), .. candidates.Select(c => plan.Generator.Sentence(c, phrase))]));
        }

        Sentence[] audit = [.. Enumerable.Range(0, plan.AuditCanaries.Count).Select(plan.AuditSentence)];
        Sentence[] group = [.. Enumerable.Range(0, plan.GroupCanaries.Count).Select(plan.GroupSentence)];
        return new AttackTargets(exposure, audit, group, [.. plan.NaturalSentences]);
    }

    private AttackResult Attack(AttackScores raw, AttackScores reference, AuditPlan plan, AttackTargets targets, double? epsilonSpent)
    {
        // Exposure ranks a canary against candidates that differ only in the name, in the same sentence: the candidates
        // are the calibration (Carlini et al.), so the plain log-likelihood is the primary score. The reference-calibrated
        // ranking is kept for comparison: it adds the reference's opinion of each name, noise to this test.
        var exposures = new List<double>();
        var calibrated = new List<double>();
        var extrapolated = new List<double>();
        var control = new List<double>();
        var controlCalibrated = new List<double>();
        for (int c = 0; c < targets.Exposure.Count; c++)
        {
            double[] scores = raw.Exposure[c];
            double[] adjusted = AuditStatistics.Calibrated(raw.Exposure[c], reference.Exposure[c]);
            if (targets.Exposure[c].Inserted)
            {
                exposures.Add(AuditStatistics.Exposure(scores[0], scores[1..]));
                extrapolated.Add(AuditStatistics.ExtrapolatedExposure(scores[0], scores[1..]));
                calibrated.Add(AuditStatistics.Exposure(adjusted[0], adjusted[1..]));
            }
            else
            {
                control.Add(AuditStatistics.Exposure(scores[0], scores[1..]));
                controlCalibrated.Add(AuditStatistics.Exposure(adjusted[0], adjusted[1..]));
            }
        }

        double delta = _options.Experiment.Delta;
        // The audit canaries' labels are random: centre each label's scores on their median so the label's prior
        // (B-<type> or O in this template) does not outweigh membership. Uses the scores only, not the inclusion bits.
        double[] canaryScores = AuditStatistics.CenteredByLabel(AuditStatistics.Calibrated(raw.Audit, reference.Audit), plan.AuditCanaryEntity);
        double[] groupScores = AuditStatistics.CenteredByLabel(AuditStatistics.Calibrated(raw.Group, reference.Group), plan.GroupCanaryEntity);
        double[] naturalScores = AuditStatistics.Calibrated(raw.Natural, reference.Natural);
        (double? canaryAuc, _, _) = Mia(canaryScores, plan.AuditCanaryIncluded);
        (double? groupAuc, _, _) = Mia(groupScores, plan.GroupCanaryIncluded);
        (double? auc, double? tpr, var roc) = Mia(naturalScores, plan.NaturalIncluded);
        (double? rawAuc, _, _) = Mia(raw.Natural, plan.NaturalIncluded);
        OneRunAuditResult? canaryAudit = canaryScores.Length == 0 ? null : OneRunAudit.Run(canaryScores, plan.AuditCanaryIncluded, delta, _options.PValue);
        OneRunAuditResult? naturalAudit = naturalScores.Length == 0 ? null : OneRunAudit.Run(naturalScores, plan.NaturalIncluded, delta, _options.PValue);
        GroupAuditResult? groupAudit = null;
        if (groupScores.Length > 0)
        {
            // The unit is a group of r sentences: test it against the group-privacy guarantee (rε, r·e^{(r−1)ε}·δ) at
            // its own δ; without DP or when that guarantee is vacuous there is no claim, and the bound is at the run's δ.
            (double Epsilon, double Delta)? claim = epsilonSpent is double spent ? GroupPrivacy.Of(spent, delta, _options.GroupSize) : null;
            OneRunAuditResult audit = OneRunAudit.Run(groupScores, plan.GroupCanaryIncluded, claim?.Delta ?? delta, _options.PValue);
            groupAudit = new GroupAuditResult(_options.GroupSize, audit, claim?.Epsilon, claim?.Delta, epsilonSpent is not null && claim is null);
        }

        return new AttackResult(exposures, calibrated, extrapolated, control, controlCalibrated, Math.Log2(_options.Candidates + 1.0), auc, tpr, rawAuc, canaryAuc, canaryAudit, naturalAudit, groupAudit, groupAuc, roc);
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
            ["recipe"] = e.RecipeName,
            ["rounds"] = e.Rounds,
            ["local_epochs"] = e.LocalEpochs,
            ["dp_no_dropout"] = e.DpNoDropout,
            ["max_train_sentences"] = e.MaxTrainSentences,
            ["max_eval_sentences"] = e.MaxEvalSentences,
            ["sample_rate"] = e.SampleRate,
            ["dp_steps_per_round"] = e.EffectiveDpStepsPerRound,
            ["grad_clip"] = e.GradClip,
            ["dp_lr"] = e.DpLearningRate,
            ["dp_optimizer"] = e.DpOptimizer.ToString().ToLowerInvariant(),
            ["optimizer"] = e.Optimizer.ToString().ToLowerInvariant(),
            ["warm_start"] = e.WarmStartDirectory ?? "none",
            ["warm_start_epochs"] = e.WarmStartDirectory is null ? 0 : e.WarmStartEpochs,
            ["pretrain_text"] = string.Join(',', e.PretrainTextDirectories),
            ["pretrain_epochs"] = e.PretrainTextDirectories.Count == 0 ? 0 : e.PretrainEpochs,
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
            ["group_canaries"] = plan.GroupCanaries.Count,
            ["group_canaries_in"] = plan.GroupCanaryIncluded.Count(b => b),
            ["group_size"] = _options.GroupSize,
            ["reference"] = _options.Reference == AuditReference.WithoutSite ? "without-site" : "initial",
            ["score"] = "log p(tags | tokens) under the fused model minus under the reference model: " + (_options.Reference == AuditReference.WithoutSite
                ? $"the same arm trained without {plan.Data.Sites[0].Name}"
                : "the arms' initial model" + (e.WarmStartDirectory is null ? " (random)" : " (the public warm start)")),
            ["audit_sentences"] = plan.NaturalSentences.Count,
            ["audit_sentences_in"] = plan.NaturalIncluded.Count(b => b),
            ["p_value"] = _options.PValue,
        };
    }

    private sealed record AttackResult(
        IReadOnlyList<double> Exposures,
        IReadOnlyList<double> Calibrated,
        IReadOnlyList<double> Extrapolated,
        IReadOnlyList<double> Control,
        IReadOnlyList<double> ControlCalibrated,
        double Cap,
        double? Auc,
        double? Tpr,
        double? RawAuc,
        double? CanaryAuc,
        OneRunAuditResult? CanaryAudit,
        OneRunAuditResult? NaturalAudit,
        GroupAuditResult? GroupAudit,
        double? GroupAuc,
        IReadOnlyList<(double, double)> Roc)
    {
        public PrivacyAuditArm ToArm(ArmResult trained, double seconds) =>
            new(trained.Arm, trained.Epsilon, trained.EpsilonSpent, trained.TestF1, Exposures, Calibrated, Extrapolated, Control, ControlCalibrated, Cap, Auc, Tpr, RawAuc, CanaryAuc, CanaryAudit, NaturalAudit, GroupAudit, GroupAuc, Roc, seconds);
    }
}
