using SecureFed.Federation;
using SecureFed.Privacy;

namespace SecureFed.Agent;

/// <summary>
/// Agent configuration (section <c>SecureFed</c> of agent.json, environment variables <c>SecureFed__Name</c>, or
/// <c>--SecureFed:Name=value</c>). The privacy settings here are the hospital's own policy: the agent refuses rounds
/// whose announced parameters are weaker, whatever the aggregator says.
/// </summary>
public sealed class AgentOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "SecureFed";

    /// <summary>This site's name (must match the kit). Required.</summary>
    public string Site { get; set; } = "";

    /// <summary>
    /// The aggregator's https URL, or several separated by commas (the endpoints of one aggregator, e.g. of a cluster's
    /// silos): the agent uses the first that answers and fails over to the next when it cannot connect
    /// (<see cref="AggregatorEndpoints"/>). Required.
    /// </summary>
    public string Aggregator { get; set; } = "";

    /// <summary>
    /// The endpoints of <see cref="Aggregator"/>, in order; each problem (not https, not absolute, a path, a duplicate, an
    /// empty entry) is added to <paramref name="errors"/> naming the entry.
    /// </summary>
    public IReadOnlyList<Uri> AggregatorEndpoints(List<string>? errors = null)
    {
        var endpoints = new List<Uri>();
        string[] entries = (Aggregator ?? "").Split(',', StringSplitOptions.TrimEntries);
        bool several = entries.Length > 1;
        for (int i = 0; i < entries.Length; i++)
        {
            string entry = entries[i];
            string which = several ? $"SecureFed:Aggregator entry {i + 1} of {entries.Length}" : "SecureFed:Aggregator";
            if (entry.Length == 0)
            {
                errors?.Add(several ? $"{which} is empty: separate the aggregator's https:// URLs with single commas, got '{Aggregator}'." : $"SecureFed:Aggregator must be an https:// URL, got '{Aggregator}'.");
                continue;
            }

            if (!ServiceUrl.TryParseHttps(entry, out Uri? uri, out string problem))
            {
                errors?.Add($"{which} {problem}, got '{entry}'.");
                continue;
            }

            if (uri.Port == 0)
            {
                // Port 0 lets a listener pick a free port; no aggregator is reached there, so the agent would wait forever.
                errors?.Add($"{which} has port 0, where no aggregator can be reached; give the port the aggregator listens on, got '{entry}'.");
                continue;
            }

            if (several && (uri.AbsolutePath != "/" || !string.IsNullOrEmpty(uri.Query)))
            {
                errors?.Add($"{which} must be an https://host:port URL without a path, got '{entry}'.");
                continue;
            }

            if (endpoints.Any(e => Uri.Compare(e, uri, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0))
            {
                errors?.Add($"{which} repeats '{entry}'.");
                continue;
            }

            endpoints.Add(uri);
        }

        return endpoints;
    }

    /// <summary>The site's kit folder. <value>The default value is ".".</value></summary>
    public string KitDirectory { get; set; } = ".";

    /// <summary>Where the ledger, audit log and last model are kept. <value>The default value is ./data.</value></summary>
    public string DataDirectory { get; set; } = "./data";

    /// <summary>
    /// Whether start-up repairs a torn last line of the audit log (a crash mid-write): the torn bytes are moved to
    /// <c>audit/quarantine/</c> (kept, never deleted) and an audit event records their size and SHA-256. Off, the
    /// agent refuses to start and names this setting.
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
    /// <value>The default value is false.</value>
    /// </summary>
    public bool AcceptReadableKeys { get; set; }

    /// <summary>
    /// The model specification file (<c>securefed model spec</c>), read by the CLI at start-up; empty is the default
    /// clinical tagger. Named in the error the agent stops with when the federation's specification differs.
    /// </summary>
    public string ModelSpec { get; set; } = "";

    /// <summary>CoNLL training file; empty uses the embedded synthetic corpus for this site's profile.</summary>
    public string TrainFile { get; set; } = "";

    /// <summary>CoNLL development file (for the dev F1 shown in progress); optional.</summary>
    public string DevFile { get; set; } = "";

    /// <summary>Synthetic sentences when no training file is set. <value>The default value is 600.</value></summary>
    public int SyntheticSentences { get; set; } = 600;

    /// <summary>auto, cpu or cuda. <value>The default value is auto.</value></summary>
    public string Device { get; set; } = "auto";

    /// <summary>Patient-level (record) ε budget of this site. <value>The default value is 8.</value></summary>
    public double EpsilonBudget { get; set; } = 8.0;

    /// <summary>Site-level ε budget this site accepts for its updates. <value>The default value is 10.</value></summary>
    public double SiteEpsilonBudget { get; set; } = 10.0;

    /// <summary>δ for both guarantees. <value>The default value is 1e-5.</value></summary>
    public double Delta { get; set; } = 1e-5;

    /// <summary>Smallest DP-SGD noise multiplier this site accepts. <value>The default value is 0.5.</value></summary>
    public double MinDpSgdNoiseMultiplier { get; set; } = 0.5;

    /// <summary>
    /// Accept rounds with split patient-level noise (docs/PROTOCOL.md, "Split patient-level noise"; aggregator
    /// <c>DpSgdNoiseShares</c> = k ≥ 2): this site then adds only σ/√k of the DP-SGD noise, so its patient-level ε
    /// (<see cref="EpsilonBudget"/>, at the announced σ) holds against the aggregator only while secure aggregation
    /// holds; if the aggregator and all other sites collude the site is protected by its own share alone, a larger
    /// "collusion ε" capped by <see cref="MaxCollusionEpsilon"/>. Off: such rounds are declined with the reason.
    /// <value>The default value is false.</value>
    /// </summary>
    public bool AcceptSplitPatientNoise { get; set; }

    /// <summary>
    /// Record-level ε budget of this site if the aggregator and all other sites collude (the DP-SGD steps accounted at
    /// the noise this site added itself); required (&gt; 0) with <see cref="AcceptSplitPatientNoise"/>. A round that
    /// would exceed it is declined. <value>The default value is 0 (unset).</value>
    /// </summary>
    public double MaxCollusionEpsilon { get; set; }

    /// <summary>
    /// How many colluding sites this site guards against, beyond what the protocol's t consistency signatures give, when
    /// an aggregator shows different sites different survivor sets (threat model C3; docs/PROTOCOL.md, "Consistency
    /// quorum"): the site reveals its shares only with max(t, ⌊(n + c)/2⌋ + 1) valid signatures on the survivor set, and
    /// declines a round that has c ≥ t (t colluders rebuild any site's secrets from their own shares) or whose announced
    /// consistency quorum is for fewer colluders (the aggregator's <c>ConsistencyColluders</c>, bound into the round
    /// digest: the aggregator would move to unmasking with fewer signatures than this site answers with). Raising it
    /// costs dropout tolerance: every survivor set must then be signed by that many sites.
    /// <value>The default value is 0: t signatures, which keep out 2t − n − 1 colluders (one with an even cohort and the
    /// default t = ⌊n/2⌋ + 1, none with an odd one).</value>
    /// </summary>
    public int ColludingSites { get; set; }

    /// <summary>Smallest site-level noise multiplier this site accepts. <value>The default value is 0.1.</value></summary>
    public double MinSiteNoiseMultiplier { get; set; } = 0.1;

    /// <summary>
    /// Masking graphs this site accepts (docs/PROTOCOL.md "Masking graph"): <c>complete</c> = only the complete graph
    /// up to 512 sites (a SecAgg+ Harary graph only above); <c>sparse</c> = also a Harary graph for smaller cohorts.
    /// Either way a Harary graph's threshold must meet the 2^-40 privacy bound for 5% corrupt sites, and a round that
    /// does not fit is declined with the reason. <value>The default value is complete.</value>
    /// </summary>
    public string Graph { get; set; } = "complete";

    /// <summary><see cref="Graph"/> parsed (complete when the setting is invalid; <see cref="Validate"/> reports that).</summary>
    public SecureFed.Protocol.GraphPolicy GraphPolicy => SecureFed.Protocol.GraphPlanner.TryParsePolicy(Graph, out SecureFed.Protocol.GraphPolicy policy) ? policy : SecureFed.Protocol.GraphPolicy.Complete;

    /// <summary>Local learning rate (of <see cref="Optimizer"/>; plain SGD on the noisy DP-SGD gradient, docs/utility.md; 0.5 before session 40). <value>The default value is 2.</value></summary>
    public double LearningRate { get; set; } = 2.0;

    /// <summary>Local optimiser: <c>adam</c> or <c>sgd</c>. <value>The default value is sgd.</value></summary>
    public string Optimizer { get; set; } = "sgd";

    /// <summary>
    /// DP-SGD keeps the model's embedding tables as the aggregator's model has them (e.g. a public warm start):
    /// noise and updates only on the encoder and head (<see cref="Tagger.DpSgdOptions.FreezeEmbeddings"/>).
    /// <value>The default value is false.</value>
    /// </summary>
    public bool DpFreezeEmbeddings { get; set; }

    /// <summary>
    /// DP-SGD computes each example's gradient with the model's dropout and word dropout, as ordinary training does.
    /// False (the default): without them (<see cref="Tagger.DpSgdOptions.NoDropout"/>); the noise already regularises, and
    /// from a random model this measured 8.3 points more test F1 at ε = 8 over 3 seeds (4.6–12.6) (docs/utility.md, "Session 20").
    /// <value>The default value is false.</value>
    /// </summary>
    public bool DpDropout { get; set; }

    /// <summary>
    /// The entity types this site's annotators mark, comma-separated (e.g. <c>Disease</c>), when the federation's model
    /// has more: the site then trains on partial labels, so its unmarked mentions of another site's types are not
    /// taught as <c>O</c> (docs/tagger.md, "Partial annotation"; docs/utility.md, "By corpus"). Empty = the site marks
    /// every type of the model (the default). Every type must be one of the model's, and the site's data must carry no
    /// tag of a type outside the list.
    /// <value>The default value is empty.</value>
    /// </summary>
    public string AnnotatedTypes { get; set; } = "";

    /// <summary><see cref="AnnotatedTypes"/> as a list (null when empty).</summary>
    public IReadOnlyList<string>? ParsedAnnotatedTypes =>
        string.IsNullOrWhiteSpace(AnnotatedTypes) ? null : [.. AnnotatedTypes.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];

    /// <summary>The parsed <see cref="Optimizer"/> (call after <see cref="Validate"/>).</summary>
    internal Tagger.TaggerOptimizer ParsedOptimizer => Optimizer.ToLowerInvariant() == "sgd" ? Tagger.TaggerOptimizer.Sgd : Tagger.TaggerOptimizer.Adam;

    /// <summary>Deadline of every unary call, in seconds (long-polls use the announced stage deadline). <value>The default value is 30.</value></summary>
    public int CallTimeoutSeconds { get; set; } = 30;

    /// <summary>
    /// The longest stage budget (<c>stage_timeout_seconds</c>) this site accepts in a round announcement, in seconds. The
    /// agent waits up to that budget plus 30 s for each later stage, so an aggregator announcing days (or 2^32 − 1 s)
    /// could hold the agent in one round that long; a round announcing more, or 0, is declined naming both values.
    /// Between 1 and 86,400. <value>The default value is 3600 (the aggregator's own bound for its StageTimeoutSeconds).</value>
    /// </summary>
    public int MaxStageTimeoutSeconds { get; set; } = 3_600;

    /// <summary>
    /// Hosts (names, IP addresses or IP networks in CIDR form such as 10.0.0.0/24, comma-separated) besides those of
    /// <see cref="Aggregator"/> that a round of protocol
    /// version 4 may name as slice endpoints (docs/PROTOCOL.md "Version 4: uploads by slice"): the silos of an aggregator
    /// cluster that serve slices but are not among the agent's aggregator endpoints. A slice endpoint on any other host is
    /// declined, so that an aggregator cannot make the agent connect to hosts of the hospital's own network. Any port of
    /// an allowed host is accepted. <value>The default value is empty (only the aggregator's own hosts).</value>
    /// </summary>
    public string AllowedSliceHosts { get; set; } = "";

    /// <summary><see cref="AllowedSliceHosts"/> as a list (brackets of an IPv6 address removed; empty when unset).</summary>
    public IReadOnlyList<string> ParsedAllowedSliceHosts =>
        [.. (AllowedSliceHosts ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(SliceHost)];

    /// <summary>A host as compared for slice endpoints: without the brackets of an IPv6 address.</summary>
    internal static string SliceHost(string host) => host.Length > 2 && host[0] == '[' && host[^1] == ']' ? host[1..^1] : host;

    /// <summary>Retries of a transient failure. <value>The default value is 4.</value></summary>
    public int MaxRetries { get; set; } = 4;

    /// <summary>Seed of the locally created model before the first global model arrives; local DP-SGD draws its sampling, dropout and noise from the OS CSPRNG, never from it. <value>The default value is 1.</value></summary>
    public int Seed { get; set; } = 1;

    /// <summary>Stop after this many rounds (0 = until the federation finishes). <value>The default value is 0.</value></summary>
    public int MaxRounds { get; set; }

    /// <summary>
    /// Take part in federated evaluation: put this site's TP/FP/FN counts of the received model on its dev data into
    /// the masked input, where only their sum over the round's contributors is revealed (docs/PROTOCOL.md). The counts
    /// are not DP-protected; false sends zeros instead. <value>The default value is true.</value>
    /// </summary>
    public bool FederatedEvaluation { get; set; } = true;

    /// <summary>
    /// OTLP endpoint (http:// or https:// URL, e.g. http://127.0.0.1:4317) of the hospital's own collector, to push this
    /// agent's metrics (meter <c>SecureFed.Agent</c>, runtime, HTTP client) and traces (a trace per round, a span per
    /// stage) to. Never the aggregator. Empty: no export. <value>The default value is empty.</value>
    /// </summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary>
    /// The agent's admin listener, serving this agent's metrics at <c>/metrics</c> (Prometheus text format) for the
    /// hospital's own Prometheus to scrape: an <c>http://127.0.0.1:PORT</c> URL (loopback only: 127.0.0.1, [::1] or
    /// localhost; port 0 picks a free port), as the aggregator's <c>SecureFed:AdminListen</c>. The agent has no other
    /// listener (its calls to the aggregator are outgoing mTLS). Empty turns it off.
    /// <value>The default value is empty (off).</value>
    /// </summary>
    public string? AdminListen { get; set; }

    /// <summary>True when <see cref="AdminListen"/> is set.</summary>
    public bool AdminEnabled => !string.IsNullOrWhiteSpace(AdminListen);

    /// <summary>Checks every setting; returns the problems (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(Site))
        {
            errors.Add("SecureFed:Site is required.");
        }

        IReadOnlyList<Uri> endpoints = AggregatorEndpoints(errors);

        DataFile(errors, "TrainFile", TrainFile);
        DataFile(errors, "DevFile", DevFile);
        if (File.Exists(DataDirectory))
        {
            errors.Add($"SecureFed:DataDirectory '{DataDirectory}' is a file; it must be a folder (new or existing) for the privacy ledger and audit log.");
        }

        if (!string.IsNullOrWhiteSpace(OtlpEndpoint)
            && (!Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out Uri? otlp) || (otlp.Scheme != Uri.UriSchemeHttp && otlp.Scheme != Uri.UriSchemeHttps)))
        {
            errors.Add($"SecureFed:OtlpEndpoint must be an http:// or https:// URL (e.g. http://127.0.0.1:4317), got '{OtlpEndpoint}'.");
        }
        else if (!string.IsNullOrWhiteSpace(OtlpEndpoint) && Uri.TryCreate(OtlpEndpoint, UriKind.Absolute, out Uri? collector)
            && endpoints.Any(aggregator => string.Equals(aggregator.Host, collector.Host, StringComparison.OrdinalIgnoreCase) && aggregator.Port == collector.Port))
        {
            errors.Add($"SecureFed:OtlpEndpoint '{OtlpEndpoint}' is the aggregator's address: the agent's telemetry goes to the hospital's own collector, never to the aggregator.");
        }

        if (AdminEnabled)
        {
            ValidateAdminListen(errors);
        }

        if (ParsedAnnotatedTypes is { } annotated && annotated.Distinct(StringComparer.Ordinal).Count() != annotated.Count)
        {
            errors.Add($"SecureFed:AnnotatedTypes names a type twice: '{AnnotatedTypes}'.");
        }

        if (Device is not ("auto" or "cpu" or "cuda"))
        {
            errors.Add($"SecureFed:Device must be auto, cpu or cuda, got '{Device}'.");
        }

        Positive(errors, "EpsilonBudget", EpsilonBudget);
        Positive(errors, "SiteEpsilonBudget", SiteEpsilonBudget);
        Positive(errors, "LearningRate", LearningRate);
        if (Float32Scalar.IsTooLarge(LearningRate))
        {
            errors.Add(Float32Scalar.TooLarge("SecureFed:LearningRate", LearningRate));
        }

        if (Optimizer?.ToLowerInvariant() is not ("adam" or "sgd"))
        {
            errors.Add($"SecureFed:Optimizer must be adam or sgd, got '{Optimizer}'.");
        }
        if (!(Delta > 0 && Delta < 1))
        {
            errors.Add($"SecureFed:Delta must be in (0, 1), got {Delta}.");
        }

        if (SyntheticSentences is < 10 or > 1_000_000)
        {
            errors.Add($"SecureFed:SyntheticSentences must be between 10 and 1000000, got {SyntheticSentences}.");
        }

        if (CallTimeoutSeconds is < 1 or > 3600)
        {
            errors.Add($"SecureFed:CallTimeoutSeconds must be between 1 and 3600, got {CallTimeoutSeconds}.");
        }

        if (MaxStageTimeoutSeconds is < 1 or > 86_400)
        {
            errors.Add($"SecureFed:MaxStageTimeoutSeconds must be between 1 and 86400, got {MaxStageTimeoutSeconds}.");
        }

        foreach (string host in ParsedAllowedSliceHosts)
        {
            bool valid = host.Contains('/', StringComparison.Ordinal)
                ? System.Net.IPNetwork.TryParse(host, out _)
                : Uri.CheckHostName(host) != UriHostNameType.Unknown;
            if (!valid)
            {
                errors.Add($"SecureFed:AllowedSliceHosts must list host names, IP addresses or IP networks in CIDR form (10.0.0.0/24; no scheme, port or path), separated by commas, got '{host}'.");
            }
        }

        if (MaxRetries is < 0 or > 20)
        {
            errors.Add($"SecureFed:MaxRetries must be between 0 and 20, got {MaxRetries}.");
        }

        if (ColludingSites < 0)
        {
            errors.Add($"SecureFed:ColludingSites must be 0 (the protocol's t signatures) or the number of colluding sites to guard against, got {ColludingSites}.");
        }

        if (!SecureFed.Protocol.GraphPlanner.TryParsePolicy(Graph, out _))
        {
            errors.Add($"SecureFed:Graph must be complete (accept the complete masking graph only, up to 512 sites) or sparse (also accept a SecAgg+ Harary graph), got '{Graph}'.");
        }

        if (AcceptSplitPatientNoise && Optimizer?.ToLowerInvariant() == "adam")
        {
            errors.Add("SecureFed:AcceptSplitPatientNoise needs SecureFed:Optimizer = sgd: with adam a site's step is not linear in its noisy gradient, so the sum of the sites' steps would not be one DP-SGD step.");
        }

        if (AcceptSplitPatientNoise && (!(MaxCollusionEpsilon > 0) || double.IsInfinity(MaxCollusionEpsilon)))
        {
            errors.Add($"SecureFed:MaxCollusionEpsilon must be a positive number when SecureFed:AcceptSplitPatientNoise is true (the site's record-level ε budget if the aggregator and all other sites collude), got {MaxCollusionEpsilon}.");
        }
        else if (!AcceptSplitPatientNoise && (MaxCollusionEpsilon < 0 || double.IsNaN(MaxCollusionEpsilon) || double.IsInfinity(MaxCollusionEpsilon)))
        {
            errors.Add($"SecureFed:MaxCollusionEpsilon must be 0 (unset) or a positive number, got {MaxCollusionEpsilon}.");
        }

        // NaN would compare false against every announced σ and so accept any noise; infinity would decline every round.
        NoiseMinimum(errors, "MinDpSgdNoiseMultiplier", MinDpSgdNoiseMultiplier);
        NoiseMinimum(errors, "MinSiteNoiseMultiplier", MinSiteNoiseMultiplier);

        if (MaxRounds < 0)
        {
            errors.Add($"SecureFed:MaxRounds must be 0 (until the federation finishes) or the number of rounds to take part in, got {MaxRounds}.");
        }

        return errors;
    }

    private void ValidateAdminListen(List<string> errors)
    {
        if (!Uri.TryCreate(AdminListen, UriKind.Absolute, out Uri? admin) || admin.Scheme != Uri.UriSchemeHttp
            || admin.AbsolutePath != "/" || !string.IsNullOrEmpty(admin.Query) || !string.IsNullOrEmpty(admin.UserInfo))
        {
            errors.Add($"SecureFed:AdminListen must be an http://127.0.0.1:PORT URL (port 0 to 65535; the agent's /metrics), got '{AdminListen}'.");
            return;
        }

        if (!admin.IsLoopback)
        {
            errors.Add($"SecureFed:AdminListen must bind a loopback address (127.0.0.1, [::1] or localhost), got '{admin.Host}'; " +
                "scrape it from elsewhere through an SSH tunnel or a reverse proxy with its own access control.");
            return;
        }

        if (AggregatorEndpoints().Any(aggregator => aggregator.IsLoopback && admin.Port != 0 && admin.Port == aggregator.Port))
        {
            errors.Add($"SecureFed:AdminListen must use another port than the aggregator's ({admin.Port}): its mTLS endpoint never serves the agent's metrics.");
        }
    }

    private static void DataFile(List<string> errors, string name, string path)
    {
        if (string.IsNullOrEmpty(path) || File.Exists(path))
        {
            return;
        }

        errors.Add(Directory.Exists(path)
            ? $"SecureFed:{name} '{path}' is a folder; give the path of a CoNLL file."
            : $"SecureFed:{name} '{path}' does not exist.");
    }

    private static void NoiseMinimum(List<string> errors, string name, double value)
    {
        if (!(value >= 0) || double.IsInfinity(value))
        {
            errors.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"SecureFed:{name} must be 0 or a positive number (the smallest noise multiplier this site accepts), got {value}."));
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
