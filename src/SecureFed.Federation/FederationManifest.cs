using System.Collections.Immutable;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

using SecureFed.Federation.Internal;

namespace SecureFed.Federation;

/// <summary>
/// The federation manifest (<c>federation.json</c>): the federation name, its CA certificate, and for the aggregator
/// and every site the SHA-256 thumbprint of its TLS certificate and its Ed25519 identity public key, plus the names
/// of revoked sites. Immutable; <see cref="WithRevoked"/> returns a new manifest.
/// </summary>
public sealed class FederationManifest
{
    /// <summary>The format marker written into every manifest.</summary>
    public const string FormatVersion = "securefed-federation/1";

    /// <summary>
    /// The one spelling of <c>createdUtc</c>: the writer uses it and the reader accepts only it, so a hand-edited time
    /// in another zone or notation is refused instead of being silently converted (and the file no longer round-trips).
    /// </summary>
    internal const string CreatedUtcFormat = "yyyy-MM-dd'T'HH:mm:ss'Z'";

    /// <summary>
    /// A property given twice is refused: by default the last one wins, so a "revoked": [] appended at the end
    /// silently undid the revocation a reviewer saw at the top of the file.
    /// </summary>
    private static readonly JsonDocumentOptions s_documentOptions = new() { AllowDuplicateProperties = false };

    private static readonly JsonWriterOptions s_writerOptions = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    private readonly ImmutableDictionary<string, PartyInfo> _sitesByName;

    internal FederationManifest(
        string federationName,
        DateTimeOffset createdUtc,
        X509Certificate2 caCertificate,
        string aggregatorHost,
        PartyInfo aggregator,
        IEnumerable<PartyInfo> sites,
        IEnumerable<string> revoked)
    {
        FederationName = federationName;
        CreatedUtc = createdUtc;
        CaCertificate = caCertificate;
        AggregatorHost = aggregatorHost;
        Aggregator = aggregator;
        Sites = sites.OrderBy(s => s.Name, StringComparer.Ordinal).ToImmutableArray();
        _sitesByName = Sites.ToImmutableDictionary(s => s.Name, StringComparer.Ordinal);
        Revoked = revoked.ToImmutableSortedSet(StringComparer.Ordinal);
    }

    /// <summary>The federation name (lowercase <c>[a-z0-9-]</c>, not starting or ending with '-').</summary>
    public string FederationName { get; }

    /// <summary>When the federation was provisioned (UTC).</summary>
    public DateTimeOffset CreatedUtc { get; }

    /// <summary>The federation CA certificate (public part only); the only trust root for TLS inside the federation.</summary>
    public X509Certificate2 CaCertificate { get; }

    /// <summary>The host name (or IP) agents use to reach the aggregator; it is in the aggregator certificate's SAN.</summary>
    public string AggregatorHost { get; }

    /// <summary>The aggregator (name <c>aggregator</c>).</summary>
    public PartyInfo Aggregator { get; }

    /// <summary>All provisioned sites, revoked ones included, ordered by name.</summary>
    public IReadOnlyList<PartyInfo> Sites { get; }

    /// <summary>Names of revoked sites; their certificates and identity keys are refused.</summary>
    public IReadOnlySet<string> Revoked { get; }

    /// <summary>Loads and validates a manifest file.</summary>
    /// <exception cref="InvalidDataException">The file is not valid JSON or a field is missing or invalid; the message names the file and the field.</exception>
    /// <exception cref="IOException">The file cannot be read, or it is not a regular file (a named pipe, a device).</exception>
    /// <exception cref="InvalidDataException">The file is larger than 16 MiB (no manifest is); the message names its size.</exception>
    public static FederationManifest Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string json;
        try
        {
            byte[] bytes = RegularFile.ReadAllBytes(path, RegularFile.ManifestLimit, "Federation manifest");
            json = Encoding.UTF8.GetString(bytes.AsSpan().StartsWith(Encoding.UTF8.Preamble) ? bytes.AsSpan(Encoding.UTF8.Preamble.Length) : bytes);
        }
        catch (Exception ex) when (ex is (IOException and not RegularFile.NotRegularFileException) or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot read the federation manifest '{path}': {ex.Message}", ex);
        }

        return Parse(json, path);
    }

    /// <summary>Parses and validates manifest JSON; <paramref name="source"/> names it in error messages.</summary>
    /// <exception cref="InvalidDataException">The JSON is invalid or a field is missing or invalid.</exception>
    public static FederationManifest Parse(string json, string source = "federation manifest")
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(source);
        var reader = new ManifestReader(source);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, s_documentOptions);
        }
        catch (JsonException ex) when (IsDuplicateProperty(json))
        {
            throw new InvalidDataException(
                $"{source}: a JSON property is given twice ({ex.Message.TrimEnd('.')}); 'securefed provision' never writes one twice, so the file was edited: keep the intended one.", ex);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({ex.Message}).", ex);
        }
        catch (ArgumentException ex)
        {
            // A string with a lone surrogate cannot be transcoded to UTF-8 (found by the reliability fuzz tests).
            throw new InvalidDataException($"{source}: not valid text ({ex.Message}).", ex);
        }

        using (document)
        {
            try
            {
                return reader.Read(document.RootElement);
            }
            catch (InvalidOperationException ex)
            {
                // e.g. an escaped lone surrogate ("\ud800") that cannot be read as a string (found by the reliability fuzz tests).
                throw new InvalidDataException($"{source}: a text field is not valid UTF-16 ({ex.Message}).", ex);
            }
        }
    }

    /// <summary>Whether <paramref name="json"/>, refused with duplicates disallowed, is valid JSON once they are allowed (only on the error path).</summary>
    private static bool IsDuplicateProperty(string json)
    {
        try
        {
            using JsonDocument lenient = JsonDocument.Parse(json);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Looks up a site by name (revoked sites included; check <see cref="IsRevoked"/>).</summary>
    public bool TryGetSite(string name, out PartyInfo site)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_sitesByName.TryGetValue(name, out PartyInfo? found))
        {
            site = found;
            return true;
        }

        site = null!;
        return false;
    }

    /// <summary>Whether <paramref name="site"/> is revoked.</summary>
    public bool IsRevoked(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        return Revoked.Contains(site);
    }

    /// <summary>Returns a manifest in which <paramref name="site"/> is revoked (idempotent).</summary>
    /// <exception cref="ArgumentException">The site is not part of the federation.</exception>
    public FederationManifest WithRevoked(string site)
    {
        ArgumentNullException.ThrowIfNull(site);
        if (!_sitesByName.ContainsKey(site))
        {
            throw new ArgumentException(
                $"Cannot revoke unknown site '{site}' in federation '{FederationName}'; known sites: {string.Join(", ", Sites.Select(s => s.Name))}.",
                nameof(site));
        }

        return Revoked.Contains(site)
            ? this
            : new FederationManifest(FederationName, CreatedUtc, CaCertificate, AggregatorHost, Aggregator, Sites, Revoked.Append(site));
    }

    /// <summary>Returns a manifest with <paramref name="site"/> added (a site provisioned later, <see cref="FederationProvisioner.AddSite"/>).</summary>
    /// <exception cref="ArgumentException">A site of that name is already listed (revoked or not), or it is the aggregator's name.</exception>
    public FederationManifest WithSite(PartyInfo site)
    {
        ArgumentNullException.ThrowIfNull(site);
        if (_sitesByName.ContainsKey(site.Name) || site.Name == Aggregator.Name)
        {
            throw new ArgumentException($"Federation '{FederationName}' already has a party named '{site.Name}'.", nameof(site));
        }

        return new FederationManifest(FederationName, CreatedUtc, CaCertificate, AggregatorHost, Aggregator, Sites.Append(site), Revoked);
    }

    /// <summary>
    /// Writes the manifest to <paramref name="path"/> atomically (see <see cref="AtomicFile"/>); when the path is a
    /// symbolic link its final target is rewritten and the link is kept.
    /// </summary>
    public void Save(string path) => AtomicFile.WriteAllText(AtomicFile.FinalTarget(path), ToJson());

    /// <summary>The canonical JSON text: fixed field order, sites and revoked names sorted, two-space indentation, trailing newline.</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatVersion);
            w.WriteString("federation", FederationName);
            w.WriteString("createdUtc", CreatedUtc.UtcDateTime.ToString(CreatedUtcFormat, CultureInfo.InvariantCulture));
            w.WriteString("caCertificate", CaCertificate.ExportCertificatePem());
            w.WriteStartObject("aggregator");
            w.WriteString("name", Aggregator.Name);
            w.WriteString("host", AggregatorHost);
            WriteParty(w, Aggregator);
            w.WriteEndObject();
            w.WriteStartArray("sites");
            foreach (PartyInfo site in Sites)
            {
                w.WriteStartObject();
                w.WriteString("name", site.Name);
                WriteParty(w, site);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteStartArray("revoked");
            foreach (string name in Revoked)
            {
                w.WriteStringValue(name);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    private static void WriteParty(Utf8JsonWriter w, PartyInfo party)
    {
        w.WriteString("certificateSha256", party.CertificateThumbprint);
        w.WriteString("identityPublicKey", Convert.ToBase64String(party.IdentityPublicKey));
    }

    /// <summary>SHA-256 of the certificate's DER encoding, lowercase hex (the thumbprint stored in the manifest).</summary>
    public static string Thumbprint(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        return Convert.ToHexStringLower(SHA256.HashData(certificate.RawDataMemory.Span));
    }
}
