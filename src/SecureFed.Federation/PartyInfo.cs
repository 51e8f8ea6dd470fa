namespace SecureFed.Federation;

/// <summary>A party listed in the federation manifest.</summary>
/// <param name="Name">The party name: <c>aggregator</c> or a site name (also its certificate CN).</param>
/// <param name="CertificateThumbprint">SHA-256 of the party's TLS certificate (DER), lowercase hex.</param>
/// <param name="IdentityPublicKey">The party's 32-byte Ed25519 identity public key (signs key advertisements).</param>
public sealed record PartyInfo(string Name, string CertificateThumbprint, byte[] IdentityPublicKey);
