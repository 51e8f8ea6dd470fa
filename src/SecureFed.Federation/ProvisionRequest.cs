namespace SecureFed.Federation;

/// <summary>What <see cref="FederationProvisioner.Provision"/> should create.</summary>
/// <param name="OutputDirectory">Where to write; must not exist or be empty.</param>
/// <param name="FederationName">The federation name: lowercase <c>[a-z0-9-]</c>, 1..63 characters, not starting or ending with '-'.</param>
/// <param name="Sites">The site names: lowercase <c>[a-z0-9-]</c>, 1..63 characters, not starting or ending with '-', unique, not <c>aggregator</c>.</param>
/// <param name="AggregatorHost">The DNS name or IP address under which agents reach the aggregator.</param>
public sealed record ProvisionRequest(string OutputDirectory, string FederationName, IReadOnlyList<string> Sites, string AggregatorHost)
{
    /// <summary>Creates a request with an explicit certificate validity.</summary>
    public ProvisionRequest(string outputDirectory, string federationName, IReadOnlyList<string> sites, string aggregatorHost, TimeSpan validity)
        : this(outputDirectory, federationName, sites, aggregatorHost)
    {
        Validity = validity;
    }

    /// <summary>How long the CA and all certificates are valid.</summary>
    /// <value>The default value is 365 days.</value>
    public TimeSpan Validity { get; init; } = TimeSpan.FromDays(365);
}
