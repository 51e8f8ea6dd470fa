using System.Collections.Concurrent;
using System.Globalization;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Experiments;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Tagger;
using Spectre.Console;

namespace SecureFed.Cli.Demo;

/// <summary>Settings of one demo run (from the command line).</summary>
internal sealed record DemoSettings
{
    public required string OutputDirectory { get; init; }
    /// <summary>
    /// Rounds of <c>securefed demo</c> without <c>--rounds</c>. 10 keep the whole demo, comparisons included, at about 5
    /// minutes on 2 cores (test F1 0.408 on NCBI-disease at ε = 8 with the tiny model, DP-SGD without dropout; 0.369 with
    /// it). 30 rounds with tiny-crf reached 0.407-0.434 (with dropout) but took 17 minutes with the comparisons, which
    /// train with the same local budget (docs/utility.md "Session 16"). Since session 35 the default model is
    /// tiny-crf-encoder (docs/utility.md "Session 35").
    /// </summary>
    public const int DefaultRounds = 10;

    public int Rounds { get; init; } = DefaultRounds;
    public int Sites { get; init; } = 3;
    public double Epsilon { get; init; } = 8.0;
    public double Delta { get; init; } = 1e-5;
    public ProtocolStage? DropAt { get; init; }
    public long DropRound { get; init; } = 2;
    /// <summary>A CoNLL corpus folder (train.tsv, dev.tsv, test.tsv) split across the sites; null = the synthetic corpus.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>How the output names the corpus in <see cref="DataDirectory"/> (e.g. "NCBI-disease").</summary>
    public string? CorpusLabel { get; init; }

    /// <summary>Training sentences each site keeps from a real corpus (a seeded random subsample); 0 = all of its share.</summary>
    public int TrainSentencesPerSite { get; init; }

    /// <summary>Whether to end with "was it worth it" (each site alone, the federation without DP).</summary>
    public bool CompareBaselines { get; init; } = true;
    /// <summary>
    /// The model of <c>securefed demo</c> without <c>--model</c>: tiny-crf-encoder, the tiny tagger with a CRF head fed the
    /// frozen public encoder's token vectors, since session 35: test F1 0.657-0.664 at ε = 8 on NCBI-disease against
    /// 0.408-0.423 for tiny (docs/utility.md "Session 35"). Without the encoder tiny had done better than tiny-crf at 10
    /// rounds from a random model (0.369 against 0.305, one run each; "Session 16").
    /// </summary>
    public const string DefaultModel = "tiny-crf-encoder-mean";

    public string Model { get; init; } = DefaultModel;
    public int SentencesPerSite { get; init; } = 1000;
    /// <summary>
    /// DP-SGD local epochs per round the aggregator announces: each site takes epochs × round(1/q) steps, at most
    /// <see cref="StepsPerRound"/> (the product recipe's <see cref="TrainingRecipe.AnnouncedLocalEpochs"/>, 7 at q 0.3:
    /// 21 steps, capped at 20). The comparisons without DP train their own budget (<see cref="DemoRunner.ComparisonBudget"/>).
    /// </summary>
    public int LocalEpochs { get; init; } = TrainingRecipe.Product.AnnouncedLocalEpochs;
    public double SampleRate { get; init; } = TrainingRecipe.Product.SampleRate;
    public double SiteNoiseMultiplier { get; init; } = 0.0005;
    public double LearningRate { get; init; } = TrainingRecipe.Product.DpLearningRate;
    public TaggerOptimizer Optimizer { get; init; } = TrainingRecipe.Product.DpOptimizer;
    public double GradClip { get; init; } = TrainingRecipe.Product.GradClip;
    public double L2Clip { get; init; } = 30.0;

    /// <summary>
    /// With one DP-SGD step per round (split noise or <see cref="StepsPerRound"/> = 1) and no <c>--update-clip</c>: S is set just above the norm a site's one noisy step reaches
    /// (<see cref="DemoRunner.SplitNoiseUpdateClip"/>) instead of <see cref="L2Clip"/>, so the site-level noise, which
    /// scales with S, costs little while S still never binds.
    /// </summary>
    public bool AutoUpdateClip { get; init; }
    public int Seed { get; init; } = 7;

    /// <summary>A public CoNLL corpus folder (not a site's data) the initial model is trained on before round 1; null = random initial model.</summary>
    public string? PublicDataDirectory { get; init; }

    /// <summary>Epochs of the public warm start.</summary>
    public int PublicEpochs { get; init; } = 10;

    /// <summary>
    /// The aggregator announces layer-wise DP-SGD factors computed from the public data at the public model
    /// (<c>--layer-scales</c>; needs <see cref="PublicDataDirectory"/>).
    /// </summary>
    public bool LayerScales { get; init; }

    /// <summary>DP-SGD keeps the embedding tables of the initial model fixed at every site.</summary>
    public bool FreezeEmbeddings { get; init; }

    /// <summary>DP-SGD keeps the model's dropout in each example's gradient (<c>--dp-dropout</c>; the agents' <c>DpDropout</c>).</summary>
    public bool DpDropout { get; init; } = !TrainingRecipe.Product.DpNoDropout;

    /// <summary>
    /// Split patient-level noise (<c>--patient-noise distributed</c>; docs/PROTOCOL.md "Split patient-level noise"): one
    /// DP-SGD step per round, each site adds σ/√k with k = min(sites, t), and the agents opt in with a collusion budget.
    /// </summary>
    public bool DistributedPatientNoise { get; init; }

    /// <summary>
    /// Cap of DP-SGD steps each site takes per round (<c>--steps-per-round</c>, the aggregator's <c>DpSgdMaxSteps</c>):
    /// the product recipe's 20 (7 local epochs at q 0.3 are 21 steps); 0 = <see cref="LocalEpochs"/> × round(1/q). Split
    /// noise always takes 1.
    /// </summary>
    public int StepsPerRound { get; init; } = TrainingRecipe.Product.DpStepsPerRound;

    /// <summary>The aggregator's update rule (<c>--server-optimizer</c>, <c>--server-lr</c>, ...): its Server* settings.</summary>
    public ServerOptimizerOptions ServerRule { get; init; } = new();

    /// <summary>
    /// The aggregator's training deadline (its TrainingTimeoutSeconds): long enough for the default model's local epochs
    /// on 2 cores. A round goes on without a site that has not advertised its keys this long after it opened.
    /// </summary>
    public int TrainingTimeoutSeconds { get; init; } = 900;

    /// <summary>How often each site reports, while it trains, that it is still at work (the aggregator's ProgressIntervalSeconds).</summary>
    public int ProgressIntervalSeconds { get; init; } = Aggregator.AggregatorOptions.DefaultProgressIntervalSeconds;

    /// <summary>
    /// After how long without a report a site that reported is taken as gone while the others wait for its keys (the
    /// aggregator's ProgressSilenceSeconds, at least 3 × <see cref="ProgressIntervalSeconds"/>).
    /// </summary>
    public int ProgressSilenceSeconds { get; init; } = Aggregator.AggregatorOptions.DefaultProgressSilenceSeconds;

    /// <summary>With a site dropped before advertising its keys: how often a line says what the round waits for.</summary>
    public TimeSpan DeadlineWaitLineInterval { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Test hook (no command-line option): wraps each site's trainer, e.g. to make local training throw at chosen
    /// sites and check how the demo reports a failed host.
    /// </summary>
    internal Func<string, ILocalTrainer, ILocalTrainer>? TrainerHook { get; init; }
}

/// <summary>Per-round figures collected for the final table and chart.</summary>
internal sealed record DemoRound(long Round, string Outcome, IReadOnlyList<string> Contributors, double DevF1, double RecordEpsilon, double SiteEpsilon, IReadOnlyDictionary<string, long> BytesPerSite)
{
    /// <summary>Patient-level ε each site had spent after this round (sites that sent no report are missing).</summary>
    public IReadOnlyDictionary<string, double> RecordEpsilonPerSite { get; init; } = new Dictionary<string, double>();

    /// <summary>
    /// Federated evaluation: the federation's F1 of the model this round started from, decoded by the aggregator from
    /// the secure sum of the sites' own dev counts (NaN when none was published).
    /// </summary>
    public double FederatedF1 { get; init; } = double.NaN;
}

/// <summary>
/// <c>securefed demo</c>: a real federation on 127.0.0.1 (provisioning, mTLS gRPC aggregator, one agent host per
/// hospital) training the clinical tagger with secure aggregation and both DP layers, then the auditor's view.
/// </summary>
internal sealed class DemoRunner(DemoSettings settings, IAnsiConsole console)
{
    private static readonly string[] DefaultSites = ["site-de", "site-fr", "site-jp"];
    private readonly TaskCompletionSource<string> _fatal = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<string, string> _failedSites = new(StringComparer.Ordinal);
    private CancellationToken _cancellation;

    /// <summary>The aggregator's split-noise settings (none with local noise).</summary>
    private static IEnumerable<KeyValuePair<string, string>> SplitNoiseAggregatorSettings(int shares) => shares < 2 ? [] :
    [
        KeyValuePair.Create("DpSgdNoiseShares", shares.ToString(CultureInfo.InvariantCulture)),
        KeyValuePair.Create("DpSgdMaxSteps", "1"),
    ];

    /// <summary>The aggregator's step cap with local noise (<c>--steps-per-round</c>; none when not given).</summary>
    private IEnumerable<KeyValuePair<string, string>> StepCapSettings() => settings.DistributedPatientNoise || settings.StepsPerRound < 1 ? [] :
    [
        KeyValuePair.Create("DpSgdMaxSteps", settings.StepsPerRound.ToString(CultureInfo.InvariantCulture)),
    ];

    /// <summary>
    /// How long the demo waits for its federation before it gives up: generous for the slowest model and machine
    /// (an hour plus 10 minutes a round), so only a federation that stopped making progress reaches it.
    /// </summary>
    internal static TimeSpan FederationTimeout(int rounds) => TimeSpan.FromMinutes(60 + (10.0 * rounds));

    /// <summary>The DP-SGD noise multiplier σ that brings every site to <see cref="DemoSettings.Epsilon"/> after <see cref="TotalSteps"/> steps (the RDP accountant).</summary>
    internal static double PatientNoiseMultiplier(DemoSettings settings) =>
        NoiseCalibration.NoiseMultiplierFor(settings.Epsilon, settings.Delta, settings.SampleRate, TotalSteps(settings));

    /// <summary>DP-SGD steps each site takes over the whole run (what the noise is calibrated to).</summary>
    internal static long TotalSteps(DemoSettings settings) => settings.DistributedPatientNoise ? settings.Rounds
        : settings.Rounds * DpSgdOptions.StepsPerRound(settings.LocalEpochs, settings.SampleRate, settings.StepsPerRound);

    /// <summary>The aggregator's update rule settings (none for the default, FedAvg with η = 1: its config stays as it was).</summary>
    private static IEnumerable<KeyValuePair<string, string>> ServerRuleSettings(ServerOptimizerOptions rule) =>
        rule.Kind == ServerOptimizerKind.Average && rule.LearningRate == 1.0 ? [] :
        [
            KeyValuePair.Create("ServerOptimizer", ServerUpdateRule.KindName(rule.Kind)),
            KeyValuePair.Create("ServerLearningRate", rule.LearningRate.ToString("R", CultureInfo.InvariantCulture)),
            KeyValuePair.Create("ServerBeta1", rule.Beta1.ToString("R", CultureInfo.InvariantCulture)),
            KeyValuePair.Create("ServerBeta2", rule.Beta2.ToString("R", CultureInfo.InvariantCulture)),
            KeyValuePair.Create("ServerTau", rule.Tau.ToString("R", CultureInfo.InvariantCulture)),
        ];

    /// <summary>The agents' opt-in with the collusion budget the demo planned (none with local noise).</summary>
    private IEnumerable<KeyValuePair<string, string>> SplitNoiseAgentSettings(double collusionEpsilon) => !settings.DistributedPatientNoise ? [] :
    [
        KeyValuePair.Create("AcceptSplitPatientNoise", "true"),
        KeyValuePair.Create("MaxCollusionEpsilon", (collusionEpsilon * 1.0001).ToString("R", CultureInfo.InvariantCulture)),
        KeyValuePair.Create("Optimizer", settings.Optimizer == TaggerOptimizer.Sgd ? "sgd" : "adam"),
    ];

    /// <summary>The demo's results in its output folder, in the order they are written.</summary>
    internal static readonly string[] ResultFiles = ["fused-model", "rounds.png", "audit-report.html"];

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await RunCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            console.MarkupLine($"[yellow bold]Demo cancelled[/] ({CliApp.StopSignalName}): {Markup.Escape(CancelledFolderText(settings.OutputDirectory))}");
            return CliApp.ExitCancelled;
        }
    }

    /// <summary>What a cancelled demo left in <paramref name="directory"/>: which results were written and which were not.</summary>
    internal static string CancelledFolderText(string directory)
    {
        string full = Path.GetFullPath(directory);
        if (!Directory.Exists(full))
        {
            return "nothing was written.";
        }

        string[] written = [.. ResultFiles.Where(f => File.Exists(Path.Combine(full, f)) || Directory.Exists(Path.Combine(full, f)))];
        string[] missing = [.. ResultFiles.Except(written)];
        return missing.Length == 0
            ? $"every result is in {full} ({string.Join(", ", written)})."
            : $"the output folder {full} is incomplete: {(written.Length == 0 ? "no result was written" : "it holds " + string.Join(", ", written))}; not written: {string.Join(", ", missing)} (logs/ and the federation's files are there as far as the run got).";
    }

    private async Task<int> RunCoreAsync(CancellationToken cancellationToken)
    {
        _cancellation = cancellationToken;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        string[] sites = SiteNames(settings.Sites);

        // Data: each site keeps its own partition; nothing below ever hands one site's sentences to another. Read before the
        // banner, so that a corpus refused names no output folder (none is made for it).
        (Dictionary<string, IReadOnlyList<Sentence>> train, Dictionary<string, IReadOnlyList<Sentence>> dev, IReadOnlyList<Sentence> pooledDev, IReadOnlyList<Sentence> test, IReadOnlyList<string> types, string source) = LoadData(sites);
        console.MarkupLine($"[bold]SecureFed demo[/]: {sites.Length} hospitals ({string.Join(", ", sites)}), {settings.Rounds} round{(settings.Rounds == 1 ? "" : "s")}, output in [blue]{Markup.Escape(Path.GetFullPath(settings.OutputDirectory))}[/]");
        console.MarkupLine(CultureInfo.InvariantCulture, $"Data: [green]{Markup.Escape(source)}[/]; {train.Values.Sum(t => t.Count):N0} training sentences across the sites ({string.Join(", ", sites.Select(s => $"{s} {train[s].Count:N0}"))}), {pooledDev.Count:N0} dev and {test.Count:N0} test sentences held out.");
        if (settings.DataDirectory is not null && settings.PublicDataDirectory is null)
        {
            // Measured (docs/utility.md "Sessions 16, 20, 35, 38, 41, 42 and 43"): from a random model at ε = 8 the tiny model reached 0.408-0.423, the tiny model with the CRF head and the frozen public encoder's last layer 0.657-0.664 in the demo; with the mean of its six layers and the product's recipe of session 42 (q 0.3, 20 steps a round, lr 2, C 2) 0.721-0.741 in the demo (two runs), 0.727 in the experiment (2 seeds); with --patient-noise distributed 0.747 in the demo, 0.736 in the experiment (2 seeds).
            console.MarkupLine("[yellow]Note[/]: DP-SGD from a random model is limited by its few, noisy steps; the frozen public encoder (all-MiniLM-L6-v2, the mean of its six layers: --model tiny-crf-encoder-mean, the default) is public pretraining that needs no public annotated corpus: on NCBI-disease at ε = 8 the defaults reached test F1 0.721-0.741 in this demo and 0.727 in the experiment (2 seeds; its last layer alone 0.657-0.664, the tiny model without it 0.408-0.423), the same model federated without DP 0.816-0.823. With --patient-noise distributed, if the consortium accepts a weaker ε against collusion (12.6 with 3 sites), 0.747 in this demo and 0.736 in the experiment. A public annotated corpus (never picked up by itself: your choice) helped the model without the encoder, with the same local noise: --public-data DIR --layer-scales --public-epochs 20 --sample-rate 0.3 --steps-per-round 1 --rounds 200 --model tiny-crf (BC5CDR for NCBI-disease: 0.649 in this demo; docs/utility.md, Sessions 12, 16, 35, 42 and 43).");
        }


        TaggerConfig config = DemoModel(settings.Model);
        var spec = new Agent.ModelSpec(config, types);
        (float[] initial, float[] layerScales) = settings.PublicDataDirectory is string publicDir
            ? PublicWarmStart(spec, publicDir, test, cancellationToken)
            : (TaggerLocalTrainer.InitialParameters(spec, settings.Seed), []);
        // Patient-level DP: calibrate DP-SGD noise so that every site ends at the requested epsilon after all rounds.
        // Split noise: one step per round (FedSGD) and k = min(sites, t) shares, so every sum of ≥ t sites carries σ.
        int shares = settings.DistributedPatientNoise ? Math.Min(sites.Length, GraphPlanner.Plan(sites.Length).Threshold) : 0;
        long totalSteps = TotalSteps(settings);
        double sigma = PatientNoiseMultiplier(settings);
        double collusionEpsilon = double.NaN;
        if (settings.DistributedPatientNoise)
        {
            var collusion = new RdpAccountant(RdpOrders.Opacus);
            collusion.AddSubsampledGaussian(settings.SampleRate, sigma / Math.Sqrt(shares), totalSteps);
            collusionEpsilon = collusion.GetPrivacySpent(settings.Delta).Epsilon;
        }

        int smallestSite = train.Values.Min(t => t.Count);
        double l2Clip = settings.L2Clip;
        bool oneStep = settings.DistributedPatientNoise || settings.StepsPerRound == 1;
        if (oneStep && settings.AutoUpdateClip)
        {
            l2Clip = SplitNoiseUpdateClip(settings.LearningRate, sigma / Math.Sqrt(Math.Max(1, shares)), settings.GradClip, initial.Length, settings.SampleRate, smallestSite);
        }

        int weightCap = Math.Max(1, train.Values.Max(t => t.Count));
        if (UpdatesFitProblem(initial.Length, l2Clip, oneStep && settings.AutoUpdateClip, sites.Length, settings.SiteNoiseMultiplier, weightCap, types) is string noRoom)
        {
            throw new UsageException(noRoom);
        }

        ReserveOutputDirectory(settings.OutputDirectory); // only once the corpus and the settings are known to fit: a refused run leaves no folder behind

        if (SmallBatchWarning(settings.SampleRate, smallestSite) is string smallBatch)
        {
            console.MarkupLine($"[yellow]Warning:[/] {Markup.Escape(smallBatch)}");
        }

        console.MarkupLine(CultureInfo.InvariantCulture, $"Model: {DemoModelDescription(settings.Model)}, {initial.Length:N0} parameters (hashed features, no shared vocabulary). Patient-level DP-SGD: q={settings.SampleRate}, σ={sigma:F3} for ε={settings.Epsilon} at δ={settings.Delta:G2} after {totalSteps} steps ({totalSteps / Math.Max(1, settings.Rounds)} per round), {settings.Optimizer} lr {settings.LearningRate}, per-example clip C={settings.GradClip}.");
        if (settings.DistributedPatientNoise)
        {
            console.MarkupLine(CultureInfo.InvariantCulture, $"Patient-level noise [yellow]distributed[/]: one DP-SGD step per round, each site adds σ/√{shares} = {sigma / Math.Sqrt(shares):F3}; ε={settings.Epsilon} holds against the aggregator while secure aggregation holds (it only sees sums of ≥ t sites); if the aggregator and all other sites collude, a site keeps [yellow]collusion ε={EpsilonText.Format(collusionEpsilon)}[/] (each agent's MaxCollusionEpsilon). The sum is exactly one DP-SGD step only where every site's step |Δ| (below) stays within the update clip S={l2Clip:G4} (--update-clip{(settings.AutoUpdateClip ? "; by default just above a step's expected norm, so that the site-level noise, which scales with S, stays small" : "")}; small --train-per-site makes the noisy step large).");
        }

        console.MarkupLine(CultureInfo.InvariantCulture, $"Site-level DP: updates clipped to S={l2Clip:G4}, distributed discrete Gaussian z={settings.SiteNoiseMultiplier}. [yellow]With {sites.Length} hospitals the site-level ε printed below is very large, i.e. no meaningful guarantee for a whole hospital[/]: a single-digit site-level ε needs z around 1, and that much noise is only affordable when it is averaged over hundreds of hospitals. The guarantee that matters here is the patient-level DP-SGD ε above.");
        ServerOptimizerOptions rule = settings.ServerRule;
        console.MarkupLine(CultureInfo.InvariantCulture, rule.Kind switch
        {
            ServerOptimizerKind.Adam => $"Aggregator update rule: adam on the averaged update (η {rule.LearningRate:G4}, β1 {rule.Beta1:G4}, β2 {rule.Beta2:G4}, τ {rule.Tau:G4}; post-processing of the sum, no privacy cost).",
            ServerOptimizerKind.Momentum => $"Aggregator update rule: momentum on the averaged update (η {rule.LearningRate:G4}, β1 {rule.Beta1:G4}; post-processing of the sum, no privacy cost).",
            _ => $"Aggregator update rule: average (FedAvg, η {rule.LearningRate:G4}).",
        });

        var options = new LocalFederationOptions
        {
            OutputDirectory = settings.OutputDirectory,
            Sites = sites,
            Rounds = settings.Rounds,
            Aggregator = new Dictionary<string, string>
            {
                // Split noise: the whole cohort, so that every round's threshold (and the one the aggregator validates at start-up) is at least k.
                ["MinSites"] = (settings.DistributedPatientNoise ? sites.Length : Math.Min(2, sites.Length)).ToString(CultureInfo.InvariantCulture),
                ["TrainingTimeoutSeconds"] = settings.TrainingTimeoutSeconds.ToString(CultureInfo.InvariantCulture),
                ["ProgressIntervalSeconds"] = settings.ProgressIntervalSeconds.ToString(CultureInfo.InvariantCulture),
                ["ProgressSilenceSeconds"] = settings.ProgressSilenceSeconds.ToString(CultureInfo.InvariantCulture),
                ["StageTimeoutSeconds"] = "20",
                ["JoinGraceSeconds"] = "2",
                ["AdminListen"] = "http://127.0.0.1:0", // the operator console and /metrics on a free loopback port
                ["EpsilonBudget"] = "1e12",
                ["Delta"] = settings.Delta.ToString("R", CultureInfo.InvariantCulture),
                ["L2Clip"] = l2Clip.ToString("R", CultureInfo.InvariantCulture),
                ["SiteNoiseMultiplier"] = settings.SiteNoiseMultiplier.ToString("R", CultureInfo.InvariantCulture),
                ["DpSgdNoiseMultiplier"] = sigma.ToString("R", CultureInfo.InvariantCulture),
                ["DpSgdMaxGradNorm"] = settings.GradClip.ToString("R", CultureInfo.InvariantCulture),
                ["DpSgdSampleRate"] = settings.SampleRate.ToString("R", CultureInfo.InvariantCulture),
                ["LocalEpochs"] = settings.LocalEpochs.ToString(CultureInfo.InvariantCulture),
                // FedAvg weights are min(examples, cap)/cap: a cap at the largest site keeps ω = 1 there, so the
                // summed site noise is not magnified when the server divides by Σω (sensitivity stays S either way).
                ["WeightCap"] = weightCap.ToString(CultureInfo.InvariantCulture),
            }.Concat(SplitNoiseAggregatorSettings(shares))
                .Concat(StepCapSettings())
                .Concat(ServerRuleSettings(settings.ServerRule))
                .Concat(layerScales.Select((f, i) => KeyValuePair.Create(string.Create(CultureInfo.InvariantCulture, $"DpSgdLayerScales:{i}"), f.ToString("R", CultureInfo.InvariantCulture))))
                .Concat(types.Select((t, i) => KeyValuePair.Create(string.Create(CultureInfo.InvariantCulture, $"EvaluationEntityTypes:{i}"), t))).ToDictionary(),
            Agent = new Dictionary<string, string>
            {
                ["EpsilonBudget"] = (settings.Epsilon * 1.0001).ToString("R", CultureInfo.InvariantCulture),
                ["SiteEpsilonBudget"] = "1e12",
                ["Delta"] = settings.Delta.ToString("R", CultureInfo.InvariantCulture),
                ["MinDpSgdNoiseMultiplier"] = Math.Min(0.5, sigma).ToString("R", CultureInfo.InvariantCulture),
                ["MinSiteNoiseMultiplier"] = Math.Min(0.1, settings.SiteNoiseMultiplier).ToString("R", CultureInfo.InvariantCulture),
                ["LearningRate"] = settings.LearningRate.ToString("R", CultureInfo.InvariantCulture),
                ["CallTimeoutSeconds"] = "30",
            }.Concat(SplitNoiseAgentSettings(collusionEpsilon)).ToDictionary(),
            Drop = settings.DropAt is { } stage ? (sites[^1], settings.DropRound, stage) : null,
            LogDirectory = Path.Combine(settings.OutputDirectory, "logs"),
            LogLevel = Microsoft.Extensions.Logging.LogLevel.Information,
        };
        // A round completes with at least t of the cohort (and the aggregator opens none with fewer than MinSites).
        int required = Math.Max(Math.Min(2, sites.Length), GraphPlanner.Plan(sites.Length).Threshold);

        var reports = new ConcurrentQueue<AgentRoundReport>();
        var progress = new ConcurrentQueue<RoundProgress>();
        var trainers = new List<TaggerLocalTrainer>();
        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, spec.Sha256, cancellationToken).ConfigureAwait(false);
        console.MarkupLine($"Aggregator: gRPC over mTLS at [blue]{federation.Address}[/] (federation CA and kits in {Markup.Escape(Path.Combine(settings.OutputDirectory, "federation"))}).");
        if (AggregatorHost.AdminAddress(federation.Aggregator) is { } admin)
        {
            string token = federation.Provisioned.OperatorTokenPath;
            Uri metrics = new(admin, "metrics");
            console.MarkupLine($"Operator console: [blue]{admin}[/] (log in with the token in {Markup.Escape(token)}); metrics: [blue]{metrics}[/], both while the demo runs:");
            WriteCommand(console, $"curl -H \"Authorization: Bearer $(cat {ShellQuote(token)})\" {metrics}");
        }
        if (settings.DropAt is { } dropStage)
        {
            console.MarkupLine($"Fault injection: [yellow]{sites[^1]}[/] goes silent before [yellow]{dropStage}[/] in round {settings.DropRound}.");
            if (dropStage == ProtocolStage.AdvertiseKeys)
            {
                // While training, each site reports every few seconds that it is still at work: a site whose reports stop is
                // left out after the silence, not at the training deadline (docs/PROTOCOL.md "Training progress").
                console.MarkupLine(CultureInfo.InvariantCulture, $"  [grey]While they train, the sites say every {settings.ProgressIntervalSeconds} s that they are still at work: round {settings.DropRound} goes on without the silent site once it has been silent for {settings.ProgressSilenceSeconds} s (the aggregator's ProgressSilenceSeconds), at the latest at the training deadline, {settings.TrainingTimeoutSeconds} s after the round opened (TrainingTimeoutSeconds; a site that never reports is waited for until then). A line every {settings.DeadlineWaitLineInterval.TotalSeconds:F0} s says how long the round has waited. The later stages notice a silent site within seconds.[/]");
            }
        }

        var roundMovedOn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var training = new ConcurrentDictionary<long, TaskCompletionSource>();
        federation.Coordinator.Progress += (_, p) =>
        {
            progress.Enqueue(p);
            bool deadlineWait = settings.DropAt == ProtocolStage.AdvertiseKeys && p.Round == settings.DropRound;
            if (deadlineWait)
            {
                if (p.Stage == "opened")
                {
                    _ = PrintDeadlineWaitAsync(p.Round, roundMovedOn.Task, cancellationToken);
                }
                else
                {
                    roundMovedOn.TrySetResult(); // the round moved on (or ended): no more waiting lines
                }
            }
            else if (p.Stage == "opened")
            {
                var movedOn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                if (training.TryAdd(p.Round, movedOn))
                {
                    _ = PrintTrainingAsync(p.Round, movedOn.Task, cancellationToken);
                }
            }

            if (p.Stage != "opened" && training.TryRemove(p.Round, out TaskCompletionSource? trained))
            {
                trained.TrySetResult(); // its keys stage closed (or the round ended): no more training lines
            }

            string dropped = p.Dropped.Count > 0 ? $" [red]dropped: {Markup.Escape(string.Join(", ", p.Dropped))}[/]" : "";
            console.MarkupLine(CultureInfo.InvariantCulture, $"  round {p.Round} · [cyan]{Markup.Escape(p.Stage)}[/] · {p.Participants.Count} participants · {Markup.Escape(p.Detail)}{dropped}");
        };
        await federation.StartAgentsAsync(spec, (site, agentOptions) =>
        {
            var trainer = new TaggerLocalTrainer(spec, train[site], dev[site], "auto", agentOptions.LearningRate, settings.Seed + Array.IndexOf(sites, site), settings.Optimizer)
            {
                FreezeEmbeddings = settings.FreezeEmbeddings,
                DpDropout = settings.DpDropout,
            };
            lock (trainers)
            {
                trainers.Add(trainer);
            }

            return settings.TrainerHook is { } hook ? hook(site, trainer) : trainer;
        }, worker =>
        {
            worker.Failed += (_, error) => OnHostFailed(federation, worker.SiteName, error, sites.Length, required);
            worker.RoundFinished += (_, r) => OnRoundFinished(r, reports, sites.Length, required);
        }, cancellationToken).ConfigureAwait(false);
        Task aggregatorWatch = federation.Coordinator.Finished.ContinueWith(
            _ =>
            {
                if (federation.Coordinator.Failure is { } failure)
                {
                    OnHostFailed(federation, "aggregator", failure, sites.Length, required);
                }
            },
            CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);

        Task finished = federation.WaitAsync(FederationTimeout(settings.Rounds), cancellationToken);
        await Task.WhenAny(finished, _fatal.Task).ConfigureAwait(false);
        roundMovedOn.TrySetResult(); // the federation ended or stopped: no waiting line after this, whichever way it returns
        foreach (TaskCompletionSource left in training.Values)
        {
            left.TrySetResult();
        }
        if (federation.Coordinator.IsFinished)
        {
            await aggregatorWatch.ConfigureAwait(false);
        }

        if (_fatal.Task.IsCompleted)
        {
            // Stop what is left at once; the trainers are not disposed here (a stopping agent may still be inside a step).
            console.MarkupLine($"[red bold]Demo stopped[/]: {Markup.Escape(await _fatal.Task.ConfigureAwait(false))}");
            await federation.StopAsync(TimeSpan.FromSeconds(3)).ConfigureAwait(false);
            return CliApp.ExitFailure;
        }

        await finished.ConfigureAwait(false);
        if (_failedSites.Count > 0)
        {
            console.MarkupLine($"[yellow]Dropped out[/]: {Markup.Escape(string.Join("; ", _failedSites.Select(kv => $"{kv.Key} ({kv.Value})")))}; the others went on without them.");
        }


        // The auditor's and the data scientist's view.
        var rounds = CollectRounds(federation, reports, progress, spec, pooledDev, sites);
        (double testF1, EvaluationResult testResult, string modelDir) = EvaluateFinal(federation, spec, test);
        PrintTable(rounds, sites, testF1, testResult);
        cancellationToken.ThrowIfCancellationRequested(); // Ctrl-C after the rounds: stop here and say what is written
        string chart = Path.Combine(settings.OutputDirectory, "rounds.png");
        DemoChart.Write(rounds, sites, settings.Epsilon, chart);
        cancellationToken.ThrowIfCancellationRequested();
        if (settings.CompareBaselines)
        {
            PrintWorthIt(spec, initial, sites, train, test, testF1, rounds, cancellationToken);
        }

        var auditDirs = new List<string> { AggregatorState.AuditDirectory(federation.AggregatorDataDirectory) };
        auditDirs.AddRange(sites.Select(s => AgentState.AuditDirectory(federation.AgentDataDirectory(s))));
        string report = Path.Combine(settings.OutputDirectory, "audit-report.html");
        cancellationToken.ThrowIfCancellationRequested();
        AuditReport.Write(auditDirs, report);
        bool allVerified = true;
        foreach (string dir in auditDirs)
        {
            AuditVerification v = AuditVerifier.Verify(dir);
            allVerified &= v.Ok;
            console.MarkupLine(v.Ok
                ? $"  audit log [green]verified[/]: {Markup.Escape(dir)} ({v.Lines} lines, {v.Checkpoints} signed checkpoints)"
                : $"  audit log [red]FAILED[/]: {Markup.Escape(dir)}: {Markup.Escape(v.FirstProblem ?? "")}");
        }

        console.MarkupLine($"Wrote: fused model [blue]{Markup.Escape(modelDir)}[/], chart [blue]{Markup.Escape(chart)}[/], audit report [blue]{Markup.Escape(report)}[/].");
        console.MarkupLine("Check the logs yourself:");
        WriteCommand(console, "securefed audit verify " + ShellQuote(auditDirs[0]));
        console.MarkupLine(CultureInfo.InvariantCulture, $"Demo finished in {clock.Elapsed.TotalSeconds:F0} s.");
        foreach (TaggerLocalTrainer t in trainers)
        {
            t.Dispose();
        }

        int completed = rounds.Count(r => r.Outcome == "completed");
        return completed > 0 && allVerified ? CliApp.ExitOk : CliApp.ExitFailure;
    }

    private void OnRoundFinished(AgentRoundReport r, ConcurrentQueue<AgentRoundReport> reports, int siteCount, int required)
    {
        reports.Enqueue(r);
        if (r.Outcome.StartsWith("failed:", StringComparison.Ordinal))
        {
            return; // reported in one line by OnHostFailed
        }

        string color = r.Completed ? "green" : "yellow";
        string trained = double.IsNaN(r.Loss) ? "" : $"; loss {r.Loss:F3}, its dev F1 of the received model {r.GlobalDevF1:F3}, |Δ| {r.UpdateNorm:F1}";
        console.MarkupLine(CultureInfo.InvariantCulture, $"  [{color}]{r.Site}[/] round {r.Round}: {Markup.Escape(r.Outcome)}{trained}, ε patient {EpsilonText.Format(r.RecordEpsilon)}, {r.BytesSent / 1024.0:N0} KiB sent");
        if (r.BudgetSpent)
        {
            OnBudgetSpent(r.Site, siteCount, required);
        }
    }

    /// <summary>A host's calls cancelled on its own side (the demo stopped it), not a failure to report.</summary>
    internal static bool IsOwnCancellation(Exception error)
        => error is OperationCanceledException
            || error is Grpc.Core.RpcException { StatusCode: Grpc.Core.StatusCode.Cancelled } rpc && rpc.Status.DebugException is OperationCanceledException
            || error.InnerException is { } inner && IsOwnCancellation(inner);

    /// <summary>
    /// A site declined because its privacy budget is spent: it can take part in no later round either (same settings, a
    /// ledger that only grows), so it counts as gone, as a failed site does; with fewer than <paramref name="required"/>
    /// sites left no round can complete and the demo stops (before, the aggregator retried the round for ever).
    /// </summary>
    private void OnBudgetSpent(string site, int siteCount, int required)
        => SiteGone(site, "its privacy budget is spent", siteCount, required,
            left => $"{site} declined: its privacy budget is spent (an earlier attempt that aborted after the sites' updates left also counts), and only {left} of {siteCount} hospitals can still take part; a round needs at least {required} (t), so the federation cannot go on. Give the sites a larger --epsilon or fewer --rounds.",
            left => $"  [yellow]{Markup.Escape(site)} leaves[/]: its privacy budget is spent; {left} of {siteCount} hospitals go on (a round needs at least {required}).");

    /// <summary>
    /// Counts <paramref name="site"/> as gone (once, with <paramref name="why"/>); with fewer than <paramref name="required"/>
    /// sites left the demo stops with <paramref name="fatal"/>'s reason, else it prints <paramref name="goesOn"/>'s line.
    /// </summary>
    private void SiteGone(string site, string why, int siteCount, int required, Func<int, string> fatal, Func<int, string> goesOn)
    {
        int left;
        lock (_failedSites)
        {
            if (!_failedSites.TryAdd(site, why))
            {
                return;
            }

            left = siteCount - _failedSites.Count;
        }

        if (left < required)
        {
            _fatal.TrySetResult(fatal(left));
        }
        else
        {
            console.MarkupLine(goesOn(left));
        }
    }

    /// <summary>
    /// One readable line per failed host (the full trace is in its log file). A failed agent is a dropout while at
    /// least <paramref name="required"/> sites are left; fewer, or a failed aggregator, stop the demo.
    /// </summary>
    private void OnHostFailed(LocalFederation federation, string host, Exception error, int siteCount, int required)
    {
        if ((_fatal.Task.IsCompleted || _cancellation.IsCancellationRequested) && IsOwnCancellation(error))
        {
            return; // the demo is stopping (Ctrl-C, or another host's failure): the host's calls were cancelled by the demo itself
        }

        string message = LocalTrainingException.FirstLine(error.Message);
        string log = federation.LogFile(host) ?? "the host's log";
        console.MarkupLine($"[red bold]✗ {Markup.Escape(host)} failed[/]: {Markup.Escape(message)} [grey](full trace in {Markup.Escape(log)})[/]");
        if (host == "aggregator")
        {
            _fatal.TrySetResult($"the aggregator failed: {message}");
            return;
        }

        SiteGone(host, message, siteCount, required,
            left => $"{host} failed and only {left} of {siteCount} hospitals are left; a round needs at least {required} (t), so the federation cannot go on.",
            left => $"  [yellow]{Markup.Escape(host)} drops out[/]; {left} of {siteCount} hospitals go on (a round needs at least {required}).");
    }

    /// <summary>
    /// The per-round table, laid out for <paramref name="width"/> columns: who was in the sum is "all n" or
    /// "all but …" (short site names), and the bytes are one column ("each" when every site sent the same).
    /// </summary>
    internal static Table RoundTable(IReadOnlyList<DemoRound> rounds, IReadOnlyList<string> sites, int width)
    {
        // Below 90 columns the outcome column goes: an aborted round says so in "in the sum" (its reason is in the log).
        bool narrow = width < 90;
        var table = new Table().Title("[bold]Rounds[/]").Border(narrow ? TableBorder.Simple : TableBorder.Rounded)
            .AddColumn(new TableColumn("round").RightAligned().NoWrap());
        if (!narrow)
        {
            table.AddColumn(new TableColumn("outcome"));
        }

        table.AddColumn(new TableColumn("in the sum"))
            .AddColumn(new TableColumn(narrow ? "fed. F1" : "federated F1").RightAligned().NoWrap())
            .AddColumn(new TableColumn("dev F1").RightAligned().NoWrap())
            .AddColumn(new TableColumn(narrow ? "ε pat." : "ε patient").RightAligned().NoWrap())
            .AddColumn(new TableColumn("ε site").RightAligned().NoWrap())
            .AddColumn(new TableColumn(narrow ? "KiB/site" : "KiB sent per site").RightAligned());
        foreach (DemoRound r in rounds)
        {
            bool aborted = r.Outcome.StartsWith("aborted", StringComparison.Ordinal);
            var cells = new List<string> { r.Round.ToString(CultureInfo.InvariantCulture) };
            if (!narrow)
            {
                cells.Add(Markup.Escape(aborted ? "aborted" : r.Outcome));
            }

            cells.Add(Markup.Escape(narrow && aborted ? "aborted" : Cohort(r.Contributors, sites)));
            cells.Add(double.IsNaN(r.FederatedF1) ? "–" : r.FederatedF1.ToString("F3", CultureInfo.InvariantCulture));
            cells.Add(double.IsNaN(r.DevF1) ? "–" : r.DevF1.ToString("F3", CultureInfo.InvariantCulture));
            cells.Add(double.IsNaN(r.RecordEpsilon) ? "–" : r.RecordEpsilon.ToString("F2", CultureInfo.InvariantCulture));
            cells.Add(double.IsNaN(r.SiteEpsilon) ? "–" : Compact(r.SiteEpsilon));
            cells.Add(Markup.Escape(Bytes(r.BytesPerSite, sites)));
            table.AddRow([.. cells]);
        }

        return table;
    }

    private static string Short(string site) => site.StartsWith("site-", StringComparison.Ordinal) ? site[5..] : site;

    private static string Cohort(IReadOnlyList<string> contributors, IReadOnlyList<string> sites)
    {
        if (contributors.Count == 0)
        {
            return "none";
        }

        string[] missing = [.. sites.Except(contributors, StringComparer.Ordinal)];
        return missing.Length == 0 ? $"all {sites.Count}"
            : missing.Length <= contributors.Count ? $"all but {string.Join(" ", missing.Select(Short))}"
            : string.Join(" ", contributors.Select(Short));
    }

    private static string Bytes(IReadOnlyDictionary<string, long> bytes, IReadOnlyList<string> sites)
    {
        long[] sent = [.. sites.Select(s => bytes.GetValueOrDefault(s))];
        if (sent.Distinct().Count() == 1)
        {
            return string.Create(CultureInfo.InvariantCulture, $"{sent[0] / 1024.0:N0} each");
        }

        return string.Create(CultureInfo.InvariantCulture, $"{sent.Min() / 1024.0:N0}–{sent.Max() / 1024.0:N0}");
    }

    private static string Compact(double value) => value < 1e4
        ? value.ToString("F2", CultureInfo.InvariantCulture)
        : value.ToString("0.0e0", CultureInfo.InvariantCulture);

    /// <summary>"Was it worth it": the fused model next to each site alone and the federation without DP (same budget).</summary>
    private void PrintWorthIt(Agent.ModelSpec spec, float[] initial, string[] sites, IReadOnlyDictionary<string, IReadOnlyList<Sentence>> train, IReadOnlyList<Sentence> test, double fusedF1, IReadOnlyList<DemoRound> rounds, CancellationToken cancellationToken)
    {
        int completed = rounds.Count(r => r.Outcome == "completed");
        (int epochs, int noDpRounds, int noDpEpochs) = ComparisonBudget(completed, settings.LocalEpochs, settings.SampleRate, settings.DistributedPatientNoise ? 1 : settings.StepsPerRound);
        console.MarkupLine(CultureInfo.InvariantCulture, $"[bold]Was it worth it?[/] Training the comparisons in this process (same model, no DP: {epochs} local epoch(s) per site in total, the federation without DP in {noDpRounds} round(s) of {noDpEpochs})…");
        var (alone, aloneTime) = DemoBaselines.Timed(() => DemoBaselines.SiteAlone(spec, sites, train, test, epochs, settings.Seed, cancellationToken));
        var (noDp, noDpTime) = DemoBaselines.Timed(() => DemoBaselines.FederatedWithoutDp(spec, initial, sites, train, test, noDpRounds, noDpEpochs, settings.Seed, cancellationToken));
        double maxEpsilon = rounds.SelectMany(r => r.RecordEpsilonPerSite.Values).DefaultIfEmpty(double.NaN).Max();
        var table = new Table().Title("[bold]Was it worth it? Test F1 on the held-out test set[/]")
            .AddColumn("model").AddColumn(new TableColumn("test F1").RightAligned()).AddColumn("privacy");
        table.AddRow("[bold]fused model (this federation)[/]", $"[bold]{fusedF1.ToString("F3", CultureInfo.InvariantCulture)}[/]",
            string.Create(CultureInfo.InvariantCulture, $"patient-level ε ≤ {EpsilonText.Format(maxEpsilon)} per site; only masked sums left"));
        foreach ((string site, double f1) in alone)
        {
            table.AddRow($"{Markup.Escape(site)} alone ({train[site].Count:N0} sentences)", f1.ToString("F3", CultureInfo.InvariantCulture), "none needed: nothing leaves the site");
        }

        table.AddRow("same federation without DP", noDp.ToString("F3", CultureInfo.InvariantCulture), "no patient-level guarantee");
        console.Write(table);
        double bestAlone = alone.Max(a => a.TestF1);
        console.MarkupLine(CultureInfo.InvariantCulture, $"Federation vs the best site alone: [bold]{fusedF1 - bestAlone:+0.000;-0.000}[/] F1; cost of privacy (without DP minus with DP): [bold]{noDp - fusedF1:+0.000;-0.000}[/] F1 for patient-level ε ≤ {EpsilonText.Format(maxEpsilon)}. [grey](comparisons took {(aloneTime + noDpTime).TotalSeconds:F0} s; site alone and no-DP local training: Adam lr 0.01, batches of 32)[/]");
    }

    /// <summary>
    /// The comparisons' budget, the product recipe's without DP (<see cref="TrainingRecipe.LocalEpochs"/>, 2 local epochs a
    /// round, as <c>experiment</c>'s arms without DP train) in the federation's <paramref name="completed"/> rounds, but
    /// never more passes over its data than each site's DP-SGD took: rounds × steps per round × q, the steps local epochs
    /// × round(1/q) as an agent takes them, at most <paramref name="stepsCap"/> when that is positive (rounded, at least 1;
    /// then in rounds of 2 epochs). With one DP-SGD step per round (FedSGD: split noise, <c>--steps-per-round 1</c>) a
    /// round is one step, so the rounds count as the product's rounds of 20 steps: 200 one-step rounds as 10. The site
    /// alone trains Epochs epochs, the federation without DP NoDpRounds rounds of NoDpEpochsPerRound. Up to session 41 the comparisons took as many epochs as DP-SGD's passes, 60 with q 0.3: 934 s
    /// in the demo and no better (each site alone 0.748-0.784 against 0.767-0.781 at 20, the federation without DP 0.818
    /// against 0.821-0.823; docs/utility.md "Session 42"). Before that one step per round counted as local epochs per
    /// round: 200 one-step rounds (20 passes) gave the comparisons 400 epochs.
    /// </summary>
    internal static (int Epochs, int NoDpRounds, int NoDpEpochsPerRound) ComparisonBudget(int completed, int localEpochs, double sampleRate, int stepsCap)
    {
        int perRound = TrainingRecipe.Product.LocalEpochs;
        long dpSteps = DpSgdOptions.StepsPerRound(localEpochs, sampleRate, stepsCap);
        double passes = Math.Max(1, completed) * dpSteps * sampleRate;
        int rounds = dpSteps == 1
            ? Math.Max(1, (int)Math.Round(completed / (double)TrainingRecipe.Product.DpStepsPerRound))
            : Math.Max(1, completed);
        if (passes >= rounds * perRound - 1e-9)
        {
            return (rounds * perRound, rounds, perRound);
        }

        int epochs = (int)Math.Max(1, Math.Round(passes));
        return epochs < perRound ? (epochs, 1, epochs) : (epochs, (int)Math.Round((double)epochs / perRound), perRound);
    }

    /// <summary>The demo's model names (<c>--model</c>).</summary>
    internal static readonly string[] ModelNames = ["tiny", "tiny-crf", "tiny-encoder", "tiny-crf-encoder", "tiny-crf-encoder-mean", "default"];

    /// <summary>
    /// The tagger of <c>--model</c>. DP-SGD adds noise to every parameter at every step, so the tiny models keep their
    /// hashed embedding tables small (fewer noised parameters, better signal-to-noise; still no vocabulary anywhere).
    /// "tiny-crf" adds a CRF head (a few transition scores): +2 points under DP-SGD after a public warm start
    /// (docs/utility.md "Sessions 11 and 12"); from a random model it did worse at 10 rounds and better at 30, one run
    /// each (docs/utility.md "Session 16").
    /// </summary>
    internal static TaggerConfig DemoModel(string name) => name switch
    {
        "tiny" => TaggerConfig.Tiny with { WordBuckets = 1024, CharNgramBuckets = 1024 },
        "tiny-crf" => TaggerConfig.TinyCrf with { WordBuckets = 1024, CharNgramBuckets = 1024 },
        "tiny-encoder" => TaggerConfig.TinyEncoder with { WordBuckets = 1024, CharNgramBuckets = 1024 },
        "tiny-crf-encoder" => TaggerConfig.TinyCrfEncoder with { WordBuckets = 1024, CharNgramBuckets = 1024 },
        "tiny-crf-encoder-mean" => TaggerConfig.TinyCrfEncoderMean with { WordBuckets = 1024, CharNgramBuckets = 1024 },
        "default" => TaggerConfig.Default,
        _ => throw new ArgumentException($"--model must be {string.Join(", ", ModelNames)}, got '{name}'.", nameof(name)),
    };

    private static string DemoModelDescription(string name) => name switch
    {
        "tiny" => "the tiny tagger (1-layer BiLSTM, small hashed tables; --model tiny-crf adds a CRF head, --model default is the full one)",
        "tiny-crf-encoder" => "the tiny tagger with a CRF head, fed the frozen public encoder all-MiniLM-L6-v2's token vectors too (1-layer BiLSTM, small hashed tables; --model tiny is the plain tiny tagger, --model default the full one)",
        "tiny-crf-encoder-mean" => "the tiny tagger with a CRF head, fed the mean of the frozen public encoder all-MiniLM-L6-v2's six layers' token vectors too (1-layer BiLSTM, small hashed tables; --model tiny-crf-encoder takes its last layer only, --model tiny is the plain tiny tagger, --model default the full one)",
        "tiny-crf" => "the tiny tagger with a CRF head (1-layer BiLSTM, small hashed tables)",
        "tiny-encoder" => "the tiny tagger fed the frozen public encoder all-MiniLM-L6-v2's token vectors too (1-layer BiLSTM, small hashed tables)",
        _ => "the default tagger",
    };

    /// <summary>
    /// Why the update clip S and the site-level noise z leave secure aggregation no room for a round of all
    /// <paramref name="sites"/> (the sum of the clipped, noised and quantized updates, and the federated evaluation's
    /// counts, must fit its 32-bit words; <see cref="FederatedAveraging.PlanRound"/>), naming the demo's options; null
    /// when they fit. Checked before anything is encoded or trained: the aggregator would refuse the same settings only
    /// at start-up, after the demo had prepared the sites (e.g. <c>--site-noise 1e300</c> or <c>--update-clip 1e308</c>).
    /// </summary>
    internal static string? UpdatesFitProblem(int parameters, double l2Clip, bool automaticClip, int sites, double siteNoise, int weightCap, IReadOnlyList<string> types)
    {
        try
        {
            _ = FederatedAveraging.PlanRound(parameters, l2Clip, sites, GraphPlanner.Plan(sites).Threshold, siteNoise, weightCap, EvaluationLayout.Create(types, new AggregatorOptions().EvaluationCountCap));
            return null;
        }
        catch (InvalidOperationException ex)
        {
            string clip = automaticClip
                ? string.Create(CultureInfo.InvariantCulture, $"the update clip S = {l2Clip:G4} (set from --lr, --grad-clip and --sample-rate for one-step rounds)")
                : string.Create(CultureInfo.InvariantCulture, $"--update-clip {l2Clip:G4}");
            return string.Create(CultureInfo.InvariantCulture,
                $"{clip} with --site-noise {siteNoise:G4} leaves secure aggregation no room for a round of {sites} sites: {ex.Message} The defaults are --update-clip 30 and --site-noise 0.0005.");
        }
    }

    /// <summary>
    /// The site clip S for split noise: a site's one step is lr·(Σ clipped gradients + noise)/(q·N). The noise part has
    /// norm lr·σ_site·C·√d/(q·N) (a χ with d degrees of freedom: within 2 % of that for d in the thousands); the gradient
    /// part is at most lr·C·|batch|/(q·N), under 1.2·lr·C unless the Poisson batch exceeds 1.2 q·N; the two are nearly
    /// orthogonal in d dimensions. S = 1.05·√((1.2·lr·C)² + (1.02·noise)²), rounded up to 0.1, so S binds only in
    /// exceptional rounds (audited as update_clipped), while the site-level noise, proportional to S, is far smaller
    /// than at the default S = 30 (measured in docs/utility.md "Session 8": 0.608 against 0.535 test F1).
    /// </summary>
    internal static double SplitNoiseUpdateClip(double learningRate, double siteNoiseMultiplier, double gradClip, int parameters, double sampleRate, int smallestSite)
    {
        double expectedBatch = sampleRate * Math.Max(1, smallestSite);
        double noise = learningRate * siteNoiseMultiplier * gradClip * Math.Sqrt(parameters) / expectedBatch;
        double signal = 1.2 * learningRate * gradClip;
        return Math.Ceiling(10 * 1.05 * Math.Sqrt((signal * signal) + (1.02 * noise * 1.02 * noise))) / 10;
    }

    internal static string[] SiteNames(int count)
    {
        if (count <= DefaultSites.Length)
        {
            return DefaultSites[..count];
        }

        return [.. DefaultSites, .. Enumerable.Range(DefaultSites.Length + 1, count - DefaultSites.Length).Select(i => $"site-{i:D2}")];
    }

    /// <summary>
    /// The public warm start: the initial model trained (no DP: public data) on every split of <paramref name="directory"/>
    /// (train.tsv, and dev.tsv and test.tsv when present: all of a public corpus is public, and the larger start is worth
    /// 5 F1 points under DP, docs/utility.md "Session 10"), with the entity types the sites do not annotate turned to O;
    /// no site's sentence is used.
    /// </summary>
    /// <returns>The initial model, and the layer scales from the public data at it (empty without <see cref="DemoSettings.LayerScales"/>).</returns>
    private (float[] Initial, float[] LayerScales) PublicWarmStart(Agent.ModelSpec spec, string directory, IReadOnlyList<Sentence> test, CancellationToken cancellationToken)
    {
        string path = Path.Combine(directory, "train.tsv");
        if (!File.Exists(path))
        {
            throw new UsageException($"--public-data: {path} does not exist (a CoNLL corpus folder with train.tsv is needed).");
        }

        string[] files = [.. new[] { "train.tsv", "dev.tsv", "test.tsv" }.Where(f => File.Exists(Path.Combine(directory, f)))];
        var types = spec.Labels.EntityTypes.ToHashSet(StringComparer.Ordinal);
        Sentence[] publicTrain;
        try
        {
            publicTrain = [.. files.SelectMany(f => ConllReader.ReadFile(Path.Combine(directory, f)))
                .Select(s => s with { Tags = [.. s.Tags.Select(t => t.Length > 2 && types.Contains(t[2..]) ? t : "O")] })];
        }
        catch (InputDataException ex)
        {
            // A malformed line or bytes that are not UTF-8: a problem with --public-data, exit 2 as for --data.
            throw new UsageException($"--public-data {directory}: {ex.Message}");
        }

        if (publicTrain.Length == 0)
        {
            throw new UsageException($"--public-data {directory}: {string.Join(", ", files)} hold no sentence to train the warm start on.");
        }

        var watch = System.Diagnostics.Stopwatch.StartNew();
        using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, settings.Seed, "cpu");
        console.MarkupLine(CultureInfo.InvariantCulture, $"Public warm start: training the initial model on {publicTrain.Length:N0} public sentences of {Markup.Escape(Path.GetFullPath(directory))}, {settings.PublicEpochs} epochs ...");
        var progress = new WarmStartProgress(publicTrain.Length, line => console.MarkupLine(CultureInfo.InvariantCulture, $"[grey]  public warm start: {Markup.Escape(line)}[/]"));
        new TaggerTrainer().Train(model, publicTrain, null, new TrainOptions { Epochs = settings.PublicEpochs, Seed = settings.Seed, Patience = 0 }, progress, cancellationToken);
        double f1 = TaggerEvaluator.Evaluate(model, test).F1;
        console.MarkupLine(CultureInfo.InvariantCulture, $"Public warm start: the initial model was trained on [green]{publicTrain.Length:N0} public sentences[/] of {Markup.Escape(Path.GetFullPath(directory))} ({string.Join(" + ", files)}; {settings.PublicEpochs} epochs, only {Markup.Escape(string.Join(", ", types))} kept, {watch.Elapsed.TotalSeconds:F0} s): test F1 {f1:F3} before any hospital's data.");
        float[] scales = [];
        if (settings.LayerScales)
        {
            scales = TaggerPreconditioner.LayerScalesFromPublicData(model, publicTrain);
            console.MarkupLine(CultureInfo.InvariantCulture, $"Layer scales: the aggregator announces one DP-SGD factor per weight tensor, from the public data at this model ({scales.Length} factors, {scales.Min():G3} to {scales.Max():G3}); each example's gradient is scaled before clipping, so ε is unchanged.");
        }

        return (model.Flatten(), scales);
    }

    /// <summary>The file that reserves the output folder for this run (<see cref="ReserveOutputDirectory"/>).</summary>
    internal const string ReservationFile = ".securefed-demo";

    /// <summary>
    /// Makes <paramref name="directory"/> and reserves it for this run with a file created only if it does not exist: two
    /// demos given the same folder (or the same default name, started in the same second) both passed the "new or empty"
    /// check at start-up, and the second failed late naming an inner folder. The check is repeated here, now that the
    /// folder is made.
    /// </summary>
    internal static void ReserveOutputDirectory(string directory)
    {
        Directory.CreateDirectory(directory);
        try
        {
            using var reservation = new FileStream(Path.Combine(directory, ReservationFile), FileMode.CreateNew, FileAccess.Write, FileShare.None);
        }
        catch (IOException) when (File.Exists(Path.Combine(directory, ReservationFile)))
        {
            throw new UsageException($"--out {directory}: another demo run is already writing there (it holds {ReservationFile}); give another folder, or leave --out out for a new one.");
        }

        if (Directory.EnumerateFileSystemEntries(directory).Any(e => Path.GetFileName(e) != ReservationFile))
        {
            File.Delete(Path.Combine(directory, ReservationFile));
            throw new UsageException($"--out {directory}: the folder is not empty any more; give a folder that does not exist or is empty.");
        }
    }

    /// <summary>
    /// While the sites train for <paramref name="round"/> (from its opening until its keys stage closes), a line every
    /// <see cref="DemoSettings.DeadlineWaitLineInterval"/> says so and how long it has taken: the first round, which also
    /// computes the public encoder's token vectors, took minutes without a line before.
    /// </summary>
    private Task PrintTrainingAsync(long round, Task movedOn, CancellationToken cancellationToken)
    {
        string first = round == 1 && DemoModel(settings.Model).Encoder.Length > 0 ? "; in the first round each site also computes the public encoder's token vectors of its sentences once" : "";
        return PrintUntilAsync(movedOn, seconds => $"  [grey]round {round}: the sites are training locally ({seconds:F0} s since the round opened{first}); the secure-aggregation stages follow when they send their keys.[/]", cancellationToken);
    }

    /// <summary>
    /// With a site silent before it advertises its keys, the round goes on once its progress reports have stopped for
    /// the silence, at the latest at the training deadline: a line every <see cref="DemoSettings.DeadlineWaitLineInterval"/>
    /// says so and how long the round has waited, until it moves on.
    /// </summary>
    private Task PrintDeadlineWaitAsync(long round, Task movedOn, CancellationToken cancellationToken) =>
        PrintUntilAsync(movedOn, seconds => $"  [grey]round {round}: waiting for the sites' keys ({seconds:F0} s since the round opened); a site whose progress reports have stopped for {settings.ProgressSilenceSeconds} s is left out, at the latest at the training deadline, {Math.Max(0, settings.TrainingTimeoutSeconds - seconds):F0} s from now.[/]", cancellationToken);

    /// <summary>A line (<paramref name="line"/> of the seconds since the call) every <see cref="DemoSettings.DeadlineWaitLineInterval"/> until <paramref name="movedOn"/> completes.</summary>
    private async Task PrintUntilAsync(Task movedOn, Func<double, string> line, CancellationToken cancellationToken)
    {
        var opened = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            // WhenAny never throws: a cancelled delay or the round moving on ends the lines.
            await Task.WhenAny(Task.Delay(settings.DeadlineWaitLineInterval, cancellationToken), movedOn).ConfigureAwait(false);
            if (movedOn.IsCompleted || cancellationToken.IsCancellationRequested)
            {
                return;
            }

            console.MarkupLine(CultureInfo.InvariantCulture, line(opened.Elapsed.TotalSeconds));
        }
    }

    /// <summary>
    /// A corpus the demo can split: at least one training sentence per site, and a dev and a test set that are not
    /// empty (an empty one would score every model 0 without saying why).
    /// </summary>
    internal static void RequireCorpus(string directory, string trainPath, int train, int sites, string devPath, int dev, string testPath, int test)
    {
        if (train < sites)
        {
            throw new UsageException($"--data {directory}: {trainPath} has {train} sentence{(train == 1 ? "" : "s")}; the demo splits it across {sites} sites and needs at least one per site.");
        }

        if (dev == 0)
        {
            throw new UsageException($"--data {directory}: {devPath} has no sentence; the sites score the model on it each round.");
        }

        if (test == 0)
        {
            throw new UsageException($"--data {directory}: {testPath} has no sentence; the fused model is scored on it.");
        }
    }

    private (Dictionary<string, IReadOnlyList<Sentence>>, Dictionary<string, IReadOnlyList<Sentence>>, IReadOnlyList<Sentence>, IReadOnlyList<Sentence>, IReadOnlyList<string>, string) LoadData(string[] sites)
    {
        var train = new Dictionary<string, IReadOnlyList<Sentence>>();
        var dev = new Dictionary<string, IReadOnlyList<Sentence>>();
        if (settings.DataDirectory is { } dir)
        {
            string trainPath = Path.Combine(dir, "train.tsv");
            string devPath = Path.Combine(dir, "dev.tsv");
            string testPath = Path.Combine(dir, "test.tsv");
            foreach (string p in new[] { trainPath, devPath, testPath })
            {
                if (!File.Exists(p))
                {
                    throw new UsageException(Directory.Exists(p)
                        ? $"--data {dir}: expected train.tsv, dev.tsv and test.tsv in CoNLL format; {p} is a folder, not a file."
                        : $"--data {dir}: expected train.tsv, dev.tsv and test.tsv in CoNLL format; {p} is missing.");
                }
            }

            List<Sentence> all;
            List<Sentence> allDev;
            List<Sentence> test;
            try
            {
                // One spelling per entity type across the three files, as tagger train across --train and --dev: dev's
                // B-disease next to train's B-Disease made a type the model never learned, scored as a miss on dev and test.
                var spellings = new EntityTypeSpellings();
                all = [.. ConllReader.ReadFile(trainPath, spellings)];
                allDev = [.. ConllReader.ReadFile(devPath, spellings)];
                test = [.. ConllReader.ReadFile(testPath, spellings)];
            }
            catch (InputDataException ex)
            {
                // A malformed line or bytes that are not UTF-8: a problem with --data, exit 2 like the corpus's other problems.
                throw new UsageException($"--data {dir}: {ex.Message}");
            }
            RequireCorpus(dir, trainPath, all.Count, sites.Length, devPath, allDev.Count, testPath, test.Count);
            // A seeded shuffle, then round-robin: every site gets a random share of the abstracts' sentences.
            var order = Enumerable.Range(0, all.Count).ToArray();
            new Random(settings.Seed).Shuffle(order);
            for (int i = 0; i < sites.Length; i++)
            {
                IEnumerable<Sentence> share = order.Where((_, k) => k % sites.Length == i).Select(k => all[k]);
                train[sites[i]] = [.. settings.TrainSentencesPerSite > 0 ? share.Take(settings.TrainSentencesPerSite) : share];
                dev[sites[i]] = [.. allDev.Where((_, k) => k % sites.Length == i)];
            }

            var types = LabelSet.FromSentences(all.Concat(allDev), includeClinicalTypes: false).EntityTypes;
            if (types.Count == 0)
            {
                throw new UsageException($"--data {dir}: {trainPath} and {devPath} tag no entity (no B-TYPE or I-TYPE tag), so there is nothing to learn.");
            }
            string label = settings.CorpusLabel ?? "real corpus";
            string subsample = settings.TrainSentencesPerSite > 0 && settings.TrainSentencesPerSite * sites.Length < all.Count
                ? string.Create(CultureInfo.InvariantCulture, $", a random subsample of {settings.TrainSentencesPerSite:N0} of each site's ~{all.Count / sites.Length:N0} training sentences to keep the demo short (--train-per-site 0 uses all)")
                : "";
            return (train, dev, allDev, test, types, $"{label} in {Path.GetFullPath(dir)} ({all.Count:N0} training sentences{subsample})");
        }

        IReadOnlyList<SiteProfile> profiles = SyntheticClinicalCorpus.CreateProfiles(Math.Max(sites.Length, SyntheticClinicalCorpus.Profiles.Count));
        var pooledDev = new List<Sentence>();
        var pooledTest = new List<Sentence>();
        for (int i = 0; i < sites.Length; i++)
        {
            SiteProfile profile = profiles.FirstOrDefault(p => p.Name == sites[i]) ?? profiles[i];
            train[sites[i]] = SyntheticClinicalCorpus.Generate(profile, settings.SentencesPerSite, settings.Seed * 100 + i);
            dev[sites[i]] = SyntheticClinicalCorpus.Generate(profile, Math.Max(40, settings.SentencesPerSite / 5), settings.Seed * 100 + 50 + i);
            pooledDev.AddRange(dev[sites[i]]);
            pooledTest.AddRange(SyntheticClinicalCorpus.Generate(profile, Math.Max(60, settings.SentencesPerSite / 4), settings.Seed * 100 + 90 + i));
        }

        return (train, dev, pooledDev, pooledTest, LabelSet.ClinicalTypes, "embedded synthetic clinical corpus (honestly synthetic: generated in code, one profile per hospital)");
    }

    private List<DemoRound> CollectRounds(LocalFederation federation, IEnumerable<AgentRoundReport> reports, IEnumerable<RoundProgress> progress, Agent.ModelSpec spec, IReadOnlyList<Sentence> pooledDev, string[] sites)
    {
        var result = new List<DemoRound>();
        // Federated evaluation as the aggregator knows it: the sum over the contributors only.
        var federated = progress.Where(p => p.Stage == "completed" && p.Evaluation is not null).ToDictionary(p => p.Round, p => p.Evaluation!.F1);
        using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, settings.Seed, "cpu");
        var byRound = reports.GroupBy(r => r.Round).ToDictionary(g => g.Key, g => g.ToList());
        var models = federation.State.Store;
        long version = 0;
        foreach (var round in federation.State.Store.ListRounds())
        {
            double f1 = double.NaN;
            bool completed = round.Status == Aggregator.Persistence.RoundStatus.Completed;
            if (completed)
            {
                version++;
                byte[]? bytes = models.LoadModel(version);
                if (bytes is not null)
                {
                    model.Unflatten(ModelState.FromBytes(bytes, $"model v{version}"));
                    f1 = TaggerEvaluator.Evaluate(model, pooledDev).F1;
                }
            }

            var r = byRound.GetValueOrDefault(round.Round) ?? [];
            var bytesPerSite = sites.ToDictionary(s => s, s => r.Where(x => x.Site == s).Sum(x => x.BytesSent));
            double record = r.Count > 0 ? r.Max(x => x.RecordEpsilon) : double.NaN;
            double site = r.Count > 0 ? r.Max(x => x.SiteEpsilon) : double.NaN;
            var perSite = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (string s in sites)
            {
                double[] spent = [.. reports.Where(x => x.Site == s && x.Round <= round.Round && double.IsFinite(x.RecordEpsilon)).Select(x => x.RecordEpsilon)];
                if (spent.Length > 0)
                {
                    perSite[s] = spent.Max();
                }
            }

            result.Add(new DemoRound(round.Round, completed ? "completed" : "aborted: " + round.AbortReason, round.Participants, f1, record, site, bytesPerSite)
            {
                RecordEpsilonPerSite = perSite,
                FederatedF1 = federated.GetValueOrDefault(round.Round, double.NaN),
            });
        }

        return result;
    }

    private (double F1, EvaluationResult Result, string ModelDirectory) EvaluateFinal(LocalFederation federation, Agent.ModelSpec spec, IReadOnlyList<Sentence> test)
    {
        using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, settings.Seed, "cpu");
        long version = federation.State.Model.Version;
        byte[] bytes = federation.State.Store.LoadModel(version) ?? throw new InvalidDataException($"model v{version} is not in the round store");
        model.Unflatten(ModelState.FromBytes(bytes, $"model v{version}"));
        EvaluationResult result = TaggerEvaluator.Evaluate(model, test);
        string dir = Path.Combine(settings.OutputDirectory, "fused-model");
        model.Save(dir);
        return (result.F1, result, dir);
    }

    private void PrintTable(List<DemoRound> rounds, string[] sites, double testF1, EvaluationResult test)
    {
        console.Write(RoundTable(rounds, sites, console.Profile.Width));
        console.MarkupLine("[grey]federated F1: the model each round started from, scored by every site on its own dev data; only the sum of the sites' counts is revealed (secure aggregation), no site's own score. dev F1: the round's result on the pooled dev set (the demo can pool; a real federation cannot).[/]");
        var types = new Table().Title("[bold]Fused model on the held-out test set[/]").AddColumn("type").AddColumn(new TableColumn("precision").RightAligned())
            .AddColumn(new TableColumn("recall").RightAligned()).AddColumn(new TableColumn("F1").RightAligned());
        foreach ((string type, EntityScore score) in test.PerType.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            types.AddRow(type, score.Precision.ToString("F3", CultureInfo.InvariantCulture), score.Recall.ToString("F3", CultureInfo.InvariantCulture), score.F1.ToString("F3", CultureInfo.InvariantCulture));
        }

        types.AddRow("[bold]overall[/]", test.Precision.ToString("F3", CultureInfo.InvariantCulture), test.Recall.ToString("F3", CultureInfo.InvariantCulture), $"[bold]{testF1.ToString("F3", CultureInfo.InvariantCulture)}[/]");
        console.Write(types);
    }

    /// <summary>
    /// Writes <paramref name="command"/>, a shell command printed for pasting, indented on a line of its own and never
    /// wrapped at the console's width: a line break inside it (e.g. in <c>$(cat …)</c>) would break the pasted command.
    /// </summary>
    internal static void WriteCommand(IAnsiConsole console, string command)
    {
        ArgumentNullException.ThrowIfNull(console);
        TextWriter writer = console.Profile.Out.Writer;
        writer.WriteLine("  " + command);
        writer.Flush();
    }

    /// <summary>
    /// <paramref name="path"/> as one word of a POSIX shell command the user may paste: as it is when it holds only
    /// characters no shell treats specially, else in single quotes (a quote in it as <c>'\''</c>).
    /// </summary>
    internal static string ShellQuote(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        bool plain = path.Length > 0 && path.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '/' or '.' or '_' or '-' or ':' or '+' or ',' or '@' or '%' or '=');
        return plain ? path : "'" + path.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>
    /// A warning when DP-SGD's expected batch, q × the smallest site's sentences, is under one sentence: most steps then sample
    /// no sentence and add the noise alone, so the model learns next to nothing (a q of 1e-4 scored F1 0.02 against 0.72).
    /// </summary>
    internal static string? SmallBatchWarning(double sampleRate, int smallestSite)
    {
        double expected = sampleRate * smallestSite;
        return expected >= 1 ? null : string.Create(CultureInfo.InvariantCulture,
            $"--sample-rate {sampleRate:R} samples {expected:G2} sentences a step on average from the smallest site ({smallestSite} sentences): most DP-SGD steps will add noise to no sentence at all, and the model will learn next to nothing. A q of at least 1/{smallestSite} (the default is {TrainingRecipe.Product.SampleRate:R}) gives every step a batch.");
    }
}
