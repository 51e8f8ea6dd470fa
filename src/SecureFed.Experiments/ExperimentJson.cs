using System.Text.Json;

namespace SecureFed.Experiments;

/// <summary>The machine-readable outputs: results.json and the one-line summary printed last with <c>--json</c>.</summary>
public static class ExperimentJson
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>The whole report (configuration, sites, every arm and seed, summaries, machine).</summary>
    public static string Report(ExperimentReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var document = new
        {
            complete = report.Complete,
            status = report.Complete ? "every arm measured" : $"incomplete: {report.Results.Count} arm runs measured so far (the run is still going, or it was stopped before its end)",
            configuration = report.Configuration,
            data = report.Data,
            sites = report.Sites.Select(s => new { name = s.Name, source = s.Source, training_sentences = s.Train.Count, entity_types = s.EntityTypes }),
            summary = Summary(report),
            arms = report.Summaries.Select(s => new
            {
                arm = s.Arm,
                kind = s.Kind,
                epsilon = s.Epsilon,
                f1_mean = s.MeanF1,
                f1_sd = s.StdF1,
                f1_min = s.MinF1,
                f1_max = s.MaxF1,
                f1_per_type_mean = s.MeanF1PerType,
                dev_f1_per_round_mean = s.MeanDevF1PerRound,
                wall_seconds_mean = s.MeanWallSeconds,
            }),
            runs = report.Results.Select(r => new
            {
                arm = r.Arm,
                kind = r.Kind,
                seed = r.Seed,
                epsilon = r.Epsilon,
                epsilon_spent = r.EpsilonSpent,
                noise_multiplier = r.NoiseMultiplier,
                dp_steps_per_site = r.DpStepsPerSite,
                site_noise_multiplier = r.SiteNoiseMultiplier,
                distributed_noise = r.DistributedNoise,
                collusion_epsilon = r.CollusionEpsilon,
                test_f1 = r.TestF1,
                test_f1_per_type = r.TestF1PerType,
                dev_f1_per_round = r.DevF1PerRound,
                federated_evaluation_f1_per_round = r.FederatedEvaluationF1PerRound,
                clip_per_round = r.ClipPerRound,
                unclipped_fraction_per_round = r.UnclippedFractionPerRound,
                gradient_noise_multiplier = r.GradientNoiseMultiplier,
                clip_count_noise = r.ClipCountNoise,
                distillation = r.Distillation is not { } d ? null : new
                {
                    teacher_arm = d.TeacherArm,
                    teacher_dev_f1 = d.TeacherDevF1,
                    teacher_test_f1 = d.TeacherTestF1,
                    student_dev_f1 = d.StudentDevF1,
                    student_test_f1 = d.StudentTestF1,
                    best_epoch = d.BestEpoch,
                    dev_f1_per_epoch = d.DevF1PerEpoch,
                    test_f1_per_epoch = d.TestF1PerEpoch,
                    public_sentences = d.PublicSentences,
                    public_tokens = d.PublicTokens,
                    pseudo_entities = d.PseudoEntities,
                },
                wall_seconds = r.WallSeconds,
            }),
            machine = report.Machine,
        };
        return JsonSerializer.Serialize(document, Indented);
    }

    /// <summary>
    /// One line: pooled_f1, federated_f1, site_alone_f1 (site order), dp [{epsilon, f1}], self_trained [{teacher, teacher
    /// and student dev and test F1}], all means over seeds (null or empty when the arm did not run), plus their spreads
    /// and the output paths.
    /// </summary>
    public static string SummaryLine(ExperimentReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return JsonSerializer.Serialize(Summary(report));
    }

    private static Dictionary<string, object?> Summary(ExperimentReport report)
    {
        ArmSummary? Kind(string kind) => report.Summaries.FirstOrDefault(s => s.Kind == kind);
        ArmSummary? pooled = Kind("pooled");
        ArmSummary? federated = Kind("federated");
        ArmSummary? warm = Kind("public_warm_start");
        ArmSummary[] alone = [.. report.Summaries.Where(s => s.Kind == "site_alone")];
        return new Dictionary<string, object?>
        {
            ["pooled_f1"] = pooled?.MeanF1,
            ["pooled_f1_sd"] = pooled?.StdF1,
            ["federated_f1"] = federated?.MeanF1,
            ["federated_f1_sd"] = federated?.StdF1,
            ["site_alone_f1"] = alone.Select(s => s.MeanF1).ToArray(),
            ["site_alone_f1_sd"] = alone.Select(s => s.StdF1).ToArray(),
            // Local and distributed patient-level noise (the latter with the ε if every other site colludes).
            ["dp"] = report.Summaries.Where(s => s.Kind is "federated_dp" or "federated_distributed_dp").Select(s => new
            {
                epsilon = s.Epsilon,
                f1 = s.MeanF1,
                f1_sd = s.StdF1,
                noise = s.Kind == "federated_dp" ? "local" : "distributed",
                collusion_epsilon = report.Results.Where(r => r.Arm == s.Arm).Max(r => r.CollusionEpsilon),
            }).ToArray(),
            ["dp_site"] = report.Summaries.Where(s => s.Kind == "federated_dp_site_dp").Select(s => new { epsilon = s.Epsilon, f1 = s.MeanF1, f1_sd = s.StdF1 }).ToArray(),
            ["public_warm_start_f1"] = warm?.MeanF1,
            // Self-training on public text: each federated arm's teacher and its student, means over seeds.
            ["self_trained"] = report.Summaries.Where(s => s.Kind == PublicDistillation.StudentKind).Select(s =>
            {
                DistillationResult[] runs = [.. report.Results.Where(r => r.Arm == s.Arm && r.Distillation is not null).Select(r => r.Distillation!)];
                return new
                {
                    teacher = runs[0].TeacherArm,
                    epsilon = s.Epsilon,
                    teacher_dev_f1 = runs.Average(d => d.TeacherDevF1),
                    teacher_test_f1 = runs.Average(d => d.TeacherTestF1),
                    student_dev_f1 = runs.Average(d => d.StudentDevF1),
                    student_test_f1 = s.MeanF1,
                    student_test_f1_sd = s.StdF1,
                };
            }).ToArray(),
            ["seeds"] = report.Results.Select(r => r.Seed).Distinct().Count(),
            ["results"] = report.JsonPath,
            ["chart"] = report.ChartPath,
        };
    }
}
