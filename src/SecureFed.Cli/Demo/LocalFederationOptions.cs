using SecureFed.Protocol;

namespace SecureFed.Cli.Demo;

/// <summary>How to lay out a throw-away federation on this machine.</summary>
internal sealed record LocalFederationOptions
{
    public required string OutputDirectory { get; init; }

    public string FederationName { get; init; } = "securefed-demo";

    public required IReadOnlyList<string> Sites { get; init; }

    /// <summary>
    /// Sites admitted after provisioning, before the aggregator starts, as <c>securefed provision add-site</c> admits them
    /// (<see cref="Federation.FederationProvisioner.AddSite"/>), with the new manifest then copied into every other kit (that
    /// command's steps 2 and 3). Their agents start with the others', after them.
    /// </summary>
    public IReadOnlyList<string> AddedSites { get; init; } = [];

    public int Rounds { get; init; } = 5;

    /// <summary>Extra aggregator settings (keys without the "SecureFed:" prefix).</summary>
    public IReadOnlyDictionary<string, string> Aggregator { get; init; } = new Dictionary<string, string>();

    /// <summary>Extra settings for every agent (keys without the prefix).</summary>
    public IReadOnlyDictionary<string, string> Agent { get; init; } = new Dictionary<string, string>();

    /// <summary>Optional: which site goes silent, in which round, before which stage.</summary>
    public (string Site, long Round, ProtocolStage Stage)? Drop { get; init; }

    /// <summary>
    /// When set, each host logs to its own file in this folder (<c>aggregator.log</c>, <c>&lt;site&gt;.log</c>) at
    /// <see cref="LogLevel"/> and nothing to the console; otherwise the hosts' default console logging applies.
    /// </summary>
    public string? LogDirectory { get; init; }

    /// <summary>Log level of the hosts (the demo keeps them quiet and shows its own progress).</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Warning;
}
