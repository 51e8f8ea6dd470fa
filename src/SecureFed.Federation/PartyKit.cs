using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

using SecureFed.Crypto;
using SecureFed.Federation.Internal;

namespace SecureFed.Federation;

/// <summary>
/// One party's kit folder loaded and cross-checked: its TLS certificate with private key (usable by Kestrel and
/// <c>SocketsHttpHandler</c>), the federation CA, its Ed25519 identity key and the manifest.
/// </summary>
public sealed class PartyKit : IDisposable
{
    private PartyKit(string name, X509Certificate2 tls, X509Certificate2 ca, Ed25519PrivateKey identity, FederationManifest manifest, string directory,
                     IReadOnlyList<ReadableKeyFile> readableKeys)
    {
        ReadableKeys = readableKeys;
        Name = name;
        TlsCertificate = tls;
        CaCertificate = ca;
        IdentityKey = identity;
        Manifest = manifest;
        Directory = directory;
    }

    /// <summary>The party name: <c>aggregator</c> or the site name (the certificate CN).</summary>
    public string Name { get; }

    /// <summary>Whether this is the aggregator's kit.</summary>
    public bool IsAggregator => Name == KitFiles.AggregatorName;

    /// <summary>The kit folder (full path).</summary>
    public string Directory { get; }

    /// <summary>The TLS certificate with its private key.</summary>
    public X509Certificate2 TlsCertificate { get; }

    /// <summary>The federation CA certificate.</summary>
    public X509Certificate2 CaCertificate { get; }

    /// <summary>The Ed25519 identity key (signs key advertisements).</summary>
    public Ed25519PrivateKey IdentityKey { get; }

    /// <summary>The federation manifest in the kit.</summary>
    public FederationManifest Manifest { get; }

    /// <summary>
    /// The private keys of this kit that its group or other users may read, accepted because it was loaded with
    /// <c>acceptReadableKeys</c>; the caller warns about each, naming the file, its mode and owner. Empty otherwise.
    /// </summary>
    public IReadOnlyList<ReadableKeyFile> ReadableKeys { get; }

    /// <summary>
    /// Loads a kit and checks that its parts belong together: the CA equals the manifest's CA, the TLS certificate
    /// chains to it and is the one listed for this party, and the identity key is the listed one.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is missing, malformed or does not match the manifest, or (on Unix) a private
    /// key's group or other users may access it (owner only, 0600; 0640 when root owns it); the message names it.</exception>
    public static PartyKit Load(string directory) => Load(directory, acceptReadableKeys: false, optOut: null);

    /// <summary>
    /// Loads a kit as <see cref="Load(string)"/>; with <paramref name="acceptReadableKeys"/> (the <c>AcceptReadableKeys</c>
    /// opt-out, for Kubernetes and Docker secrets whose mode cannot be changed) a private key its group or other users may
    /// only read is accepted when root or this process's user owns it, and listed in <see cref="ReadableKeys"/>; a key
    /// they may write is refused all the same. <paramref name="optOut"/> is how the caller's opt-out is turned on
    /// (<c>setting SecureFed:AcceptReadableKeys to true</c>, <c>--accept-readable-keys</c>), named by the refusal of a key
    /// the opt-out would accept; null when the caller has none.
    /// </summary>
    /// <exception cref="InvalidDataException">As <see cref="Load(string)"/>.</exception>
    public static PartyKit Load(string directory, bool acceptReadableKeys, string? optOut)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string dir = Path.GetFullPath(directory);
        if (File.Exists(dir))
        {
            throw new InvalidDataException($"Kit directory '{dir}' is a file; give the folder 'securefed provision' wrote for this party.");
        }

        if (!System.IO.Directory.Exists(dir))
        {
            throw new InvalidDataException($"Kit directory '{dir}' does not exist.");
        }

        string Required(string file)
        {
            string path = Path.Combine(dir, file);
            return File.Exists(path) ? path : throw new InvalidDataException($"Kit '{dir}' is incomplete: '{file}' is missing.");
        }

        FederationManifest manifest = FederationManifest.Load(Required(KitFiles.Manifest));
        X509Certificate2? ca = null;
        X509Certificate2? tls = null;
        Ed25519PrivateKey? identity = null;
        try
        {
            ca = LoadCertificate(Required(KitFiles.CaCertificate));
            if (!ca.RawDataMemory.Span.SequenceEqual(manifest.CaCertificate.RawDataMemory.Span))
            {
                throw new InvalidDataException($"Kit '{dir}': '{KitFiles.CaCertificate}' is not the CA of federation '{manifest.FederationName}' in '{KitFiles.Manifest}'.");
            }

            var readable = new List<ReadableKeyFile>();
            tls = LoadTls(Required(KitFiles.TlsCertificate), Required(KitFiles.TlsKey), acceptReadableKeys, optOut, readable);
            string name = tls.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
            PartyInfo party;
            if (name == KitFiles.AggregatorName)
            {
                party = manifest.Aggregator;
            }
            else if (!manifest.TryGetSite(name, out party))
            {
                throw new InvalidDataException($"Kit '{dir}': certificate CN '{name}' is neither the aggregator nor a site of federation '{manifest.FederationName}'.");
            }

            if (!PeerTrust.ValidateChain(tls, ca, out string? chainError))
            {
                throw new InvalidDataException($"Kit '{dir}': '{KitFiles.TlsCertificate}': {chainError}.");
            }

            if (FederationManifest.Thumbprint(tls) != party.CertificateThumbprint)
            {
                throw new InvalidDataException($"Kit '{dir}': '{KitFiles.TlsCertificate}' is not the certificate listed for '{name}' in '{KitFiles.Manifest}'.");
            }

            identity = IdentityKeyFile.Read(Required(KitFiles.IdentityKey), acceptReadableKeys, optOut, out ReadableKeyFile? readableIdentity);
            if (readableIdentity is not null)
            {
                readable.Add(readableIdentity);
            }

            if (!CryptographicOperations.FixedTimeEquals(identity.PublicKey, party.IdentityPublicKey))
            {
                throw new InvalidDataException($"Kit '{dir}': '{KitFiles.IdentityKey}' is not the identity key listed for '{name}' in '{KitFiles.Manifest}'.");
            }

            return new PartyKit(name, tls, ca, identity, manifest, dir, readable);
        }
        catch
        {
            ca?.Dispose();
            tls?.Dispose();
            identity?.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        TlsCertificate.Dispose();
        CaCertificate.Dispose();
        IdentityKey.Dispose();
    }

    private static X509Certificate2 LoadCertificate(string path)
    {
        try
        {
            return X509CertificateLoader.LoadCertificateFromFile(path);
        }
        catch (CryptographicException ex)
        {
            throw new InvalidDataException($"'{path}' is not a PEM certificate: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// PEM certificate + PKCS#8 key, re-imported through PKCS#12 so that the key is usable by SslStream on every
    /// platform (an ephemeral PEM-imported key is not accepted for TLS by all platforms).
    /// </summary>
    private static X509Certificate2 LoadTls(string certificatePath, string keyPath, bool acceptReadable, string? optOut, List<ReadableKeyFile> readable)
    {
        char[] certPem = SecretPem.ReadChars(certificatePath);
        char[] keyPem = SecretPem.ReadChars(keyPath);
        byte[]? pfx = null;
        try
        {
            using X509Certificate2 pem = X509Certificate2.CreateFromPem(certPem, keyPem);
            if (PrivateKeyMode.EnsureOwnerOnly(keyPath, "TLS private key", acceptReadable, optOut) is { } accepted)
            {
                readable.Add(accepted);
            }

            pfx = pem.Export(X509ContentType.Pkcs12);
            return X509CertificateLoader.LoadPkcs12(pfx, password: null, X509KeyStorageFlags.DefaultKeySet);
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new InvalidDataException($"'{certificatePath}' with '{keyPath}' is not a PEM certificate with its matching private key: {ex.Message}", ex);
        }
        finally
        {
            SecretPem.Wipe(certPem);
            SecretPem.Wipe(keyPem);
            if (pfx is not null)
            {
                CryptographicOperations.ZeroMemory(pfx);
            }
        }
    }
}
