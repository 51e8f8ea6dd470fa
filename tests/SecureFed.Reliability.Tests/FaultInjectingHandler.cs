using System.Net;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Network faults between an agent and the aggregator, deterministic by call number: some calls fail before they leave
/// (connection refused/reset), some fail after the aggregator has processed them (the reply is lost, so the retry is a
/// duplicate), some get an HTTP 503 from a "proxy", some are delayed.
/// </summary>
internal sealed class FaultInjectingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    private int _calls;

    public int DroppedBefore;
    public int DroppedAfter;
    public int ServiceUnavailable;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        int n = Interlocked.Increment(ref _calls);
        switch (n % 6)
        {
            case 1:
                Interlocked.Increment(ref DroppedBefore);
                throw new HttpRequestException(HttpRequestError.ConnectionError, "injected fault: connection reset before the request was sent");
            case 3:
                HttpResponseMessage response = await base.SendAsync(request, cancellationToken);
                if (request.RequestUri?.AbsolutePath.Contains("/Await", StringComparison.Ordinal) == true)
                {
                    return response; // long polls: losing the reply only costs time
                }

                // Let the aggregator finish the call, then lose the reply.
                await response.Content.ReadAsByteArrayAsync(cancellationToken);
                response.Dispose();
                Interlocked.Increment(ref DroppedAfter);
                throw new HttpRequestException(HttpRequestError.ResponseEnded, "injected fault: connection reset after the request was processed");
            case 5:
                Interlocked.Increment(ref ServiceUnavailable);
                return new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { RequestMessage = request, Version = request.Version };
            default:
                await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
                return await base.SendAsync(request, cancellationToken);
        }
    }
}
