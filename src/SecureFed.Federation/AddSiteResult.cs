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
    DateTimeOffset NotAfter);
