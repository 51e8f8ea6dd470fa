using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// The aggregator settings that shape a round's result or its privacy guarantee, in one canonical text: one line
/// <c>Name=value</c> per setting (the setting's name under <c>SecureFed:</c>), sorted ordinally by name, each value
/// culture-invariant (numbers in their shortest round-trip form, <c>true</c>/<c>false</c>, rule and graph names in
/// lower case, lists joined by <c>,</c>), and its SHA-256 (<see cref="Sha256"/>, of the text's UTF-8 bytes). A
/// coordinator of the aggregator cluster saves it with its state and a silo that takes over compares its own with it
/// (docs/cluster.md §6, "Coordinator settings").
/// </summary>
/// <remarks>
/// <para>
/// Round-affecting (<see cref="Names"/>): the rounds and their cohort (<c>Rounds</c>, <c>MinSites</c>, <c>Threshold</c>,
/// <c>Graph</c>, <c>BlameExclusionRounds</c>, <c>WeightCap</c>), site-level DP (<c>EpsilonBudget</c>, <c>Delta</c>,
/// <c>L2Clip</c>, <c>SiteNoiseMultiplier</c>), the patient-level DP-SGD announced to the sites (<c>DpSgd*</c>,
/// <c>LocalEpochs</c>), the server update rule and its hyper-parameters (<c>ServerOptimizer</c>, <c>Server*</c>; a
/// hyper-parameter the configured rule does not read is written <c>(unused)</c>, as <c>aggregate.produced</c> names only
/// those the rule uses), the model (<c>ModelSpecSha256</c>) and federated evaluation (<c>FederatedEvaluation</c>,
/// <c>EvaluationEntityTypes</c>, <c>EvaluationCountCap</c>).
/// </para>
/// <para>
/// Not round-affecting (<see cref="IgnoredNames"/>): where the process listens and keeps its files, its operator and
/// telemetry endpoints, whether a torn audit-log tail is repaired at start-up (<c>RepairTornAuditTail</c>), the upload concurrency, the per-site bounds on bulk calls and connections, how many model
/// versions the round store keeps (<c>KeepModelVersions</c>: no round's result depends on a version older than its
/// base), the timeouts, the federation's name (the key the state is saved under) and <c>InitialModel</c> (read only when the round store holds no model; a coordinator that takes over
/// restores the saved model versions, version 0 included unless pruned, and never reads it), and <c>ModelParameterCount</c>
/// (derived from the model specification, which <c>ModelSpecSha256</c> describes).
/// </para>
/// </remarks>
public sealed class RoundSettings
{
    /// <summary>The value of a hyper-parameter the configured server update rule does not read.</summary>
    public const string Unused = "(unused)";

    /// <summary>How a name missing on one side of <see cref="ChangesFrom"/> is shown.</summary>
    public const string NotRecorded = "(not recorded)";

    private static readonly string[] Ignored =
    [
        nameof(AggregatorOptions.Federation),
        nameof(AggregatorOptions.Listen),
        nameof(AggregatorOptions.KitDirectory),
        nameof(AggregatorOptions.DataDirectory),
        nameof(AggregatorOptions.RepairTornAuditTail),
        nameof(AggregatorOptions.AcceptReadableKeys),
        nameof(AggregatorOptions.TrainingTimeoutSeconds),
        nameof(AggregatorOptions.StageTimeoutSeconds),
        nameof(AggregatorOptions.ProgressIntervalSeconds),
        nameof(AggregatorOptions.ProgressSilenceSeconds),
        nameof(AggregatorOptions.StragglerWaitFactor),
        nameof(AggregatorOptions.StragglerMinWaitSeconds),
        nameof(AggregatorOptions.StageStragglerMinWaitSeconds),
        nameof(AggregatorOptions.JoinTimeoutSeconds),
        nameof(AggregatorOptions.JoinGraceSeconds),
        nameof(AggregatorOptions.MaxRetryPauseSeconds),
        nameof(AggregatorOptions.MaxConcurrentUploads),
        nameof(AggregatorOptions.MinUploadWordsPerSecond),
        nameof(AggregatorOptions.UploadGraceSeconds),
        nameof(AggregatorOptions.ModelDownloadBurst),
        nameof(AggregatorOptions.ModelDownloadRefillSeconds),
        nameof(AggregatorOptions.MaxBulkCallsPerSite),
        nameof(AggregatorOptions.MaxCallsPerSite),
        nameof(AggregatorOptions.MaxConnectionsPerSite),
        nameof(AggregatorOptions.KeepModelVersions),
        nameof(AggregatorOptions.InitialModel),
        nameof(AggregatorOptions.ModelParameterCount),
        nameof(AggregatorOptions.AdminListen),
        nameof(AggregatorOptions.OperatorTokenVerifier),
        nameof(AggregatorOptions.OtlpEndpoint),
    ];

    private readonly SortedDictionary<string, string> _values;

    private RoundSettings(SortedDictionary<string, string> values)
    {
        _values = values;
        var text = new StringBuilder();
        foreach ((string name, string value) in values)
        {
            text.Append(name).Append('=').Append(value).Append('\n');
        }

        Canonical = text.ToString();
        Sha256 = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical)));
    }

    /// <summary>The names of the round-affecting settings this version describes, sorted ordinally.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Of(new AggregatorOptions())._values.Keys];

    /// <summary>The settings of <see cref="AggregatorOptions"/> that are deliberately not described (not round-affecting).</summary>
    public static IReadOnlyList<string> IgnoredNames { get; } = Ignored;

    /// <summary>Each setting's canonical value, by name (sorted ordinally).</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>The canonical text: one <c>Name=value\n</c> line per setting, sorted ordinally by name.</summary>
    public string Canonical { get; }

    /// <summary>SHA-256 of <see cref="Canonical"/>'s UTF-8 bytes, lower-case hex.</summary>
    public string Sha256 { get; }

    /// <summary>The round-affecting settings of <paramref name="options"/>.</summary>
    public static RoundSettings Of(AggregatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ServerOptimizerKind rule = options.ServerOptimizerKind;
        bool momentum = rule is ServerOptimizerKind.Momentum or ServerOptimizerKind.Adam;
        bool adam = rule == ServerOptimizerKind.Adam;
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            [nameof(options.Rounds)] = Number(options.Rounds),
            [nameof(options.MinSites)] = Number(options.MinSites),
            [nameof(options.Threshold)] = Number(options.Threshold),
            [nameof(options.Graph)] = options.GraphPolicy.ToString().ToLowerInvariant(),
            [nameof(options.ConsistencyColluders)] = Number(options.ConsistencyColluders),
            [nameof(options.BlameExclusionRounds)] = Number(options.BlameExclusionRounds),
            [nameof(options.WeightCap)] = Number(options.WeightCap),
            [nameof(options.EpsilonBudget)] = Number(options.EpsilonBudget),
            [nameof(options.Delta)] = Number(options.Delta),
            [nameof(options.L2Clip)] = Number(options.L2Clip),
            [nameof(options.SiteNoiseMultiplier)] = Number(options.SiteNoiseMultiplier),
            [nameof(options.ServerOptimizer)] = rule.ToString().ToLowerInvariant(),
            [nameof(options.ServerLearningRate)] = Number(options.ServerLearningRate),
            [nameof(options.ServerBeta1)] = momentum ? Number(options.ServerBeta1) : Unused,
            [nameof(options.ServerBeta2)] = adam ? Number(options.ServerBeta2) : Unused,
            [nameof(options.ServerTau)] = adam ? Number(options.ServerTau) : Unused,
            [nameof(options.ServerNoiseVariance)] = adam ? Number(options.ServerNoiseVariance) : Unused,
            [nameof(options.ServerNoiseFloor)] = adam && options.ServerNoiseVariance != 0 ? Number(options.ServerNoiseFloor) : Unused,
            [nameof(options.DpSgdNoiseMultiplier)] = Number(options.DpSgdNoiseMultiplier),
            [nameof(options.DpSgdMaxGradNorm)] = Number(options.DpSgdMaxGradNorm),
            [nameof(options.DpSgdSampleRate)] = Number(options.DpSgdSampleRate),
            [nameof(options.LocalEpochs)] = Number(options.LocalEpochs),
            [nameof(options.DpSgdMaxSteps)] = Number(options.DpSgdMaxSteps),
            [nameof(options.DpSgdNoiseShares)] = Number(options.DpSgdNoiseShares),
            [nameof(options.DpSgdLayerScales)] = string.Join(',', options.DpSgdLayerScales.Select(s => s.ToString("R", CultureInfo.InvariantCulture))),
            [nameof(options.ModelSpecSha256)] = options.ModelSpecSha256.Trim().ToLowerInvariant(),
            [nameof(options.FederatedEvaluation)] = options.FederatedEvaluation ? "true" : "false",
            [nameof(options.EvaluationEntityTypes)] = string.Join(',', options.EvaluationEntityTypes.Select(Escape)),
            [nameof(options.EvaluationCountCap)] = Number(options.EvaluationCountCap),
        };
        return new RoundSettings(values);
    }

    /// <summary>Reads a canonical text written by <see cref="Canonical"/> (by this or another version).</summary>
    /// <exception cref="InvalidDataException">A line is not <c>Name=value</c> or a name appears twice.</exception>
    public static RoundSettings Parse(string canonical)
    {
        ArgumentNullException.ThrowIfNull(canonical);
        var values = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string[] lines = canonical.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0 && i == lines.Length - 1)
            {
                break;
            }

            int equals = lines[i].IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || !values.TryAdd(lines[i][..equals], lines[i][(equals + 1)..]))
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"line {i + 1} of the saved coordinator settings is not a setting of its own (Name=value): '{lines[i]}'"));
            }
        }

        return new RoundSettings(values);
    }

    /// <summary>
    /// The settings whose value here differs from <paramref name="saved"/>'s, sorted by name. A setting <paramref name="saved"/>
    /// does not name (it was saved by an earlier version) counts as its default value there; one only <paramref name="saved"/>
    /// names (no longer a setting of this version) is a change to <see cref="NotRecorded"/>.
    /// </summary>
    public IReadOnlyList<RoundSettingChange> ChangesFrom(RoundSettings saved)
    {
        ArgumentNullException.ThrowIfNull(saved);
        RoundSettings defaults = Of(new AggregatorOptions());
        var changes = new List<RoundSettingChange>();
        foreach (string name in _values.Keys.Union(saved._values.Keys).Order(StringComparer.Ordinal))
        {
            string before = saved._values.TryGetValue(name, out string? s) ? s : defaults._values.GetValueOrDefault(name, NotRecorded);
            string now = _values.GetValueOrDefault(name, NotRecorded);
            if (!string.Equals(before, now, StringComparison.Ordinal))
            {
                changes.Add(new RoundSettingChange(name, before, now));
            }
        }

        return changes;
    }

    /// <summary>The changes for a message: <c>ServerLearningRate 0.02 → 0.03; DpSgdNoiseMultiplier 1.2 → 1</c> (an empty value shown as <c>(none)</c>).</summary>
    public static string Describe(IEnumerable<RoundSettingChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        return string.Join("; ", changes.Select(c => $"{c.Name} {Shown(c.Previous)} → {Shown(c.Current)}"));
    }

    private static string Shown(string value) => value.Length == 0 ? "(none)" : value;

    private static string Number(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>A list item with <c>\</c>, <c>,</c> and control characters written as <c>\uXXXX</c>, so items and lines stay apart.</summary>
    private static string Escape(string item)
    {
        var escaped = new StringBuilder(item.Length);
        foreach (char c in item)
        {
            if (c is '\\' or ',' || char.IsControl(c))
            {
                escaped.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                escaped.Append(c);
            }
        }

        return escaped.ToString();
    }
}
