namespace SecureFed.Federation;

/// <summary>What <see cref="FederationProvisioner.Provision"/> wrote.</summary>
/// <param name="OutputDirectory">The full path of the output folder.</param>
/// <param name="ManifestPath">The full path of the federation manifest (<c>federation.json</c>).</param>
/// <param name="Manifest">The manifest that was written.</param>
/// <param name="CaDirectory">The CA folder (<c>ca/</c>; keep <c>ca.key</c> offline).</param>
/// <param name="AggregatorKitDirectory">The aggregator's kit folder, to be handed to the aggregator operator.</param>
/// <param name="SiteKitDirectories">Each site's kit folder by site name, to be handed to that hospital only.</param>
/// <param name="OperatorTokenPath">The operator's console token (<c>operator/operator.token</c>), for whoever watches the aggregator's console and metrics.</param>
/// <param name="Files">Every file written (full paths).</param>
/// <param name="NotBefore">Start of the certificates' validity.</param>
/// <param name="NotAfter">End of the certificates' validity.</param>
public sealed record ProvisionResult(
    string OutputDirectory,
    string ManifestPath,
    FederationManifest Manifest,
    string CaDirectory,
    string AggregatorKitDirectory,
    IReadOnlyDictionary<string, string> SiteKitDirectories,
    string OperatorTokenPath,
    IReadOnlyList<string> Files,
    DateTimeOffset NotBefore,
    DateTimeOffset NotAfter);
