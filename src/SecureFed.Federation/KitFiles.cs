namespace SecureFed.Federation;

/// <summary>The file and folder names of a provisioned federation and of each party's kit.</summary>
public static class KitFiles
{
    /// <summary>The federation manifest (in the output folder and in every kit).</summary>
    public const string Manifest = "federation.json";

    /// <summary>The federation CA certificate (PEM), in every kit and in <c>ca/</c>.</summary>
    public const string CaCertificate = "ca.crt";

    /// <summary>The federation CA private key (PEM PKCS#8, mode 0600); only in <c>ca/</c>, never in a kit.</summary>
    public const string CaKey = "ca.key";

    /// <summary>The party's TLS certificate (PEM).</summary>
    public const string TlsCertificate = "tls.crt";

    /// <summary>The party's TLS private key (PEM PKCS#8, mode 0600).</summary>
    public const string TlsKey = "tls.key";

    /// <summary>The party's Ed25519 identity key (seed, SECUREFED ED25519 PRIVATE KEY PEM, mode 0600).</summary>
    public const string IdentityKey = "identity.key";

    /// <summary>The aggregator's configuration template.</summary>
    public const string AggregatorConfig = "aggregator.json";

    /// <summary>An agent's configuration template.</summary>
    public const string AgentConfig = "agent.json";

    /// <summary>
    /// The operator's console credential (a random token, hex, mode 0600) in <c>operator/</c>: handed to the people who
    /// watch the aggregator's console and scrape its metrics, never to a site.
    /// </summary>
    public const string OperatorToken = "operator.token";

    /// <summary>SHA-256 (hex) of the operator token, in the aggregator's kit: what the admin listener checks a token against.</summary>
    public const string OperatorTokenVerifier = "operator-token.sha256";

    /// <summary>The operator's folder under the output directory (holds <see cref="OperatorToken"/>).</summary>
    public const string OperatorDirectory = "operator";

    /// <summary>The CA folder under the output directory.</summary>
    public const string CaDirectory = "ca";

    /// <summary>The aggregator's kit folder under the output directory.</summary>
    public const string AggregatorDirectory = "aggregator";

    /// <summary>The folder under the output directory holding one kit folder per site.</summary>
    public const string SitesDirectory = "sites";

    /// <summary>The CN of the aggregator's certificate and its party name in the manifest.</summary>
    public const string AggregatorName = "aggregator";

    /// <summary>The port written into the configuration templates.</summary>
    public const int DefaultPort = 7443;
}
