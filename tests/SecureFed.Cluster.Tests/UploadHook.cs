namespace SecureFed.Cluster.Tests;

/// <summary>Runs an action once, just before the first masked-input upload it sees after being armed (fault injection).</summary>
internal sealed class UploadHook : DelegatingHandler
{
    private static readonly StrongBox Shared = new();
    private readonly Func<bool> _armed;
    private readonly Action _beforeUpload;
    private readonly StrongBox _fired;

    /// <summary>A hook on the shared once-only latch (<see cref="Reset"/>; one test at a time uses it).</summary>
    public UploadHook(HttpMessageHandler inner, Func<bool> armed, Action beforeUpload)
        : this(inner, armed, beforeUpload, Shared)
    {
    }

    /// <summary>A hook on the test's own latch, shared by that test's agents only (tests in parallel do not interfere).</summary>
    public UploadHook(HttpMessageHandler inner, Func<bool> armed, Action beforeUpload, StrongBox latch)
        : base(inner)
    {
        _armed = armed;
        _beforeUpload = beforeUpload;
        _fired = latch;
    }

    /// <summary>Re-arms the shared once-only latch (one test at a time uses it).</summary>
    public static void Reset() => Interlocked.Exchange(ref Shared.Value, 0);

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (request.RequestUri?.AbsolutePath.EndsWith("/UploadMaskedInput", StringComparison.Ordinal) == true && _armed()
            && Interlocked.Exchange(ref _fired.Value, 1) == 0)
        {
            _beforeUpload();
        }

        return base.SendAsync(request, cancellationToken);
    }

    /// <summary>A once-only latch.</summary>
    internal sealed class StrongBox
    {
        public int Value;
    }
}
