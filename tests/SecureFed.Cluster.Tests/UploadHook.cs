namespace SecureFed.Cluster.Tests;

/// <summary>Runs an action once, just before the first masked-input upload it sees after being armed (fault injection).</summary>
internal sealed class UploadHook(HttpMessageHandler inner, Func<bool> armed, Action beforeUpload) : DelegatingHandler(inner)
{
    private static int _fired;

    /// <summary>Re-arms the shared once-only latch (one test at a time uses it).</summary>
    public static void Reset() => Interlocked.Exchange(ref _fired, 0);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri?.AbsolutePath.EndsWith("/UploadMaskedInput", StringComparison.Ordinal) == true && armed()
            && Interlocked.Exchange(ref _fired, 1) == 0)
        {
            beforeUpload();
        }

        return base.SendAsync(request, cancellationToken);
    }
}
