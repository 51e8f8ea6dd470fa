using System.Globalization;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// Aggregator configuration (section <c>SecureFed</c> of aggregator.json, environment variables
/// <c>SecureFed__Name</c>, or command-line <c>--SecureFed:Name=value</c>). Validated at start-up by
/// <see cref="Validate"/>; every problem is reported with the setting's name.
/// </summary>
public sealed class AggregatorOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "SecureFed";

    /// <summary>Federation name; must equal the manifest's. Required.</summary>
    public string Federation { get; set; } = "";

    /// <summary>HTTPS URL to listen on. <value>The default value is https://127.0.0.1:7443; port 0 picks a free port.</value></summary>
    public string Listen { get; set; } = "https://127.0.0.1:7443";

    /// <summary>The aggregator's kit folder (tls.crt, tls.key, identity.key, ca.crt, federation.json). Required.</summary>
    public string KitDirectory { get; set; } = ".";

    /// <summary>Where state lives: aggregator.db, ledger, audit log. <value>The default value is ./data.</value></summary>
    public string DataDirectory { get; set; } = "./data";

    /// <summary>
    /// Whether start-up repairs a torn last line of the audit log (a crash mid-write): the torn bytes are moved to
    /// <c>audit/quarantine/</c> (kept, never deleted) and an audit event records their size and SHA-256. Off, the
    /// aggregator refuses to start and names this setting. Local to this process: not round-affecting.
    /// <value>The default value is false.</value>
    /// </summary>
    public bool RepairTornAuditTail { get; set; }

    /// <summary>
    /// Whether a private key of the kit (TLS key, identity key) that its group or other users may only read is used: off,
    /// such a key is refused unless only its owner may read it (0600; 0640 when root owns it). For platforms that set the
    /// mode and do not let it be changed (a Docker secret is 0444; a Kubernetes Secret volume is 0644 unless its defaultMode
    /// can be set to 0400). On, the key must still belong to root or to the user this process runs as, and may not be
    /// writable or executable by group or others; a warning naming the file, its mode and owner is logged each time it is
    /// loaded. Anyone on the machine who can read the file can impersonate this party: prefer mode 0400 where possible.
    /// Linux only: elsewhere (macOS, the BSDs) the key's owner cannot be read, so such a key is refused all the same.
    /// Local to this process: not round-affecting.
    /// <value>The default value is false.</value>
    /// </summary>
    public bool AcceptReadableKeys { get; set; }

    /// <summary>Rounds to run before the federation finishes. <value>The default value is 10.</value></summary>
    public int Rounds { get; set; } = 10;

    /// <summary>Minimum cohort size to open a round. <value>The default value is 2.</value></summary>
    public int MinSites { get; set; } = 2;

    /// <summary>Shamir threshold t; 0 derives it from the cohort size (see GraphPlanner). <value>The default value is 0.</value></summary>
    public int Threshold { get; set; }

    /// <summary>
    /// Masking-graph policy (docs/PROTOCOL.md "Masking graph"): <c>complete</c> = the complete graph with t = ⌊n/2⌋+1
    /// up to 512 sites, SecAgg+ Harary graph above (a deterministic guarantee up to 512 sites); <c>sparse</c> = the
    /// SecAgg+ Harary graph for any cohort where the planner's bounds allow one (about 0.27 of the unmasking work at
    /// 500 sites with the aggregator's plan, k = 130, a statistical guarantee under an assumed 5% corrupt sites; sites must accept it with their own
    /// <c>Graph=sparse</c>). <value>The default value is complete.</value>
    /// </summary>
    public string Graph { get; set; } = "complete";

    /// <summary>
    /// The colluding sites (aggregator aside) the round's consistency quorum is announced for (docs/PROTOCOL.md
    /// "Consistency quorum"): the aggregator moves to unmasking only when max(t, ⌊(n + c)/2⌋ + 1) sites signed the survivor
    /// set, so that it and c colluding sites cannot have two different survivor sets signed and unmask a site. 0 = the
    /// graph's own (t under the complete graph, which stops view splitting by up to 2t − n − 1 colluders: none for an odd
    /// cohort). Bound into the round digest; each round's c must stay below its t. Agents with <c>ColludingSites</c>
    /// above the announced value decline the round. <value>The default value is 0.</value>
    /// </summary>
    public int ConsistencyColluders { get; set; }

    /// <summary><see cref="Graph"/> parsed (complete when the setting is invalid; <see cref="Validate"/> reports that).</summary>
    public SecureFed.Protocol.GraphPolicy GraphPolicy => SecureFed.Protocol.GraphPlanner.TryParsePolicy(Graph, out SecureFed.Protocol.GraphPolicy policy) ? policy : SecureFed.Protocol.GraphPolicy.Complete;

    /// <summary>The graph and threshold a round over <paramref name="cohortSize"/> sites uses under <see cref="GraphPolicy"/> (γ = 0.05, δ = 0.3).</summary>
    internal SecureFed.Protocol.GraphPlan PlanGraph(int cohortSize) => SecureFed.Protocol.GraphPlanner.Plan(cohortSize, GraphPolicy);

    /// <summary>Seconds the cohort has to train locally and advertise keys. <value>The default value is 600.</value></summary>
    public int TrainingTimeoutSeconds { get; set; } = 600;

    /// <summary>
    /// How often a site reports, while it trains, that it is still at work (announced; docs/PROTOCOL.md "Training
    /// progress"), in seconds; 0 asks for no reports, and a silent site is then waited for until
    /// <see cref="TrainingTimeoutSeconds"/>. <value>The default value is 10.</value>
    /// </summary>
    public int ProgressIntervalSeconds { get; set; } = DefaultProgressIntervalSeconds;

    /// <summary>The default of <see cref="ProgressIntervalSeconds"/>.</summary>
    public const int DefaultProgressIntervalSeconds = 10;

    /// <summary>
    /// After how many seconds without a report a site that has reported in this round's training is taken as gone: the
    /// keys stage then closes without it as soon as every other member has advertised or declined, instead of at
    /// <see cref="TrainingTimeoutSeconds"/>. At least 3 × <see cref="ProgressIntervalSeconds"/>. <value>The default value is 60.</value>
    /// </summary>
    public int ProgressSilenceSeconds { get; set; } = DefaultProgressSilenceSeconds;

    /// <summary>The default of <see cref="ProgressSilenceSeconds"/>.</summary>
    public const int DefaultProgressSilenceSeconds = 60;

    /// <summary>
    /// How long the keys stage waits for the cohort members still training once enough of them have advertised their keys
    /// for the round to complete (the threshold t), as a multiple of the time those t took since the round opened: the
    /// stage then closes at most <c>StragglerWaitFactor</c> × that time later (and no earlier than
    /// <see cref="StragglerMinWaitSeconds"/> after the t-th keys), leaving the rest out as dropouts of the stage. Bounds
    /// what a hostile site that keeps reporting progress but never advertises can hold a round up (threat model C8); a
    /// site whose training takes longer than (1 + factor) times the t-th fastest's is left out too. 0 = off: wait until
    /// <see cref="TrainingTimeoutSeconds"/>. <value>The default value is 3.</value>
    /// </summary>
    public double StragglerWaitFactor { get; set; } = DefaultStragglerWaitFactor;

    /// <summary>The default of <see cref="StragglerWaitFactor"/>.</summary>
    public const double DefaultStragglerWaitFactor = 3;

    /// <summary>
    /// The least time, in seconds, the keys stage waits for the members still training after the t-th keys arrived (see
    /// <see cref="StragglerWaitFactor"/>), so that a round whose fastest sites finish in seconds does not leave out one that
    /// needs a minute more. <value>The default value is 60.</value>
    /// </summary>
    public int StragglerMinWaitSeconds { get; set; } = DefaultStragglerMinWaitSeconds;

    /// <summary>The default of <see cref="StragglerMinWaitSeconds"/>.</summary>
    public const int DefaultStragglerMinWaitSeconds = 60;

    /// <summary>
    /// The least time, in seconds, each stage after the keys (shares, masked inputs, consistency signatures, unmasking
    /// responses) waits for its last member once every other expected member has answered and at least t have: the stage
    /// then closes at most max(this, <see cref="StragglerWaitFactor"/> × the time the others took since the stage
    /// opened) later, leaving the last one out as a dropout of the stage. Bounds what one hostile site that answers each
    /// stage just before its deadline can hold a round up (threat model C8): 4 × <see cref="StageTimeoutSeconds"/>
    /// before, about 4 × this now. Only the last member is ever left out this way, and only with t others in that did not
    /// decline (t + 1 after an attempt that left a last member out and then aborted); at unmasking only when the answers
    /// in hand rebuild every secret (<see cref="IRoundServer.UnmaskingShortfallAsync"/>), else it is waited for until the
    /// deadline. Off with
    /// <see cref="StragglerWaitFactor"/> = 0, or when this is at least <see cref="StageTimeoutSeconds"/>.
    /// <value>The default value is 30.</value>
    /// </summary>
    public int StageStragglerMinWaitSeconds { get; set; } = DefaultStageStragglerMinWaitSeconds;

    /// <summary>The default of <see cref="StageStragglerMinWaitSeconds"/>.</summary>
    public const int DefaultStageStragglerMinWaitSeconds = 30;

    /// <summary>Deadline of every later protocol stage, in seconds. <value>The default value is 120.</value></summary>
    public int StageTimeoutSeconds { get; set; } = 120;

    /// <summary>Seconds to wait for at least <see cref="MinSites"/> sites before a round opens. <value>The default value is 300.</value></summary>
    public int JoinTimeoutSeconds { get; set; } = 300;

    /// <summary>After the first site joins, how long to wait for more before opening (at most <see cref="MaxJoinGraceSeconds"/>). <value>The default value is 2.</value></summary>
    public double JoinGraceSeconds { get; set; } = 2;

    /// <summary>The longest <see cref="JoinGraceSeconds"/>: one day, as <see cref="JoinTimeoutSeconds"/>.</summary>
    public const int MaxJoinGraceSeconds = 86_400;

    /// <summary>
    /// The longest pause, in seconds, between round attempts that keep failing: the first two attempts after a completed
    /// round (or the start) open at once, each further consecutive failure doubles the pause (1, 2, 4 … s) up to this
    /// value, and a completed round resets it; 0 turns the pause off. Without it an attempt that every site declines (e.g.
    /// their privacy budgets are spent) was retried at once, thousands of times a minute, each with its audit lines.
    /// <value>The default value is 30.</value>
    /// </summary>
    public int MaxRetryPauseSeconds { get; set; } = 30;

    /// <summary>
    /// Round attempts a site is left out of after it was first found at fault: by a verified share accusation, as a dealer
    /// of shares of another secret, or by a search by elimination (docs/PROTOCOL.md, "Blame"); each further blame of the
    /// same site doubles it (at most 10,000 attempts). <value>The default value is 3.</value>
    /// </summary>
    public int BlameExclusionRounds { get; set; } = 3;

    /// <summary>Federation-level site-guarantee budget ε. <value>The default value is 10.</value></summary>
    public double EpsilonBudget { get; set; } = 10.0;

    /// <summary>δ of the site-level guarantee. <value>The default value is 1e-5.</value></summary>
    public double Delta { get; set; } = 1e-5;

    /// <summary>S: every site clips its whole update to this L2 norm. <value>The default value is 1.0.</value></summary>
    public double L2Clip { get; set; } = 1.0;

    /// <summary>
    /// z: noise standard deviation of the sum as a multiple of S (site-level distributed DP). The default runs the default
    /// 10 rounds within the default site-level budget ε = 10 (0.5, the default before session 30, spent ε 10.73 in one
    /// round, so a federation with the defaults ran no round). <value>The default value is 1.7.</value>
    /// </summary>
    public double SiteNoiseMultiplier { get; set; } = 1.7;

    /// <summary>Cap on the example count a site's update is weighted with. <value>The default value is 10000.</value></summary>
    public int WeightCap { get; set; } = 10_000;

    /// <summary>Server learning rate η applied to the averaged update (by every <see cref="ServerOptimizer"/> rule). <value>The default value is 1.0.</value></summary>
    public double ServerLearningRate { get; set; } = 1.0;

    /// <summary>
    /// The aggregator's update rule on the round's averaged update Δ (docs/PROTOCOL.md, "Server update rule"; Reddi et
    /// al., ICLR 2021): <c>average</c> (FedAvg, θ ← θ + η Δ), <c>momentum</c> (FedAvgM, v ← β₁ v + Δ; θ ← θ + η v) or
    /// <c>adam</c> (FedAdam, m ← β₁ m + (1 − β₁) Δ; v ← β₂ v + (1 − β₂) Δ²; θ ← θ + η m / (√v + τ)). Post-processing of
    /// the sum: no privacy cost, nothing more revealed. The moments of momentum and adam (8 or 16 bytes per parameter)
    /// are saved with each model version, in the same transaction, and restored at start-up; on the aggregator cluster
    /// they are also saved to its database with that version and restored by a coordinator that takes over
    /// (docs/cluster.md §6). <value>The default value is average.</value>
    /// </summary>
    public string ServerOptimizer { get; set; } = "average";

    /// <summary>β₁: the momentum of <c>momentum</c>, the first-moment decay of <c>adam</c>. <value>The default value is 0.9.</value></summary>
    public double ServerBeta1 { get; set; } = 0.9;

    /// <summary>β₂: the second-moment decay of <c>adam</c>. <value>The default value is 0.99.</value></summary>
    public double ServerBeta2 { get; set; } = 0.99;

    /// <summary>τ: the adaptivity of <c>adam</c> (added to √v; docs/utility.md measured 1e-7 under DP). <value>The default value is 1e-3.</value></summary>
    public double ServerTau { get; set; } = 1e-3;

    /// <summary>
    /// Φ, with <c>adam</c>: the variance per coordinate of the DP noise in each round's averaged update (DP-AdamBC: the
    /// bias-corrected second moment is replaced by max(v̂ − Φ, <see cref="ServerNoiseFloor"/> Φ)); it follows from public
    /// settings (docs/utility.md "Session 13"). 0 = no correction. <value>The default value is 0.</value>
    /// </summary>
    public double ServerNoiseVariance { get; set; }

    /// <summary>With <see cref="ServerNoiseVariance"/>: the floor of the corrected second moment, a multiple of Φ. <value>The default value is 1.</value></summary>
    public double ServerNoiseFloor { get; set; } = 1;

    /// <summary>The <see cref="ServerOptimizer"/> rule parsed (average when the setting is invalid; <see cref="Validate"/> reports that).</summary>
    public ServerOptimizerKind ServerOptimizerKind => TryParseServerOptimizer(ServerOptimizer, out ServerOptimizerKind kind) ? kind : ServerOptimizerKind.Average;

    /// <summary>The server update rule's options from the <c>Server*</c> settings.</summary>
    public ServerOptimizerOptions ServerOptimizerOptions => new()
    {
        Kind = ServerOptimizerKind,
        LearningRate = ServerLearningRate,
        Beta1 = ServerBeta1,
        Beta2 = ServerBeta2,
        Tau = ServerTau,
        NoiseVariance = ServerNoiseVariance,
        NoiseFloor = ServerNoiseFloor,
    };

    /// <summary>
    /// DP-SGD noise multiplier announced to sites (patient-level DP). With the other defaults (q = 0.3, 7 local epochs
    /// capped at 20 steps per round) 10 rounds spend ε ≈ 8 at δ = 1e-5 (the RDP accountant's σ for that is 2.8544; 1.2 with q 0.1
    /// up to session 41). <value>The default value is 2.86.</value>
    /// </summary>
    public double DpSgdNoiseMultiplier { get; set; } = 2.86;

    /// <summary>DP-SGD per-example clip norm C (of a sentence's summed-loss gradient; docs/utility.md; 8 before session 40). <value>The default value is 2.0.</value></summary>
    public double DpSgdMaxGradNorm { get; set; } = 2.0;

    /// <summary>DP-SGD Poisson sampling rate q (0.1 up to session 41; docs/utility.md "Recipe"). <value>The default value is 0.3.</value></summary>
    public double DpSgdSampleRate { get; set; } = 0.3;

    /// <summary>
    /// Local epochs per round: each site takes LocalEpochs × round(1/q) DP-SGD steps a round, at most
    /// <see cref="DpSgdMaxSteps"/> (7 × 3 = 21, capped at 20; 2 × 10 = 20 up to session 41). <value>The default value is 7.</value>
    /// </summary>
    public int LocalEpochs { get; set; } = 7;

    /// <summary>
    /// Cap of DP-SGD steps each site takes per round (docs/PROTOCOL.md, "Split patient-level noise"); 0 = no cap
    /// (<see cref="LocalEpochs"/> × round(1/q) steps). Split noise needs 1. <value>The default value is 20 (0 up to session 41).</value>
    /// </summary>
    public int DpSgdMaxSteps { get; set; } = 20;

    /// <summary>
    /// k, the shares the patient-level DP-SGD noise is split into: 0 or 1 = every site adds the whole σ (the guarantee
    /// holds even if the aggregator and all other sites collude); k ≥ 2 = every site adds σ/√k, so that any sum of ≥ k
    /// sites' inputs carries σ (ε holds against the aggregator while secure aggregation holds; against collusion a site
    /// keeps only its own share). Needs <see cref="DpSgdMaxSteps"/> = 1 (one DP-SGD step per round, FedSGD) and k at
    /// most every round's threshold t; sites must opt in (agent <c>AcceptSplitPatientNoise</c>).
    /// <value>The default value is 0.</value>
    /// </summary>
    public int DpSgdNoiseShares { get; set; }

    /// <summary>
    /// A layer-wise DP-SGD preconditioner announced with every round (docs/PROTOCOL.md, "Layer scales"): one positive
    /// factor per parameter tensor of the model, computed from public data at the public initial model (<c>securefed
    /// model layer-scales</c>). Each example's gradient of tensor i is multiplied by factor i before clipping, so the
    /// privacy guarantee is unchanged; a good choice gains utility (docs/utility.md). Empty = none.
    /// <value>The default value is empty.</value>
    /// </summary>
#pragma warning disable CA1819 // bound from configuration as an array
    public float[] DpSgdLayerScales { get; set; } = [];
#pragma warning restore CA1819

    /// <summary>
    /// Concurrent masked-input uploads buffered in memory (bounds peak memory), at least <see cref="MinConcurrentUploads"/>.
    /// <value>The default value is 4.</value>
    /// </summary>
    public int MaxConcurrentUploads { get; set; } = 4;

    /// <summary>
    /// The slowest a masked-input upload may be once it holds an upload slot, in 32-bit words a second (after
    /// <see cref="UploadGraceSeconds"/>; <see cref="UploadPace"/>): one that falls behind is refused with
    /// <c>RESOURCE_EXHAUSTED</c> and its slot given back, so sites that open uploads and stall or trickle cannot hold every
    /// slot until the stage closes. 0 turns the floor off. <value>The default value is 16384 (64 KiB a second).</value>
    /// </summary>
    public int MinUploadWordsPerSecond { get; set; } = UploadPace.DefaultWordsPerSecond;

    /// <summary>
    /// Seconds an upload may hold its slot before <see cref="MinUploadWordsPerSecond"/> applies (a connection's start, a
    /// pause of the network). <value>The default value is 30.</value>
    /// </summary>
    public int UploadGraceSeconds { get; set; } = UploadPace.DefaultGraceSeconds;

    /// <summary>
    /// Model downloads a site may make beyond its first download of each new model version, at once
    /// (<see cref="ModelDownloadGate"/>): a further one is refused with <c>RESOURCE_EXHAUSTED</c> and audited until
    /// <see cref="ModelDownloadRefillSeconds"/> gives it one more. Honest agents download each version once, and again
    /// only after a lost connection or a restart. <value>The default value is 8.</value>
    /// </summary>
    public int ModelDownloadBurst { get; set; } = ModelDownloadGate.DefaultBurst;

    /// <summary>Seconds after which a site has one more repeated model download (<see cref="ModelDownloadBurst"/>). <value>The default value is 60.</value></summary>
    public int ModelDownloadRefillSeconds { get; set; } = ModelDownloadGate.DefaultRefillSeconds;

    /// <summary>What is wrong with an upload floor of <paramref name="wordsPerSecond"/> after <paramref name="graceSeconds"/> (coordinator and slice silos alike).</summary>
    internal static IEnumerable<string> UploadPaceProblems(int wordsPerSecond, int graceSeconds)
    {
        var errors = new List<string>();
        Range(errors, nameof(MinUploadWordsPerSecond), wordsPerSecond, 0, 100_000_000);
        Range(errors, nameof(UploadGraceSeconds), graceSeconds, 1, 3_600);
        return errors;
    }

    /// <summary>
    /// The fewest upload slots allowed (coordinator, slice fronts): a site holds at most one slot at a time
    /// (<see cref="UploadLimiter"/>), so with one slot a single site that opens an upload and stalls would hold it until the
    /// masked-input stage closes and abort every round without being blamed; with two or more, one slot stays for the others.
    /// </summary>
    public const int MinConcurrentUploads = 2;

    /// <summary>The error for an invalid <see cref="MaxConcurrentUploads"/> (<paramref name="value"/> as configured), or null.</summary>
    internal static string? ConcurrentUploadsProblem(string value) =>
        int.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n) && n is >= MinConcurrentUploads and <= 1_000
            ? null
            : $"SecureFed:MaxConcurrentUploads must be between {MinConcurrentUploads} and 1000, got '{value}': a site holds at most one upload slot at a time, so with a single slot one site that opens an upload and never finishes it would hold the slot until the masked-input stage closes and abort every round; two or more leave a slot for the other sites.";

    /// <summary>
    /// <c>ShareKeys</c> and <c>Unmask</c> calls one site may have in flight at once (their requests may be up to the 4 MiB
    /// message limit and are buffered whole before they are read): a further one is refused with <c>RESOURCE_EXHAUSTED</c>
    /// before its body is read, so one site makes the aggregator (and each slice silo) hold at most this many 4 MiB
    /// requests (<see cref="BulkCallGate"/>; docs/PROTOCOL.md §3, "Refusals"). Honest agents make one at a time.
    /// <value>The default value is 2.</value>
    /// </summary>
    public int MaxBulkCallsPerSite { get; set; } = BulkCallGate.DefaultLimitPerSite;

    /// <summary>
    /// gRPC calls of any method one site may have in flight at once at this process (on the aggregator, the coordinator silo
    /// and each slice silo; <see cref="MaxBulkCallsPerSite"/> of them at most ShareKeys/Unmask): a further one is refused
    /// with <c>RESOURCE_EXHAUSTED</c> before its body is read, so one site makes the process hold at most this many 4 MiB
    /// requests (<see cref="BulkCallGate"/>; docs/PROTOCOL.md §3, "Refusals"). Calls a silo of the aggregator cluster forwards
    /// count against the site they name. Honest agents have at most <see cref="BulkCallGate.HonestCallsPerSite"/> (6) in
    /// flight at one process; at least <see cref="MaxBulkCallsPerSite"/> + 6.
    /// <value>The default value is 16.</value>
    /// </summary>
    public int MaxCallsPerSite { get; set; } = BulkCallGate.DefaultCallLimitPerSite;

    /// <summary>
    /// TLS connections one site may hold open to the agent endpoint at once (on the aggregator, the coordinator silo and each
    /// slice silo): a further one is closed right after its TLS handshake, before any HTTP/2 frame of it is read, so one site
    /// makes this process hold at most this many connections' TLS and HTTP/2 state, each with at most Kestrel's 100 streams
    /// (<see cref="ConnectionGate"/>, <see cref="AgentListener"/>; docs/PROTOCOL.md §3, "Refusals"). Honest agents hold one.
    /// Connections presenting the aggregator's own certificate (silos forwarding calls) are not counted.
    /// <value>The default value is 8.</value>
    /// </summary>
    public int MaxConnectionsPerSite { get; set; } = ConnectionGate.DefaultLimitPerSite;

    /// <summary>
    /// Model versions the round store keeps: 0 keeps every version; N ≥ 1 keeps the newest N, and the transaction that
    /// stores a round's new version deletes the older ones (never the latest, the version the saved server-optimizer
    /// moments go with, or the base version of a running round), audited as <c>models.pruned</c>. On the aggregator
    /// cluster the coordinator's database mirrors the round store at the next commit point (docs/cluster.md §6).
    /// A pruned version can no longer be downloaded (<c>NOT_FOUND</c>) nor read back by an auditor; agents only ever
    /// request the announced version, the latest. <value>The default value is 0 (keep every version).</value>
    /// </summary>
    public int KeepModelVersions { get; set; }

    /// <summary>Path of the initial model (little-endian float32 vector) used when the store has none.</summary>
    public string? InitialModel { get; set; }

    /// <summary>SHA-256 of the model specification (tagger configuration + labels) all sites must share. Required.</summary>
    public string ModelSpecSha256 { get; set; } = "";

    /// <summary>
    /// The number of parameters of the model the specification describes, derived from it when the service starts (as
    /// <see cref="ModelSpecSha256"/>); 0 leaves it unchecked. An initial model or a stored latest model of another size is
    /// refused at start-up: every agent would decline every round ("the round expects N parameters"), and an initial
    /// model, once stored as version 0, would be read again on every later start. <value>The default value is 0.</value>
    /// </summary>
    public long ModelParameterCount { get; set; }

    /// <summary>
    /// The operator's admin listener (console, <c>/metrics</c>): an <c>http://127.0.0.1:PORT</c> URL (loopback only:
    /// 127.0.0.1, [::1] or localhost; port 0 picks a free port), never the agents' endpoint. Empty turns it off.
    /// <value>The default value is empty (off).</value>
    /// </summary>
    public string? AdminListen { get; set; }

    /// <summary>
    /// The file with the SHA-256 of the operator's token (written by <c>securefed provision</c>); needed when
    /// <see cref="AdminListen"/> is set. <value>The default value is operator-token.sha256 in <see cref="KitDirectory"/>.</value>
    /// </summary>
    public string? OperatorTokenVerifier { get; set; }

    /// <summary>
    /// OTLP endpoint (http:// or https:// URL, e.g. http://127.0.0.1:4317) to push metrics and traces to. Empty: no OTLP
    /// export. <value>The default value is empty.</value>
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>True when <see cref="AdminListen"/> is set.</summary>
    public bool AdminEnabled => !string.IsNullOrWhiteSpace(AdminListen);

    /// <summary>The verifier file actually used (<see cref="OperatorTokenVerifier"/> or its default in the kit).</summary>
    public string OperatorTokenVerifierPath => string.IsNullOrWhiteSpace(OperatorTokenVerifier)
        ? Path.Combine(KitDirectory, global::SecureFed.Federation.KitFiles.OperatorTokenVerifier)
        : OperatorTokenVerifier;

    /// <summary>
    /// Federated evaluation (docs/PROTOCOL.md, "Federated evaluation"): every site scores the received model on its own
    /// dev data and its TP/FP/FN counts are summed with the model update, so the federation's F1 of each round is known
    /// without any site's own score. The counts are exact (not DP-protected). <value>The default value is true.</value>
    /// </summary>
    public bool FederatedEvaluation { get; set; } = true;

    /// <summary>
    /// Entity types scored separately by federated evaluation (the model specification's types; the CLI and the demo
    /// fill them in from the spec). Empty: only the overall score. <value>The default value is empty.</value>
    /// </summary>
    public string[] EvaluationEntityTypes { get; set; } = [];

    /// <summary>
    /// Per-site maximum of every evaluation count (entities in a site's dev data): bounds what one site can add to the
    /// federation's counts, and n × cap must fit the 32-bit words. <value>The default value is 100000.</value>
    /// </summary>
    public int EvaluationCountCap { get; set; } = 100_000;

    /// <summary>Checks every setting; returns the problems (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(Federation))
        {
            errors.Add("SecureFed:Federation is required.");
        }

        if (!ServiceUrl.TryParseHttps(Listen, out Uri? listen, out string listenProblem))
        {
            errors.Add($"SecureFed:Listen {listenProblem}, got '{Listen}'.");
        }

        if (AdminEnabled)
        {
            ValidateAdminListen(errors, listen);
        }

        if (!string.IsNullOrWhiteSpace(OtlpEndpoint)
            && (!Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out Uri? otlp) || (otlp.Scheme != Uri.UriSchemeHttp && otlp.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add($"SecureFed:OtlpEndpoint must be an http:// or https:// URL (e.g. http://127.0.0.1:4317), got '{OtlpEndpoint}'.");
        }

        if (string.IsNullOrWhiteSpace(KitDirectory))
        {
            errors.Add("SecureFed:KitDirectory is required.");
        }

        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            errors.Add("SecureFed:DataDirectory is required.");
        }
        else if (File.Exists(DataDirectory))
        {
            errors.Add($"SecureFed:DataDirectory '{DataDirectory}' is a file; it must be a folder (new or existing) for the round store, privacy ledger and audit log.");
        }

        Range(errors, "Rounds", Rounds, 1, 100_000);
        Range(errors, "MinSites", MinSites, 2, 10_000);
        if (Threshold != 0 && Threshold < 2)
        {
            errors.Add($"SecureFed:Threshold must be 0 (automatic) or at least 2, got {Threshold}.");
        }

        if (!SecureFed.Protocol.GraphPlanner.TryParsePolicy(Graph, out _))
        {
            errors.Add($"SecureFed:Graph must be complete (complete masking graph up to 512 sites) or sparse (SecAgg+ Harary graph wherever the planner's bounds allow it), got '{Graph}'.");
        }

        Range(errors, "TrainingTimeoutSeconds", TrainingTimeoutSeconds, 1, 86_400);
        Range(errors, "StageTimeoutSeconds", StageTimeoutSeconds, 1, 3_600);
        Range(errors, "ProgressIntervalSeconds", ProgressIntervalSeconds, 0, 3_600);
        if (ProgressIntervalSeconds > 0 && (ProgressSilenceSeconds < 3L * ProgressIntervalSeconds || ProgressSilenceSeconds > 86_400))
        {
            errors.Add($"SecureFed:ProgressSilenceSeconds must be between 3 × ProgressIntervalSeconds ({3L * ProgressIntervalSeconds}: a site is not taken as gone for missing fewer than three reports) and 86400, got {ProgressSilenceSeconds}.");
        }

        if (!(StragglerWaitFactor >= 0 && StragglerWaitFactor <= 1_000))
        {
            errors.Add($"SecureFed:StragglerWaitFactor must be between 0 (off: wait for every member until TrainingTimeoutSeconds, and at later stages until StageTimeoutSeconds) and 1000, got {StragglerWaitFactor.ToString(CultureInfo.InvariantCulture)}.");
        }

        Range(errors, "StragglerMinWaitSeconds", StragglerMinWaitSeconds, 1, 86_400);
        Range(errors, "StageStragglerMinWaitSeconds", StageStragglerMinWaitSeconds, 1, 86_400);
        Range(errors, "JoinTimeoutSeconds", JoinTimeoutSeconds, 1, 86_400);
        Range(errors, "MaxRetryPauseSeconds", MaxRetryPauseSeconds, 0, 3_600);
        Range(errors, "WeightCap", WeightCap, 1, 1_000_000);
        Range(errors, "LocalEpochs", LocalEpochs, 1, 1_000);
        Range(errors, "DpSgdMaxSteps", DpSgdMaxSteps, 0, 1_000_000);
        Range(errors, "DpSgdNoiseShares", DpSgdNoiseShares, 0, 10_000);
        ValidateNoiseShares(errors);
        ValidateConsistencyColluders(errors);
        errors.AddRange(CohortThresholdProblems(MinSites)); // both against a round of MinSites sites; every cohort at start-up
        ValidateLayerScales(errors);
        Range(errors, "BlameExclusionRounds", BlameExclusionRounds, 0, 1_000);
        errors.AddRange(UploadPaceProblems(MinUploadWordsPerSecond, UploadGraceSeconds));
        Range(errors, nameof(ModelDownloadBurst), ModelDownloadBurst, 1, 1_000_000);
        Range(errors, nameof(ModelDownloadRefillSeconds), ModelDownloadRefillSeconds, 1, 86_400);
        if (ConcurrentUploadsProblem(MaxConcurrentUploads.ToString(System.Globalization.CultureInfo.InvariantCulture)) is string uploadsProblem)
        {
            errors.Add(uploadsProblem);
        }
        Range(errors, "MaxBulkCallsPerSite", MaxBulkCallsPerSite, 1, 64);
        if (MaxCallsPerSite < MaxBulkCallsPerSite + BulkCallGate.HonestCallsPerSite || MaxCallsPerSite > 1_024)
        {
            errors.Add($"SecureFed:MaxCallsPerSite must be between {MaxBulkCallsPerSite + BulkCallGate.HonestCallsPerSite} (MaxBulkCallsPerSite + the {BulkCallGate.HonestCallsPerSite} calls an honest agent may have in flight) and 1024, got {MaxCallsPerSite}.");
        }

        Range(errors, "MaxConnectionsPerSite", MaxConnectionsPerSite, 1, 1_024);
        if (KeepModelVersions < 0)
        {
            errors.Add($"SecureFed:KeepModelVersions must be 0 (keep every model version) or the number of newest model versions to keep (at least 1), got {KeepModelVersions}.");
        }

        Range(errors, "EvaluationCountCap", EvaluationCountCap, 1, 1_000_000);
        if (EvaluationEntityTypes.Any(string.IsNullOrWhiteSpace))
        {
            errors.Add("SecureFed:EvaluationEntityTypes must not contain an empty type.");
        }

        foreach (string twice in EvaluationEntityTypes.Where(t => !string.IsNullOrWhiteSpace(t)).GroupBy(t => t, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key))
        {
            errors.Add($"SecureFed:EvaluationEntityTypes lists \"{twice}\" more than once; list each entity type once.");
        }

        Positive(errors, "EpsilonBudget", EpsilonBudget);
        Positive(errors, "L2Clip", L2Clip);
        Positive(errors, "SiteNoiseMultiplier", SiteNoiseMultiplier);
        Positive(errors, "DpSgdNoiseMultiplier", DpSgdNoiseMultiplier);
        Positive(errors, "DpSgdMaxGradNorm", DpSgdMaxGradNorm);
        if (Float32Scalar.IsTooLarge(DpSgdMaxGradNorm))
        {
            // The sites clip in 32-bit floats: libtorch refuses a larger scalar, and every site's training would fail.
            errors.Add(Float32Scalar.TooLarge("SecureFed:DpSgdMaxGradNorm", DpSgdMaxGradNorm));
        }

        Positive(errors, "ServerLearningRate", ServerLearningRate);
        ValidateServerOptimizer(errors);
        if (!(JoinGraceSeconds > 0 && JoinGraceSeconds <= MaxJoinGraceSeconds))
        {
            // Beyond TimeSpan's range (about 9.2e11 s) the cohort wait would throw once MinSites had joined.
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"SecureFed:JoinGraceSeconds must be a positive number of seconds, at most {MaxJoinGraceSeconds}, got {JoinGraceSeconds}."));
        }

        if (!(Delta > 0 && Delta < 1))
        {
            errors.Add($"SecureFed:Delta must be in (0, 1), got {Delta}.");
        }

        if (!(DpSgdSampleRate > 0 && DpSgdSampleRate <= 1))
        {
            errors.Add($"SecureFed:DpSgdSampleRate must be in (0, 1], got {DpSgdSampleRate}.");
        }
        else if (LocalEpochs is >= 1 and <= 1_000 && DpSgdMaxSteps is >= 0 and <= 1_000_000
                 && SecureFed.Privacy.DpSgdSteps.Problem(DpSgdSampleRate, LocalEpochs, DpSgdMaxSteps) is string steps)
        {
            // The agents' own check of every announcement (AgentRunner): refused here, not by every site in every round.
            errors.Add(string.Create(CultureInfo.InvariantCulture,
                $"SecureFed:DpSgdSampleRate {DpSgdSampleRate:G4} with SecureFed:LocalEpochs {LocalEpochs} and SecureFed:DpSgdMaxSteps {DpSgdMaxSteps} is a DP-SGD plan every agent declines: {steps}"));
        }

        if (ModelSpecSha256.Length != 64 || !ModelSpecSha256.All(Uri.IsHexDigit))
        {
            errors.Add("SecureFed:ModelSpecSha256 must be 64 hex digits (see 'securefed model spec').");
        }

        if (ModelParameterCount < 0)
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"SecureFed:ModelParameterCount {ModelParameterCount} is negative; it is derived from SecureFed:ModelSpec (0 leaves it unchecked)."));
        }

        return errors;
    }

    /// <summary>
    /// The threshold of a round of <see cref="MinSites"/> sites, or null when <see cref="MinSites"/>, <see cref="Graph"/>
    /// or <see cref="Threshold"/> is itself invalid (reported under its own name) or the graph planner refuses the size.
    /// Not the smallest threshold of every round: t is not monotone in n (above 512 sites the complete policy switches
    /// to a sparse graph with a smaller t), see <see cref="CohortThresholdProblems"/>.
    /// </summary>
    internal int? MinSitesThresholdOrNull()
    {
        if (!(MinSites is >= 2 and <= 10_000) || !SecureFed.Protocol.GraphPlanner.TryParsePolicy(Graph, out _) || !(Threshold == 0 || Threshold >= 2))
        {
            return null;
        }

        try
        {
            return SecureFed.Protocol.FederatedAveraging.Threshold(PlanGraph(MinSites), Threshold);
        }
        catch (ArgumentException)
        {
            return null; // the graph planner rejects MinSites itself; each round checks its own threshold again
        }
    }

    /// <summary>
    /// <see cref="DpSgdNoiseShares"/> and <see cref="ConsistencyColluders"/> against the smallest threshold of any round
    /// of <see cref="MinSites"/> to <paramref name="largestCohort"/> sites: <see cref="Validate"/> with
    /// <see cref="MinSites"/> itself (it knows no federation), the start-up check (<see cref="RoundCoordinator.CheckStartable"/>)
    /// with the federation's sites not revoked (the manifest does not change while the aggregator runs). t is not
    /// monotone in n: under the complete policy it falls from 257 at 512 sites to 66 above (a sparse masking graph,
    /// k = 130). Before, a setting valid at <see cref="MinSites"/> passed start-up and the first round of a larger cohort
    /// was refused, stopping the federation. Empty when the settings hold for every cohort, or when one of them is
    /// itself invalid (reported by <see cref="Validate"/> under its own name).
    /// </summary>
    internal IReadOnlyList<string> CohortThresholdProblems(int largestCohort)
    {
        if ((ConsistencyColluders <= 0 && DpSgdNoiseShares < 2) || MinSitesThresholdOrNull() is null || largestCohort < MinSites)
        {
            return [];
        }

        (int n, int t) = SecureFed.Protocol.FederatedAveraging.SmallestThreshold(MinSites, largestCohort, GraphPolicy, Threshold);
        string where = $"of a round of SecureFed:MinSites = {MinSites} sites";
        Func<int, string> fix = _ => "lower it or raise SecureFed:MinSites / SecureFed:Threshold";
        SecureFed.Protocol.GraphPlan plan = PlanGraph(n);
        if (!plan.IsComplete)
        {
            // A sparse graph's t is the smallest that meets its privacy bound and still tolerates the planner's 30% dropout: a
            // larger SecureFed:Threshold raises t but rounds then abort when fewer sites drop out (t = 101 of 131: most
            // rounds), and a larger cohort keeps the same t. Only a cohort with the complete graph has a larger t.
            int holders = plan.Degree + 1;
            string graph = SecureFed.Protocol.GraphPlanner.PolicyName(GraphPolicy);
            where = n == MinSites ? where : $"of a round of {n} sites, the smallest of any cohort from SecureFed:MinSites = {MinSites} to the federation's {largestCohort} sites not revoked";
            where += $" ({(n == MinSites ? "at that size" : $"from {n} sites on")} SecureFed:Graph = {graph} uses a sparse masking graph of {holders} share holders per site, whose t does not grow with the cohort)";
            string complete = GraphPolicy == SecureFed.Protocol.GraphPolicy.Complete ? string.Empty : "SecureFed:Graph = complete with ";
            string minSites = MinSites > SecureFed.Protocol.GraphPlanner.CompleteGraphLimit ? $"SecureFed:MinSites at most {SecureFed.Protocol.GraphPlanner.CompleteGraphLimit} and " : string.Empty;
            fix = most => $"lower it to at most {most}, or use {complete}{minSites}a federation of at most {SecureFed.Protocol.GraphPlanner.CompleteGraphLimit} sites not revoked, where every cohort has the complete graph " +
                $"(not a larger SecureFed:Threshold: that graph's t = {plan.Threshold} is the smallest that tolerates the planner's {(int)Math.Round(SecureFed.Protocol.GraphPlanner.DefaultDropoutFraction * 100)}% dropout, and with a larger t rounds abort when fewer sites drop out)";
        }

        List<string> problems = [];
        if (DpSgdNoiseShares >= 2 && DpSgdNoiseShares > t)
        {
            problems.Add($"SecureFed:DpSgdNoiseShares = {DpSgdNoiseShares} exceeds the threshold t = {t} {where}: a sum of t sites would carry less than the announced DP-SGD noise; {fix(t)}.");
        }

        if (ConsistencyColluders > 0 && ConsistencyColluders >= t)
        {
            problems.Add($"SecureFed:ConsistencyColluders = {ConsistencyColluders} is not below the threshold t = {t} {where}: t colluding sites rebuild any site's secrets from their own shares, whatever the quorum; {fix(t - 1)}.");
        }

        return problems;
    }

    private void ValidateNoiseShares(List<string> errors)
    {
        if (DpSgdNoiseShares < 2)
        {
            return;
        }

        if (DpSgdMaxSteps != 1)
        {
            errors.Add($"SecureFed:DpSgdNoiseShares = {DpSgdNoiseShares} (split patient-level noise) needs SecureFed:DpSgdMaxSteps = 1 (one DP-SGD step per round from the global model), got {DpSgdMaxSteps}.");
        }
    }

    private void ValidateConsistencyColluders(List<string> errors)
    {
        if (ConsistencyColluders < 0)
        {
            errors.Add($"SecureFed:ConsistencyColluders must be 0 (the masking graph's own consistency quorum) or the number of colluding sites the quorum guards against, got {ConsistencyColluders}.");
        }
    }

    private void ValidateServerOptimizer(List<string> errors)
    {
        if (!TryParseServerOptimizer(ServerOptimizer, out _))
        {
            errors.Add($"SecureFed:ServerOptimizer must be average (FedAvg), momentum (FedAvgM) or adam (FedAdam), got '{ServerOptimizer}'.");
        }

        // The learning rate is checked above under its own name; the rule's other settings here, each named.
        ServerOptimizerOptions rule = ServerOptimizerOptions with { LearningRate = ServerLearningRate > 0 && double.IsFinite(ServerLearningRate) ? ServerLearningRate : 1 };
        errors.AddRange(rule.Validate("SecureFed:Server"));
    }

    /// <summary>Parses a server update rule: average (avg, fedavg), momentum (fedavgm) or adam (fedadam).</summary>
    public static bool TryParseServerOptimizer(string? name, out ServerOptimizerKind kind)
    {
        try
        {
            kind = ServerOptimizerOptions.ParseKind(name ?? "");
            return true;
        }
        catch (ArgumentException)
        {
            kind = ServerOptimizerKind.Average;
            return false;
        }
    }

    private void ValidateLayerScales(List<string> errors)
    {
        if (DpSgdLayerScales.Length > 10_000)
        {
            errors.Add($"SecureFed:DpSgdLayerScales has {DpSgdLayerScales.Length} entries; one per parameter tensor of the model is expected (at most 10000).");
        }

        for (int i = 0; i < DpSgdLayerScales.Length; i++)
        {
            if (!(DpSgdLayerScales[i] >= RoundParameters.MinLayerScale && DpSgdLayerScales[i] <= RoundParameters.MaxLayerScale))
            {
                errors.Add(string.Create(CultureInfo.InvariantCulture, $"SecureFed:DpSgdLayerScales:{i} must be a number in [{RoundParameters.MinLayerScale:G}, {RoundParameters.MaxLayerScale:G}], got {DpSgdLayerScales[i]:G}."));
            }
        }
    }

    private void ValidateAdminListen(List<string> errors, Uri? listen)
    {
        if (!Uri.TryCreate(AdminListen, UriKind.Absolute, out Uri? admin) || admin.Scheme != Uri.UriSchemeHttp
            || admin.AbsolutePath != "/" || !string.IsNullOrEmpty(admin.Query))
        {
            errors.Add($"SecureFed:AdminListen must be an http://127.0.0.1:PORT URL (the operator's console and /metrics), got '{AdminListen}'.");
            return;
        }

        if (!admin.IsLoopback)
        {
            errors.Add($"SecureFed:AdminListen must bind a loopback address (127.0.0.1, [::1] or localhost), got '{admin.Host}'; " +
                "reach it from elsewhere through an SSH tunnel or a reverse proxy with its own access control.");
        }

        if (listen is not null && admin.Port != 0 && admin.Port == listen.Port)
        {
            errors.Add($"SecureFed:AdminListen must use another port than SecureFed:Listen (both {admin.Port}): the agents' mTLS endpoint never serves the console or metrics.");
        }
    }

    private static void Range(List<string> errors, string name, int value, int min, int max)
    {
        if (value < min || value > max)
        {
            errors.Add($"SecureFed:{name} must be between {min} and {max}, got {value}.");
        }
    }

    private static void Positive(List<string> errors, string name, double value)
    {
        if (!(value > 0) || double.IsInfinity(value))
        {
            errors.Add($"SecureFed:{name} must be a positive number, got {value}.");
        }
    }
}
