using Google.Protobuf;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace SecureFed.Aggregator.Operations;

/// <summary>Counts the protobuf bytes every request brings in (<c>securefed.aggregator.received</c>, by method).</summary>
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
        => continuation(new CountingReader<TRequest>(requestStream, this, context), context);

    private void Count<TRequest>(TRequest request, ServerCallContext context)
    {
        if (request is IMessage message)
        {
            telemetry.Received(MethodName(context.Method), message.CalculateSize());
        }
    }

    /// <summary>The method's short name (<c>/securefed.v1.Aggregation/AdvertiseKeys</c> → <c>AdvertiseKeys</c>).</summary>
    internal static string MethodName(string method)
    {
        int slash = method.LastIndexOf('/');
        return slash >= 0 ? method[(slash + 1)..] : method;
    }

    private sealed class CountingReader<T>(IAsyncStreamReader<T> inner, TelemetryInterceptor owner, ServerCallContext context) : IAsyncStreamReader<T>
    {
        public T Current => inner.Current;

        public async Task<bool> MoveNext(CancellationToken cancellationToken)
        {
            bool more = await inner.MoveNext(cancellationToken).ConfigureAwait(false);
            if (more)
            {
                owner.Count(inner.Current, context);
            }

            return more;
        }
    }
}
