using System.Collections.Concurrent;

namespace SecureFed.Cluster.Tests;

/// <summary>Counts agents' gRPC calls per endpoint (host:port) and method (the last segment of the request path).</summary>
internal sealed class CallCounter(HttpMessageHandler inner, ConcurrentDictionary<(string Authority, string Method), long> calls) : DelegatingHandler(inner)
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri is Uri uri)
        {
            calls.AddOrUpdate((uri.Authority, uri.AbsolutePath[(uri.AbsolutePath.LastIndexOf('/') + 1)..]), 1, (_, n) => n + 1);
        }

        return base.SendAsync(request, cancellationToken);
    }
}
