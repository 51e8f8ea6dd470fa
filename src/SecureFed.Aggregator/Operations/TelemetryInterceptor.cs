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
            telemetry.Received(MethodName(context.Method), size);
            if (forwarded)
            {
                telemetry.ReceivedForwarded(size + 5L); // the gRPC message prefix: the unit the forwarding silo counts
            }
        }
    }

    /// <summary>The method's short name (<c>/securefed.v1.Aggregation/AdvertiseKeys</c> → <c>AdvertiseKeys</c>).</summary>
    internal static string MethodName(string method)
    {
        int slash = method.LastIndexOf('/');
        return slash >= 0 ? method[(slash + 1)..] : method;
    }

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
