namespace SecureFed.Federation;

/// <summary>What <see cref="FederationProvisioner.AddSite"/> wrote.</summary>
/// <param name="KitDirectory">The new site's kit (<c>sites/&lt;site&gt;</c>).</param>
/// <param name="ManifestPath">The federation's manifest, rewritten with the site listed.</param>
/// <param name="Manifest">That manifest.</param>
/// <param name="Files">Every file of the new kit.</param>
/// <param name="NotBefore">Start of the site certificate's validity.</param>
/// <param name="NotAfter">End of the site certificate's validity (at most the CA's).</param>
public sealed record AddSiteResult(
    string KitDirectory,
    string ManifestPath,
    FederationManifest Manifest,
    IReadOnlyList<string> Files,
    DateTimeOffset NotBefore,
    DateTimeOffset NotAfter)
{
    /// <summary>
    /// Null when federation.json and the kit are on disk for good; otherwise why that could not be confirmed (the folder's
    /// flush after federation.json was renamed into place failed; the message names the folder and the error). The site is
    /// added either way: federation.json lists it and the kit is in place.
    /// </summary>
    public string? DurabilityUnconfirmed { get; init; }
}
