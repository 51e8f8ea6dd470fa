using System.CommandLine;
using SecureFed.Cli.Demo;
using SecureFed.Experiments;
using SecureFed.PrivacyAudit;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed privacy audit</c>: parses the options and hands them to <see cref="PrivacyAuditRunner"/>.</summary>
internal static class PrivacyAuditCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "CoNLL corpus folder (train.tsv, dev.tsv, test.tsv); default: the demo's data/ncbi-disease." };
        var sites = new Option<int>("--sites") { Description = "Number of sites (site-1 is audited).", DefaultValueFactory = _ => 3 };
        var epsilon = new Option<string>("--epsilon") { Description = "Patient-level ε of the DP arms, comma-separated, each at least 0.01 (below it the DP-SGD noise drowns every gradient; δ is set apart at 1e-5); 'none' runs only the no-DP arm.", DefaultValueFactory = _ => "8,3" };
        var noNoDp = new Option<bool>("--skip-no-dp") { Description = "Do not run the arm without DP (the power check)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the split, model and canaries.", DefaultValueFactory = _ => 1 };
        var config = new Option<string>("--config") { Description = "Model size: tiny or default.", DefaultValueFactory = _ => "tiny" };
        var output = new Option<string>("--out") { Description = "Output folder for privacy-audit.json and the PNGs (must not exist or be empty: earlier results are never overwritten).", DefaultValueFactory = _ => "privacy-audit-out" };
        var json = new Option<bool>("--json") { Description = "Print the summary as one JSON object on the last line." };
        var rounds = new Option<int>("--rounds") { Description = "Federated rounds.", DefaultValueFactory = _ => 10 };
        var maxSentences = new Option<int>("--max-sentences") { Description = "Cap on training sentences (0 = all).", DefaultValueFactory = _ => 0 };
        var maxEval = new Option<int>("--max-eval-sentences") { Description = "Cap on dev and test sentences (0 = all).", DefaultValueFactory = _ => 0 };
        var delta = new Option<double>("--delta") { Description = "δ of the patient-level guarantee and of the lower bounds.", DefaultValueFactory = _ => 1e-5 };
        var canaries = new Option<int>("--canaries") { Description = "k, secret canaries whose exposure is measured.", DefaultValueFactory = _ => 10 };
        var repeats = new Option<int>("--repeats") { Description = "r, insertions of each secret canary into site-1's data.", DefaultValueFactory = _ => 10 };
        var candidates = new Option<int>("--candidates") { Description = "n, never-inserted candidates each canary is ranked against.", DefaultValueFactory = _ => 2000 };
        var auditCanaries = new Option<int>("--audit-canaries") { Description = "m, canaries each inserted once with probability 1/2 (the ε lower bound).", DefaultValueFactory = _ => 200 };
        var auditSentences = new Option<int>("--audit-sentences") { Description = "Site-1 sentences each kept with probability 1/2 (membership inference).", DefaultValueFactory = _ => 400 };
        var groupCanaries = new Option<int>("--group-canaries") { Description = "m_g, canaries each inserted --group-size times (all copies or none) with probability 1/2 (the ε lower bound for a group).", DefaultValueFactory = _ => 40 };
        var groupSize = new Option<int>("--group-size") { Description = "r_g, copies of each included group canary: the group the second bound is for (compared with the group-privacy ε).", DefaultValueFactory = _ => 10 };
        var reference = new Option<string>("--reference") { Description = "Reference model of the calibrated score: without-site (each arm trained again without site-1) or initial (the arms' initial model, cheaper).", DefaultValueFactory = _ => "without-site" };
        var recipe = new TrainingRecipeOptions();
        var threads = new Option<int>("--threads") { Description = "Torch threads (0 = auto).", DefaultValueFactory = _ => 0 };

        var command = new Command("audit", "Empirical privacy test of the fused model: canary exposure, membership inference (AUC, TPR at 1% FPR) and the one-run ε lower bound (Steinke et al. 2023), per arm (no DP, each ε), next to the accountant's ε. Lower bounds on leakage, never a proof of privacy.");
        foreach (Option o in new Option[] { data, sites, epsilon, noNoDp, seed, config, output, json, rounds, maxSentences, maxEval, delta, canaries, repeats, candidates, auditCanaries, auditSentences, groupCanaries, groupSize, reference, threads }.Concat(recipe.All))
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            TextWriter stdout = parse.InvocationConfiguration.Output;
            TextWriter stderr = parse.InvocationConfiguration.Error ?? Console.Error;
            string? dataDirectory = parse.GetValue(data) is string d ? InputPaths.RequireFolder(d, "--data", InputPaths.Corpus) : null;
            if (dataDirectory is null)
            {
                dataDirectory = DemoCorpus.Locate(out IReadOnlyList<string> searched)
                    ?? throw new UsageException($"no --data given and the demo corpus {DemoCorpus.RelativeDirectory} was not found (looked in {string.Join(", ", searched)})");
            }

            string eps = parse.GetValue(epsilon)!;
            var options = new PrivacyAuditOptions
            {
                Experiment = recipe.Apply(parse, new ExperimentOptions
                {
                    DataDirectory = dataDirectory,
                    Sites = parse.GetValue(sites),
                    ConfigName = parse.GetValue(config)!,
                    Rounds = parse.GetValue(rounds),
                    MaxTrainSentences = parse.GetValue(maxSentences),
                    MaxEvalSentences = parse.GetValue(maxEval),
                    Delta = parse.GetValue(delta),
                    Threads = parse.GetValue(threads),
                }),
                Epsilons = eps is "none" or "" ? [] : NumberLists.Parse(eps, "--epsilon", "comma-separated numbers or 'none'"),
                IncludeNoDp = !parse.GetValue(noNoDp),
                Seed = parse.GetValue(seed),
                Canaries = parse.GetValue(canaries),
                Repeats = parse.GetValue(repeats),
                Candidates = parse.GetValue(candidates),
                AuditCanaries = parse.GetValue(auditCanaries),
                AuditSentences = parse.GetValue(auditSentences),
                GroupCanaries = parse.GetValue(groupCanaries),
                GroupSize = parse.GetValue(groupSize),
                Reference = parse.GetValue(reference) switch
                {
                    "without-site" => AuditReference.WithoutSite,
                    "initial" => AuditReference.Initial,
                    var other => throw new UsageException($"--reference must be without-site or initial, not '{other}'"),
                },
                OutputDirectory = parse.GetValue(output)!,
            };
            OutputPaths.RequireNewFolder(options.OutputDirectory, "--out", "earlier results");
            OutputPaths.RequireWritableFolder(options.OutputDirectory, "--out"); // now, not after the arms have trained
            PrivacyAuditRunner runner;
            try
            {
                runner = new PrivacyAuditRunner(options, line => stderr.WriteLine(line));
            }
            catch (ArgumentException ex)
            {
                throw new UsageException(ex.Message);
            }

            PrivacyAuditReport report;
            try
            {
                report = runner.Run(ct);
            }
            catch (ArgumentException ex)
            {
                // e.g. an ε the accountant cannot reach with these steps: a clear error, not a crash.
                throw new InvalidOperationException(ex.Message, ex);
            }

            stdout.Write(PrivacyAuditTable.Format(report));
            stdout.WriteLine($"results: {report.JsonPath}; charts: {report.RocChartPath}, {report.ExposureChartPath}");
            if (parse.GetValue(json))
            {
                stdout.WriteLine(PrivacyAuditJson.SummaryLine(report));
            }

            return Task.FromResult(report.Arms.Any(a => a.BoundExceedsClaim) ? CliApp.ExitFailure : CliApp.ExitOk);
        });
        return command;
    }
}
