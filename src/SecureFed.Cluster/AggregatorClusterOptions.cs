using System.Globalization;
using System.Net;
using Npgsql;
using Orleans.Configuration;
using SecureFed.Federation;

namespace SecureFed.Cluster;

/// <summary>
/// The optional cluster section of aggregator.json (<c>SecureFed:Cluster</c>). Absent: the aggregator is the single
/// process it always was and none of this is read. Present: this process is one silo of the aggregator cluster. Validated
/// at start-up by <see cref="Validate"/>; every problem is reported with the setting's name.
/// </summary>
public sealed class AggregatorClusterOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "SecureFed:Cluster";

    /// <summary>Port for silo-to-silo traffic. <value>The default value is 11111.</value></summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Port where cluster clients (the gRPC fronts, the benchmark) connect. <value>The default value is 30000.</value></summary>
    public int GatewayPort { get; set; } = 30000;

    /// <summary>The address the silo advertises to the others. <value>The default value is 127.0.0.1.</value></summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";

    /// <summary>
    /// Removed setting. Membership was kept by a primary silo at this port; it is now kept in the PostgreSQL database of
    /// <see cref="ConnectionString"/> (Orleans' ADO.NET clustering), so no silo is primary. Bound only so that a
    /// configuration still naming it is refused with that explanation instead of being silently ignored.
    /// <value>The default value is null (absent).</value>
    /// </summary>
    public int? PrimarySiloPort { get; set; }

    /// <summary>
    /// Npgsql connection string of the PostgreSQL database that keeps the cluster's membership (Orleans' tables
    /// OrleansMembershipTable, OrleansMembershipVersionTable, OrleansQuery, created by the first silo that starts) and its
    /// grain state (the round ledger, table securefed_grain_state). Every silo of one cluster names the same database.
    /// Required, with Host and Database.
    /// </summary>
    public string ConnectionString { get; set; } = "";

    /// <summary>
    /// Words per slice of the input vector; a round of m words has ⌈m / SliceSize⌉ slices, spread over the silos.
    /// <value>The default value is 4194304 (16 MiB of words per slice).</value>
    /// </summary>
    public int SliceSize { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// True on every coordinator-eligible silo. The one holding the coordinator lease in the cluster's database is the
    /// <b>coordinator</b>: it also runs the aggregator's mTLS gRPC service and round coordinator (model, privacy ledger,
    /// round store, signed audit log: the <c>SecureFed</c> settings of the single-process aggregator) with each round's
    /// state in the cluster's grains; the others wait for the lease (docs/cluster.md §6). Silos without it host slices only.
    /// <value>The default value is false.</value>
    /// </summary>
    public bool Coordinator { get; set; }

    /// <summary>
    /// On a coordinator-eligible silo: take over the coordinator's role even when this silo's round-affecting settings
    /// (<see cref="Aggregator.RoundSettings"/>: DP parameters, budget, cohort and threshold, graph, server update rule and
    /// its hyper-parameters, layer scales, model, rounds, evaluation) differ from those the federation's last coordinator
    /// saved in the cluster's database. False: such a silo refuses the role, naming every differing setting with both
    /// values, at start-up already when it can read the saved settings then, and when it acquires the lease. True: it takes
    /// over with its own settings and writes the changes to the audit log (event <c>coordinator.settings_changed</c>); set
    /// it for the deployment that changes settings on purpose and remove it afterwards (docs/cluster.md §6, "Coordinator
    /// settings"). <value>The default value is false.</value>
    /// </summary>
    public bool AcceptChangedSettings { get; set; }

    /// <summary>
    /// Length of the coordinator lease in the cluster's database (docs/cluster.md §6): a coordinator silo that has not
    /// renewed it for this long may be replaced by another coordinator-eligible silo.
    /// <value>The default value is 15.</value>
    /// </summary>
    public double LeaseSeconds { get; set; } = Lease.LeaseTerms.Default.Duration.TotalSeconds;

    /// <summary>How often the coordinator renews its lease. <value>The default value is 3.</value></summary>
    public double LeaseRenewSeconds { get; set; } = Lease.LeaseTerms.Default.RenewInterval.TotalSeconds;

    /// <summary>
    /// How long before the lease would expire the coordinator stops driving rounds when it could not renew it (covers clock
    /// drift and pauses). <value>The default value is 3.</value>
    /// </summary>
    public double LeaseSafetyMarginSeconds { get; set; } = Lease.LeaseTerms.Default.SafetyMargin.TotalSeconds;

    /// <summary>The lease terms of <see cref="LeaseSeconds"/>, <see cref="LeaseRenewSeconds"/> and <see cref="LeaseSafetyMarginSeconds"/>.</summary>
    public Lease.LeaseTerms LeaseTerms => new(Seconds(LeaseSeconds), Seconds(LeaseRenewSeconds), Seconds(LeaseSafetyMarginSeconds));

    /// <summary>
    /// On a silo that is not the coordinator: the https:// URL (IP address and port; port 0 picks a free one) where this
    /// silo serves agents the slices of their masked inputs it hosts (protocol version 4, docs/cluster.md §6), with the
    /// aggregator's kit of <c>SecureFed:KitDirectory</c>. Empty: the silo serves no agents (unless it is a
    /// coordinator-eligible standby with a <c>Listen</c> port, whose front serves them there), and rounds whose slices it
    /// hosts take whole masked inputs through the coordinator (version 3). The coordinator serves its own slices on
    /// <c>SecureFed:Listen</c> and must not set this. <value>The default value is empty.</value>
    /// </summary>
    public string AgentListen { get; set; } = "";

    /// <summary>
    /// Security of the cluster's own ports (<see cref="SiloPort"/>, <see cref="GatewayPort"/>): <c>mutual</c> (mutual TLS
    /// with the aggregator's certificate of <c>SecureFed:KitDirectory</c>, which every silo then needs; a peer must present
    /// that same certificate: <see cref="ClusterTls"/>) or <c>off</c> (plain TCP, only where no one else can reach the
    /// ports). Every silo of one cluster uses the same setting. <value>The default value is "mutual".</value>
    /// </summary>
    public string Tls { get; set; } = ClusterTls.Mutual;

    /// <summary>
    /// The directory under which this silo keeps its slice spills (docs/cluster.md §1, "Spills"), in
    /// <c>securefed-slice-spill/&lt;address&gt;-&lt;silo port&gt;</c>: an absolute path, created if missing, which the silo
    /// must be able to write (checked at start-up). Empty: the machine's temporary directory (<c>TMPDIR</c>), as before.
    /// <value>The default value is empty.</value>
    /// </summary>
    public string SpillDirectory { get; set; } = "";

    /// <summary>
    /// How long a silo waits for a liveness probe's answer before counting it as missed (Orleans'
    /// <see cref="ClusterMembershipOptions.ProbeTimeout"/>). Together with <see cref="MissedProbesLimit"/> and
    /// <see cref="VotesForDeathDeclaration"/> it sets how soon a silo that died without a goodbye is declared dead and its
    /// slices are placed elsewhere (docs/cluster.md §2). Null: Orleans' default (5 s). <value>The default value is null.</value>
    /// </summary>
    public double? ProbeTimeoutSeconds { get; set; }

    /// <summary>
    /// Missed probes after which a silo suspects another one and votes it dead (Orleans'
    /// <see cref="ClusterMembershipOptions.NumMissedProbesLimit"/>). Null: Orleans' default (3). <value>The default value is null.</value>
    /// </summary>
    public int? MissedProbesLimit { get; set; }

    /// <summary>
    /// How many other silos each silo probes (Orleans' <see cref="ClusterMembershipOptions.NumProbedSilos"/>). Null: Orleans'
    /// default (10). <value>The default value is null.</value>
    /// </summary>
    public int? ProbedSilos { get; set; }

    /// <summary>
    /// Votes that declare a silo dead (Orleans' <see cref="ClusterMembershipOptions.NumVotesForDeathDeclaration"/>); at most
    /// the probed silos. Null: Orleans' default (2). <value>The default value is null.</value>
    /// </summary>
    public int? VotesForDeathDeclaration { get; set; }

    /// <summary>
    /// How often a silo reads the membership table in PostgreSQL (Orleans' <see cref="ClusterMembershipOptions.TableRefreshTimeout"/>).
    /// Null: Orleans' default (60 s). <value>The default value is null.</value>
    /// </summary>
    public double? TableRefreshSeconds { get; set; }

    /// <summary>
    /// How long a dead silo's row stays in the membership table before Orleans' clean-up may delete it (Orleans'
    /// <see cref="ClusterMembershipOptions.DefunctSiloExpiration"/>). Null: Orleans' default (one week).
    /// <value>The default value is null.</value>
    /// </summary>
    public double? DefunctSiloExpirationHours { get; set; }

    /// <summary>
    /// Sets the membership settings given (<see cref="ProbeTimeoutSeconds"/>, <see cref="MissedProbesLimit"/>,
    /// <see cref="ProbedSilos"/>, <see cref="VotesForDeathDeclaration"/>, <see cref="TableRefreshSeconds"/>,
    /// <see cref="DefunctSiloExpirationHours"/>) on Orleans' options; those left null keep Orleans' defaults. Call only on
    /// validated options.
    /// </summary>
    public void ApplyMembership(ClusterMembershipOptions membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        if (ProbeTimeoutSeconds is double probe)
        {
            membership.ProbeTimeout = TimeSpan.FromSeconds(probe);
        }

        if (MissedProbesLimit is int missed)
        {
            membership.NumMissedProbesLimit = missed;
        }

        if (ProbedSilos is int probed)
        {
            membership.NumProbedSilos = probed;
        }

        if (VotesForDeathDeclaration is int votes)
        {
            membership.NumVotesForDeathDeclaration = votes;
        }

        if (TableRefreshSeconds is double refresh)
        {
            membership.TableRefreshTimeout = TimeSpan.FromSeconds(refresh);
        }

        if (DefunctSiloExpirationHours is double hours)
        {
            membership.DefunctSiloExpiration = TimeSpan.FromHours(hours);
        }
    }

    /// <summary>Whether <see cref="Tls"/> asks for mutual TLS.</summary>
    public bool MutualTls => string.Equals(Tls?.Trim(), ClusterTls.Mutual, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The URL agents are told to upload this silo's slices to, from the address Kestrel listens on: an unspecified host
    /// (0.0.0.0, [::]) becomes <see cref="AdvertisedAddress"/>.
    /// </summary>
    public Uri AdvertisedAgentEndpoint(Uri listen)
    {
        ArgumentNullException.ThrowIfNull(listen);
        bool unspecified = IPAddress.TryParse(listen.Host.Trim('[', ']'), out IPAddress? host) && (host.Equals(IPAddress.Any) || host.Equals(IPAddress.IPv6Any));
        return unspecified ? new UriBuilder(listen) { Host = AdvertisedAddress }.Uri : listen;
    }

    /// <summary>Checks every setting; returns the problems (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        Port(errors, nameof(SiloPort), SiloPort);
        Port(errors, nameof(GatewayPort), GatewayPort);
        if (PrimarySiloPort is not null)
        {
            errors.Add($"{Section}:PrimarySiloPort is no longer used: membership is kept in the PostgreSQL database of {Section}:ConnectionString and no silo is primary; remove the setting.");
        }
        if (SiloPort == GatewayPort && SiloPort is > 0 and <= 65535)
        {
            errors.Add($"{Section}:SiloPort and {Section}:GatewayPort must differ, both are {SiloPort}.");
        }

        if (!MutualTls && !string.Equals(Tls?.Trim(), ClusterTls.Off, StringComparison.OrdinalIgnoreCase))
        {
            errors.Add($"{Section}:Tls must be '{ClusterTls.Mutual}' (mutual TLS with the aggregator's certificate, the default) or '{ClusterTls.Off}', got '{Tls}'.");
        }

        if (!IPAddress.TryParse(AdvertisedAddress, out _))
        {
            errors.Add($"{Section}:AdvertisedAddress must be an IP address, got '{AdvertisedAddress}'.");
        }

        if (!string.IsNullOrWhiteSpace(AgentListen))
        {
            if (!Uri.TryCreate(AgentListen, UriKind.Absolute, out Uri? listen) || listen.Scheme != Uri.UriSchemeHttps || !IPAddress.TryParse(listen.Host.Trim('[', ']'), out _)
                || listen.AbsolutePath != "/")
            {
                string problem = ServiceUrl.PortProblem(AgentListen) ?? "must be an https:// URL with an IP address and a port (e.g. https://127.0.0.1:7444)";
                errors.Add($"{Section}:AgentListen {problem}, got '{AgentListen}'.");
            }

            if (Coordinator)
            {
                errors.Add($"{Section}:AgentListen is for silos that are not the coordinator; the coordinator serves its slices on SecureFed:Listen. Remove it, or set {Section}:Coordinator to false.");
            }
        }

        if (double.IsFinite(LeaseSeconds) && double.IsFinite(LeaseRenewSeconds) && double.IsFinite(LeaseSafetyMarginSeconds))
        {
            errors.AddRange(LeaseTerms.Validate(Section + ":"));
        }
        else
        {
            errors.Add($"{Section}:LeaseSeconds, LeaseRenewSeconds and LeaseSafetyMarginSeconds must be finite numbers of seconds.");
        }

        if (SpillDirectoryProblem(SpillDirectory) is string spill)
        {
            errors.Add(spill);
        }

        ValidateMembership(errors);

        if (SliceSize < 1024 || SliceSize > 64 * 1024 * 1024)
        {
            errors.Add($"{Section}:SliceSize must be between 1024 and {64 * 1024 * 1024} words, got {SliceSize}.");
        }

        if (string.IsNullOrWhiteSpace(ConnectionString))
        {
            errors.Add($"{Section}:ConnectionString is required (an Npgsql connection string to the cluster's PostgreSQL database).");
        }
        else
        {
            try
            {
                var builder = new NpgsqlConnectionStringBuilder(ConnectionString);
                if (string.IsNullOrWhiteSpace(builder.Host))
                {
                    errors.Add($"{Section}:ConnectionString must name a Host.");
                }

                if (string.IsNullOrWhiteSpace(builder.Database))
                {
                    errors.Add($"{Section}:ConnectionString must name a Database.");
                }
            }
            catch (ArgumentException ex)
            {
                errors.Add($"{Section}:ConnectionString is not a valid Npgsql connection string: {ex.Message}");
            }
        }

        return errors;
    }

    /// <summary>
    /// Checks the silo's role against the rest of its configuration: a silo that is not the coordinator serves no agents,
    /// so a <c>SecureFed:Listen</c> address there (e.g. an <c>aggregator.json</c> copied without setting
    /// <see cref="Coordinator"/>) is refused instead of leaving the agents without an aggregator.
    /// </summary>
    /// <param name="listen">The configuration's <c>SecureFed:Listen</c>, or null when absent.</param>
    /// <param name="kitDirectory">The configuration's <c>SecureFed:KitDirectory</c>, or null when absent (required with <see cref="AgentListen"/> and with mutual <see cref="Tls"/>; the coordinator's aggregator settings require it anyway).</param>
    public IReadOnlyList<string> ValidateRole(string? listen, string? kitDirectory = null)
    {
        var errors = new List<string>();
        if (!Coordinator && !string.IsNullOrWhiteSpace(listen))
        {
            errors.Add($"SecureFed:Listen is set ('{listen}') but {Section}:Coordinator is false: only the coordinator silo runs the aggregator service; set {Section}:Coordinator to true on the coordinator-eligible silos, or remove SecureFed:Listen from this silo's configuration (a slice silo serves agents on {Section}:AgentListen).");
        }

        if (!Coordinator && !string.IsNullOrWhiteSpace(AgentListen) && string.IsNullOrWhiteSpace(kitDirectory))
        {
            errors.Add($"SecureFed:KitDirectory is required with {Section}:AgentListen: the silo serves agents with the aggregator's kit (TLS certificate, federation CA, manifest).");
        }
        else if (!Coordinator && MutualTls && string.IsNullOrWhiteSpace(kitDirectory))
        {
            errors.Add($"SecureFed:KitDirectory is required on every silo while {Section}:Tls is '{ClusterTls.Mutual}' (the default): silo-to-silo and gateway connections are mutual TLS with the aggregator's certificate of that kit. Give this silo the aggregator's kit, or set {Section}:Tls to '{ClusterTls.Off}' on every silo of a cluster whose ports no one else can reach.");
        }

        return errors;
    }

    /// <summary>
    /// What is wrong with <paramref name="directory"/> as <see cref="SpillDirectory"/>, or null: it must be an absolute
    /// path, not a file, and a directory this process can create and write a file in (a probe file is created and
    /// deleted).
    /// </summary>
    internal static string? SpillDirectoryProblem(string? directory)
    {
        if (string.IsNullOrWhiteSpace(directory))
        {
            return null;
        }

        string name = $"{Section}:SpillDirectory";
        if (directory.IndexOfAny(Path.GetInvalidPathChars()) >= 0 || !Path.IsPathFullyQualified(directory))
        {
            return $"{name} must be an absolute path, got '{directory}'.";
        }

        if (File.Exists(directory))
        {
            return $"{name} '{directory}' is a file, not a directory.";
        }

        try
        {
            Directory.CreateDirectory(directory);
            string probe = Path.Combine(directory, $".securefed-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }

            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            return $"{name} '{directory}' cannot be used for the slice spills: {ex.Message}";
        }
    }

    private void ValidateMembership(List<string> errors)
    {
        Range(errors, nameof(ProbeTimeoutSeconds), ProbeTimeoutSeconds, 0.1, 300, "seconds");
        Range(errors, nameof(TableRefreshSeconds), TableRefreshSeconds, 0.1, 3600, "seconds");
        Range(errors, nameof(DefunctSiloExpirationHours), DefunctSiloExpirationHours, 1, 24 * 366, "hours");
        Count(errors, nameof(MissedProbesLimit), MissedProbesLimit, 100);
        Count(errors, nameof(ProbedSilos), ProbedSilos, 100);
        Count(errors, nameof(VotesForDeathDeclaration), VotesForDeathDeclaration, 100);
        int probed = ProbedSilos ?? new ClusterMembershipOptions().NumProbedSilos;
        if (VotesForDeathDeclaration is int votes and >= 1 and <= 100 && probed is >= 1 and <= 100 && votes > probed)
        {
            errors.Add($"{Section}:VotesForDeathDeclaration must be at most {Section}:ProbedSilos ({probed}{(ProbedSilos is null ? ", Orleans' default" : "")}): a silo is declared dead by the silos that probe it, got {votes}.");
        }
    }

    private static void Range(List<string> errors, string name, double? value, double least, double most, string unit)
    {
        if (value is double v && !(v >= least && v <= most))
        {
            errors.Add(string.Create(CultureInfo.InvariantCulture, $"{Section}:{name} must be between {least} and {most} {unit}, got {v}."));
        }
    }

    private static void Count(List<string> errors, string name, int? value, int most)
    {
        if (value is int v && (v < 1 || v > most))
        {
            errors.Add($"{Section}:{name} must be between 1 and {most}, got {v}.");
        }
    }

    private static TimeSpan Seconds(double seconds) => double.IsFinite(seconds) && Math.Abs(seconds) < 1e6 ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;

    private static void Port(List<string> errors, string name, int value)
    {
        if (value < 1 || value > 65535)
        {
            errors.Add($"{Section}:{name} must be between 1 and 65535, got {value}.");
        }
    }
}
