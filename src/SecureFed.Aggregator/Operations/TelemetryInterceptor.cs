using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace SecureFed.Aggregator.Operations;

/// <summary>
/// Counts the protobuf bytes every request brings in (<c>securefed.aggregator.received</c>, by method), and apart the
/// gRPC message bytes of requests another silo of the aggregator cluster forwarded (those that carry
/// <see cref="ForwardedIdentity.SiloHeader"/>; <see cref="AggregatorTelemetry.ForwardedRequestBytes"/>).
/// </summary>
internal sealed class TelemetryInterceptor(AggregatorTelemetry telemetry) : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Count(request, context);
        return continuation(request, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Count(request, context);
        return continuation(request, responseStream, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
        => continuation(new CountingReader<TRequest>(requestStream, this, context, Forwarded(context)), context);

    private static bool Forwarded(ServerCallContext context) => context.RequestHeaders.GetValue(ForwardedIdentity.SiloHeader) is not null;

    private void Count<TRequest>(TRequest request, ServerCallContext context) => Count(request, context, Forwarded(context));

    private void Count<TRequest>(TRequest request, ServerCallContext context, bool forwarded)
    {
        if (request is IMessage message)
        {
            int size = message.CalculateSize();
            telemetry.Received(MethodName(context), size);
            if (forwarded)
            {
                telemetry.ReceivedForwarded(size + 5L); // the gRPC message prefix: the unit the forwarding silo counts
            }
        }
    }

    /// <summary>
    /// The short name of the gRPC method the call was routed to (<see cref="BulkCallGate.CallMethod"/>), the metric's
    /// <c>method</c> label. Not <see cref="ServerCallContext.Method"/>: that is the request's path as the caller spelled it,
    /// and routing matches paths case-insensitively and with a trailing slash, so a site that sent each call under another
    /// spelling (<c>/securefed.v1.aggregation/gEtStAtUs</c>, … : 512 of GetStatus, 131,072 of UploadMaskedInput; a trailing
    /// slash gave the name "") made a new series per spelling, up to the OpenTelemetry SDK's default cap of 2,000 per metric,
    /// past which further series (an honest round's methods not yet seen, when the site did this at start-up) go to the
    /// overflow series; the operator's /metrics grew by one line per spelling (hostile-site review).
    /// </summary>
    internal static string MethodName(ServerCallContext context) => BulkCallGate.CallMethod(context.GetHttpContext());

    private sealed class CountingReader<T>(IAsyncStreamReader<T> inner, TelemetryInterceptor owner, ServerCallContext context, bool forwarded) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            bool more = await inner.MoveNext(cancellationToken).ConfigureAwait(false);
            if (more)
            {
                owner.Count(inner.Current, context, forwarded);
            }

            return more;
        }
    }
}
