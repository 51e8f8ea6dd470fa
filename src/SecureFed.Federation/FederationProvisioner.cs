using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

using SecureFed.Crypto;
using SecureFed.Federation.Internal;

namespace SecureFed.Federation;

/// <summary>
/// Creates a federation: an ECDSA P-256 CA, a TLS certificate and an Ed25519 identity key per party, the manifest,
/// and one kit folder per party (see <see cref="KitFiles"/> for the layout).
/// </summary>
public static class FederationProvisioner
{
    /// <summary>Tolerated clock skew: certificates become valid this long before the provisioning time.</summary>
    public static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    private const UnixFileMode PrivateDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>Test hook: called in <see cref="AddSite"/> with the manifest's path right after it read it, under the manifest's lock.</summary>
    internal static Action<string>? AfterManifestRead;

    /// <summary>
    /// Provisions a federation into <see cref="ProvisionRequest.OutputDirectory"/>. Everything is first written to a
    /// hidden staging folder next to it and moved into place at the end, so a failure leaves no half-written output.
    /// </summary>
    /// <param name="request">What to create.</param>
    /// <param name="random">Source of the identity keys and certificate serial numbers (the system CSPRNG by default).
    /// ECDSA keys always come from the operating system.</param>
    /// <param name="time">Clock for the creation time and certificate validity (the system clock by default).</param>
    /// <exception cref="ArgumentException">A name, the host or the validity is invalid.</exception>
    /// <exception cref="IOException">The output directory exists and is not empty, or writing failed.</exception>
    public static ProvisionResult Provision(ProvisionRequest request, IRandomSource? random = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        Validate(request);
        random ??= SystemRandomSource.Instance;
        time ??= TimeProvider.System;

        string output = Path.GetFullPath(request.OutputDirectory);
        if (File.Exists(output))
        {
            throw new IOException($"Output directory '{output}' is an existing file; choose a new or empty directory.");
        }

        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).ToList() is { Count: > 0 } entries)
        {
            throw new IOException(entries.All(e => Path.GetFileName(e).StartsWith(".provisioning-", StringComparison.Ordinal))
                ? $"Output directory '{output}' holds only {Path.GetFileName(entries[0])}, the staging folder of a provisioning that was interrupted; delete it and run again."
                : $"Output directory '{output}' already exists and is not empty; refusing to overwrite it.");
        }

        string parent = Path.GetDirectoryName(output)
            ?? throw new ArgumentException($"Output directory '{output}' has no parent directory.", nameof(request));
        // An existing empty folder (a link to one, or a mount point) is written into, never replaced: the staging folder is
        // made inside it, on its file system, and its entries moved up at the end. Otherwise it is made beside it and moved.
        bool existing = Directory.Exists(output);
        string stage = existing
            ? Path.Combine(output, $".provisioning-{Guid.NewGuid():N}")
            : Path.Combine(parent, $".{Path.GetFileName(output)}.provisioning-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(parent);
            CreateDirectory(stage, isPrivate: false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The staging folder is an implementation detail: name the folder the user asked for.
            throw new IOException($"Cannot create the output directory '{output}': {TemporaryPath.Reason(ex, stage, output)}", ex);
        }

        var moved = new List<string>();
        try
        {
            ProvisionResult staged = WriteAll(request, stage, output, random, time);
            if (existing)
            {
                MoveEntriesUp(stage, output, moved);
                Directory.Delete(stage);
            }
            else
            {
                Directory.Move(stage, output);
            }

            return staged;
        }
        catch (Exception ex)
        {
            try
            {
                if (existing)
                {
                    // What this run already moved up is taken out again with the rest; nothing else in the folder is touched.
                    foreach (string entry in moved)
                    {
                        if (Directory.Exists(entry))
                        {
                            Directory.Delete(entry, recursive: true);
                        }
                        else
                        {
                            File.Delete(entry);
                        }
                    }
                }

                Directory.Delete(stage, recursive: true);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // The original failure is what matters; the staging folder is hidden and clearly named.
            }

            if (ex is IOException or UnauthorizedAccessException)
            {
                throw new IOException(TemporaryPath.Reason(ex, stage, output), ex);
            }

            throw;
        }
    }

    /// <summary>
    /// Provisions one more site into the federation folder <paramref name="federationDirectory"/> that
    /// <see cref="Provision"/> wrote (its <c>ca/</c> with the CA key, and <c>federation.json</c>): a kit in
    /// <c>sites/&lt;site&gt;</c> whose certificate the same CA signs, and <c>federation.json</c> rewritten with the site
    /// listed (atomically, after the kit is in place; the kit holds the new manifest too), all under the manifest's
    /// <see cref="ManifestLock"/> (waiting up to <see cref="ManifestLock.DefaultWait"/> for another holder). Every other party's manifest
    /// copy (the aggregator's kit, the other sites' kits) is left as it is: the caller distributes the new one.
    /// </summary>
    /// <param name="federationDirectory">The folder <see cref="Provision"/> wrote.</param>
    /// <param name="site">The new site's name: lowercase <c>[a-z0-9-]</c>, 1..63 characters, not starting or ending with '-', not yet in the manifest (revoked names included).</param>
    /// <param name="validity">How long its certificate is valid; cut to the CA's own end of validity.</param>
    /// <param name="random">Source of the identity key and the certificate's serial number (the system CSPRNG by default).</param>
    /// <param name="time">Clock for the certificate's validity (the system clock by default).</param>
    /// <param name="lockWait">How long to wait for another holder of the manifest's lock (<see cref="ManifestLock.DefaultWait"/> by default).</param>
    /// <exception cref="ArgumentException">The name or the validity is invalid, or the name is taken.</exception>
    /// <exception cref="InvalidDataException">The folder is not a federation folder with its CA key, the CA has expired, or (on
    /// Unix) the CA key's group or other users may access it (owner only, 0600).</exception>
    /// <exception cref="IOException">Writing failed, or another command held the manifest's lock too long; nothing is left
    /// behind and federation.json is unchanged. (A failed flush of the folder after federation.json was renamed into place
    /// is no exception: the site is added, and <see cref="AddSiteResult.DurabilityUnconfirmed"/> says so.)</exception>
    public static AddSiteResult AddSite(string federationDirectory, string site, TimeSpan validity, IRandomSource? random = null, TimeProvider? time = null, TimeSpan? lockWait = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(federationDirectory);
        ArgumentNullException.ThrowIfNull(site);
        random ??= SystemRandomSource.Instance;
        time ??= TimeProvider.System;
        if (Names.Problem(site, "Site") is { } problem)
        {
            throw new ArgumentException(problem, nameof(site));
        }

        if (site == Names.Aggregator)
        {
            throw new ArgumentException("Site name 'aggregator' is reserved for the aggregator.", nameof(site));
        }

        if (validity <= TimeSpan.Zero || validity > TimeSpan.FromDays(3650))
        {
            throw new ArgumentException($"Validity {validity} must be positive and at most 3650 days.", nameof(validity));
        }

        string root = Path.GetFullPath(federationDirectory);
        string manifestPath = Path.Combine(root, KitFiles.Manifest);
        string caCertificatePath = Path.Combine(root, KitFiles.CaDirectory, KitFiles.CaCertificate);
        string caKeyPath = Path.Combine(root, KitFiles.CaDirectory, KitFiles.CaKey);
        foreach (string required in new[] { manifestPath, caCertificatePath, caKeyPath })
        {
            if (!File.Exists(required))
            {
                throw new InvalidDataException($"'{root}' is not a federation folder written by 'securefed provision': '{Path.GetRelativePath(root, required)}' is missing (a site is added where the CA key is kept).");
            }
        }

        // Held until federation.json is rewritten: a concurrent add-site or revoke would otherwise read the same manifest
        // and the later write would drop the earlier change.
        using ManifestLock held = ManifestLock.Acquire(manifestPath, $"provision add-site --site {site}", lockWait);
        FederationManifest manifest = FederationManifest.Load(manifestPath);
        AfterManifestRead?.Invoke(manifestPath);
        if (manifest.TryGetSite(site, out _))
        {
            throw new ArgumentException(manifest.IsRevoked(site)
                ? $"Site '{site}' was revoked in federation '{manifest.FederationName}'; revocation is by name, so a new kit under it would be refused too: choose another name."
                : $"Federation '{manifest.FederationName}' already has a site named '{site}'; its kit is in '{Path.Combine(root, KitFiles.SitesDirectory, site)}' where it was provisioned.", nameof(site));
        }

        using X509Certificate2 ca = LoadCa(caCertificatePath, caKeyPath);
        if (!ca.RawDataMemory.Span.SequenceEqual(manifest.CaCertificate.RawDataMemory.Span))
        {
            throw new InvalidDataException($"'{caCertificatePath}' is not the CA in '{manifestPath}': the folder mixes two federations.");
        }

        DateTimeOffset now = time.GetUtcNow();
        now = new DateTimeOffset(now.UtcTicks - (now.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
        DateTimeOffset caEnd = new(ca.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        if (caEnd <= now + TimeSpan.FromDays(1))
        {
            throw new InvalidDataException($"The federation CA expires {caEnd:u}: a site added now would have no time to take part. Provision a new federation.");
        }

        DateTimeOffset notBefore = now - ClockSkew;
        DateTimeOffset notAfter = now + validity < caEnd ? now + validity : caEnd;
        string sitesDir = Path.Combine(root, KitFiles.SitesDirectory);
        string kit = Path.Combine(sitesDir, site);
        if (Directory.Exists(kit) || File.Exists(kit))
        {
            throw new IOException($"'{kit}' already exists although '{site}' is not in '{manifestPath}': move it away first (an earlier kit of that name?).");
        }

        Directory.CreateDirectory(sitesDir);
        string stage = Path.Combine(sitesDir, $".{site}.provisioning-{Guid.NewGuid():N}");
        var files = new List<string>();
        bool moved = false;
        try
        {
            CreateDirectory(stage, isPrivate: true);
            string caPem = File.ReadAllText(caCertificatePath);
            PartyInfo party = WriteParty(stage, site, req => AddClientExtensions(req, manifest.FederationName, site), ca, notBefore, notAfter, random, caPem,
                path => files.Add(Path.Combine(kit, Path.GetRelativePath(stage, path))));
            FederationManifest updated = manifest.WithSite(party);
            string json = updated.ToJson();
            WritePublic(Path.Combine(stage, KitFiles.Manifest), json, path => files.Add(Path.Combine(kit, Path.GetFileName(path))));
            WritePublic(Path.Combine(stage, KitFiles.AgentConfig), ConfigTemplates.Agent(site, manifest.AggregatorHost), path => files.Add(Path.Combine(kit, Path.GetFileName(path))));
            Directory.Move(stage, kit);
            moved = true;
            AtomicFile.FlushDirectory(sitesDir, kit); // the kit's entry on disk before the manifest names it
            string manifestTarget = AtomicFile.FinalTarget(manifestPath);
            string? unconfirmed = null;
            try
            {
                AtomicFile.WriteAllText(manifestTarget, json);
            }
            catch (DirectoryFlushException ex)
            {
                // After the rename federation.json lists the site: the change has happened, so the kit stays and the
                // caller reports the unconfirmed flush instead of "unchanged" (it deleted the kit of a listed site before).
                unconfirmed =
                    $"Site '{site}' was added (federation.json lists it, its kit is in '{kit}'): {ex.Message} " +
                    $"Check the disk; if after a power loss '{manifestTarget}' no longer lists '{site}', move '{kit}' away and add the site again.";
            }

            return new AddSiteResult(kit, manifestPath, updated, files, notBefore, notAfter) { DurabilityUnconfirmed = unconfirmed };
        }
        catch (Exception ex)
        {
            try
            {
                Directory.Delete(moved ? kit : stage, recursive: true);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // The original failure is what matters.
            }

            if (ex is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"Cannot add site '{site}' to '{root}': {ex.Message} (federation.json is unchanged)", ex);
            }

            throw;
        }
    }

    /// <summary>The federation CA with its private key, from <c>ca/ca.crt</c> and <c>ca/ca.key</c>.</summary>
    private static X509Certificate2 LoadCa(string certificatePath, string keyPath)
    {
        char[] certPem = SecretPem.ReadChars(certificatePath);
        char[] keyPem = SecretPem.ReadChars(keyPath);
        try
        {
            X509Certificate2 ca = X509Certificate2.CreateFromPem(certPem, keyPem);
            try
            {
                PrivateKeyMode.EnsureOwnerOnly(keyPath, "Federation CA key");
            }
            catch
            {
                ca.Dispose();
                throw;
            }

            return ca;
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new InvalidDataException($"'{certificatePath}' and '{keyPath}' are not the federation CA's certificate and private key: {ex.Message}", ex);
        }
        finally
        {
            SecretPem.Wipe(certPem);
            SecretPem.Wipe(keyPem);
        }
    }

    /// <summary>Moves every entry of <paramref name="stage"/> into <paramref name="output"/>, its parent (the same file system).</summary>
    private static void MoveEntriesUp(string stage, string output, List<string> moved)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(stage).ToList())
        {
            string target = Path.Combine(output, Path.GetFileName(entry));
            if (Directory.Exists(entry))
            {
                Directory.Move(entry, target);
            }
            else
            {
                File.Move(entry, target); // never over a file someone put there meanwhile: that is an error
            }

            moved.Add(target);
        }
    }

    private static void Validate(ProvisionRequest request)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(request.OutputDirectory, nameof(request.OutputDirectory));
        ArgumentNullException.ThrowIfNull(request.Sites, nameof(request.Sites));
        if (Names.Problem(request.FederationName, "Federation") is { } federationProblem)
        {
            throw new ArgumentException(federationProblem, nameof(request));
        }

        if (request.Sites.Count == 0)
        {
            throw new ArgumentException("At least one site is required.", nameof(request));
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string site in request.Sites)
        {
            if (Names.Problem(site, "Site") is { } siteProblem)
            {
                throw new ArgumentException(siteProblem, nameof(request));
            }

            if (site == Names.Aggregator)
            {
                throw new ArgumentException("Site name 'aggregator' is reserved for the aggregator.", nameof(request));
            }

            if (!seen.Add(site))
            {
                throw new ArgumentException($"Site name '{site}' is listed more than once.", nameof(request));
            }
        }

        if (string.IsNullOrWhiteSpace(request.AggregatorHost) || Uri.CheckHostName(request.AggregatorHost) == UriHostNameType.Unknown)
        {
            throw new ArgumentException($"Aggregator host '{request.AggregatorHost}' is not a valid DNS name or IP address.", nameof(request));
        }

        if (request.AggregatorHost.StartsWith('['))
        {
            // Uri.CheckHostName takes "[::1]", but the kits' URLs add the brackets themselves ("https://[[::1]]:7443", which
            // the agent then refused) and the certificate names the address without them (CLI crash hunt, session 56).
            throw new ArgumentException(
                $"Aggregator host '{request.AggregatorHost}': give an IPv6 address without the brackets ({request.AggregatorHost.Trim('[', ']')}); the agents' URLs add them.", nameof(request));
        }

        if (request.Validity <= TimeSpan.Zero || request.Validity > TimeSpan.FromDays(3650))
        {
            throw new ArgumentException($"Validity {request.Validity} must be positive and at most 3650 days.", nameof(request));
        }
    }

    private static ProvisionResult WriteAll(ProvisionRequest request, string stage, string output, IRandomSource random, TimeProvider time)
    {
        DateTimeOffset now = time.GetUtcNow();
        now = new DateTimeOffset(now.UtcTicks - (now.UtcTicks % TimeSpan.TicksPerSecond), TimeSpan.Zero);
        DateTimeOffset notBefore = now - ClockSkew;
        DateTimeOffset notAfter = now + request.Validity;
        string federation = request.FederationName;
        var files = new List<string>();

        void Track(string path) => files.Add(Path.Combine(output, Path.GetRelativePath(stage, path)));

        using ECDsa caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using X509Certificate2 caWithKey = CreateCa(federation, caKey, notBefore, notAfter, random);
        string caPem = caWithKey.ExportCertificatePem() + "\n";
        X509Certificate2 caPublic = X509Certificate2.CreateFromPem(caPem);

        string caDir = Path.Combine(stage, KitFiles.CaDirectory);
        CreateDirectory(caDir, isPrivate: true);
        WritePublic(Path.Combine(caDir, KitFiles.CaCertificate), caPem, Track);
        SecretPem.WritePrivateKey(Path.Combine(caDir, KitFiles.CaKey), caKey);
        Track(Path.Combine(caDir, KitFiles.CaKey));

        // Aggregator.
        string aggregatorDir = Path.Combine(stage, KitFiles.AggregatorDirectory);
        CreateDirectory(aggregatorDir, isPrivate: true);
        PartyInfo aggregator = WriteParty(
            aggregatorDir,
            KitFiles.AggregatorName,
            req => AddServerExtensions(req, request.AggregatorHost),
            caWithKey,
            notBefore,
            notAfter,
            random,
            caPem,
            Track);

        // The operator's console credential: the token goes to the operator, only its SHA-256 into the aggregator's kit.
        string operatorDir = Path.Combine(stage, KitFiles.OperatorDirectory);
        CreateDirectory(operatorDir, isPrivate: true);
        byte[] token = new byte[OperatorCredential.TokenBytes];
        random.Fill(token);
        string tokenHex = Convert.ToHexStringLower(token);
        AtomicFile.WriteAllBytes(Path.Combine(operatorDir, KitFiles.OperatorToken), System.Text.Encoding.ASCII.GetBytes(tokenHex + "\n"), AtomicFile.SecretFileMode);
        Track(Path.Combine(operatorDir, KitFiles.OperatorToken));
        WritePublic(Path.Combine(aggregatorDir, KitFiles.OperatorTokenVerifier), OperatorCredential.Verifier(tokenHex) + "\n", Track);
        CryptographicOperations.ZeroMemory(token);

        // Sites.
        string sitesDir = Path.Combine(stage, KitFiles.SitesDirectory);
        CreateDirectory(sitesDir, isPrivate: false);
        var sites = new List<PartyInfo>();
        var siteDirs = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string site in request.Sites)
        {
            string siteDir = Path.Combine(sitesDir, site);
            CreateDirectory(siteDir, isPrivate: true);
            sites.Add(WriteParty(
                siteDir,
                site,
                req => AddClientExtensions(req, federation, site),
                caWithKey,
                notBefore,
                notAfter,
                random,
                caPem,
                Track));
            siteDirs[site] = Path.Combine(output, KitFiles.SitesDirectory, site);
        }

        var manifest = new FederationManifest(federation, now, caPublic, request.AggregatorHost, aggregator, sites, []);
        string manifestJson = manifest.ToJson();
        WritePublic(Path.Combine(stage, KitFiles.Manifest), manifestJson, Track);
        WritePublic(Path.Combine(aggregatorDir, KitFiles.Manifest), manifestJson, Track);
        WritePublic(Path.Combine(aggregatorDir, KitFiles.AggregatorConfig), ConfigTemplates.Aggregator(federation, request.AggregatorHost), Track);
        foreach (string site in request.Sites)
        {
            string siteDir = Path.Combine(sitesDir, site);
            WritePublic(Path.Combine(siteDir, KitFiles.Manifest), manifestJson, Track);
            WritePublic(Path.Combine(siteDir, KitFiles.AgentConfig), ConfigTemplates.Agent(site, request.AggregatorHost), Track);
        }

        return new ProvisionResult(
            output,
            Path.Combine(output, KitFiles.Manifest),
            manifest,
            Path.Combine(output, KitFiles.CaDirectory),
            Path.Combine(output, KitFiles.AggregatorDirectory),
            siteDirs,
            Path.Combine(output, KitFiles.OperatorDirectory, KitFiles.OperatorToken),
            files,
            notBefore,
            notAfter);
    }

    private static PartyInfo WriteParty(
        string directory,
        string name,
        Action<CertificateRequest> addExtensions,
        X509Certificate2 ca,
        DateTimeOffset notBefore,
        DateTimeOffset notAfter,
        IRandomSource random,
        string caPem,
        Action<string> track)
    {
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("SecureFed");
        subject.AddCommonName(name);
        var certRequest = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        certRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        certRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        certRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(certRequest.PublicKey, false));
        certRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        addExtensions(certRequest);
        using X509Certificate2 certificate = certRequest.Create(ca, notBefore, notAfter, SerialNumber(random));

        WritePublic(Path.Combine(directory, KitFiles.TlsCertificate), certificate.ExportCertificatePem() + "\n", track);
        SecretPem.WritePrivateKey(Path.Combine(directory, KitFiles.TlsKey), key);
        track(Path.Combine(directory, KitFiles.TlsKey));
        WritePublic(Path.Combine(directory, KitFiles.CaCertificate), caPem, track);

        using Ed25519PrivateKey identity = Ed25519PrivateKey.Generate(random);
        IdentityKeyFile.Write(Path.Combine(directory, KitFiles.IdentityKey), identity);
        track(Path.Combine(directory, KitFiles.IdentityKey));

        return new PartyInfo(name, FederationManifest.Thumbprint(certificate), (byte[])identity.PublicKey.Clone());
    }

    private static X509Certificate2 CreateCa(string federation, ECDsa key, DateTimeOffset notBefore, DateTimeOffset notAfter, IRandomSource random)
    {
        var subject = new X500DistinguishedNameBuilder();
        subject.AddOrganizationName("SecureFed");
        subject.AddCommonName($"SecureFed {federation} federation CA");
        var request = new CertificateRequest(subject.Build(), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        X509Certificate2 selfSigned = request.CreateSelfSigned(notBefore, notAfter);

        // CreateSelfSigned picks its own serial; re-issue with ours so that every serial comes from the injected source.
        using (selfSigned)
        {
            X509Certificate2 reissued = request.Create(selfSigned.SubjectName, X509SignatureGenerator.CreateForECDsa(key), notBefore, notAfter, SerialNumber(random));
            using (reissued)
            {
                return reissued.CopyWithPrivateKey(key);
            }
        }
    }

    private static void AddServerExtensions(CertificateRequest request, string host)
    {
        var san = new SubjectAlternativeNameBuilder();
        if (IPAddress.TryParse(host, out IPAddress? ip))
        {
            san.AddIpAddress(ip);
        }
        else
        {
            san.AddDnsName(host);
        }

        if (!string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            san.AddDnsName("localhost");
        }

        if (!IPAddress.Loopback.Equals(ip))
        {
            san.AddIpAddress(IPAddress.Loopback);
        }

        request.CertificateExtensions.Add(san.Build());
        // serverAuth for the agents' connections; clientAuth because the silos of an aggregator cluster present this same
        // certificate to each other (mutual TLS on the cluster's ports, docs/cluster.md). A site still cannot be impersonated
        // with it: sites are identified by CN and their own thumbprint in the manifest (PeerTrust.IdentifySite).
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(PeerTrust.ServerAuthOid), new Oid(PeerTrust.ClientAuthOid)], false));
    }

    private static void AddClientExtensions(CertificateRequest request, string federation, string site)
    {
        var san = new SubjectAlternativeNameBuilder();
        san.AddUri(SiteUri(federation, site));
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(PeerTrust.ClientAuthOid)], false));
    }

    /// <summary>The URI in a site certificate's SAN: <c>securefed://&lt;federation&gt;/site/&lt;site&gt;</c>.</summary>
    public static Uri SiteUri(string federation, string site) => new($"securefed://{federation}/site/{site}");

    private static byte[] SerialNumber(IRandomSource random)
    {
        byte[] serial = new byte[16];
        random.Fill(serial);
        serial[0] = (byte)((serial[0] & 0x7F) | 0x01); // positive and never zero-led
        return serial;
    }

    private static void WritePublic(string path, string text, Action<string> track)
    {
        AtomicFile.WriteAllText(path, text);
        track(path);
    }

    private static void CreateDirectory(string path, bool isPrivate)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, isPrivate ? PrivateDirectoryMode : PrivateDirectoryMode | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
    }
}
