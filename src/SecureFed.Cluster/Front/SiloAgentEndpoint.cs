namespace SecureFed.Cluster.Front;

/// <summary>
/// The https:// URL where agents reach this silo's gRPC service (protocol version 4 slice uploads, docs/cluster.md §6),
/// set once the silo's Kestrel has bound it; empty while the silo serves no agents. Slice grains report it
/// (<see cref="Grains.ISliceGrain.EndpointAsync"/>) so the coordinator can announce, per slice, where it is uploaded.
/// </summary>
public sealed class SiloAgentEndpoint
{
    private volatile string _url = "";

    /// <summary>The URL, or empty.</summary>
    public string Url => _url;

    /// <summary>Sets the URL (absolute https://).</summary>
    public void Set(Uri url)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (url.Scheme != Uri.UriSchemeHttps)
        {
            throw new ArgumentException($"an agent endpoint must be https://, got '{url}'", nameof(url));
        }

        _url = url.GetLeftPart(UriPartial.Authority);
    }
}
