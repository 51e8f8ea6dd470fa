using Google.Protobuf;
using Grpc.Core;

namespace SecureFed.Aggregator;

/// <summary>
/// Wraps every method's request deserializer so that bytes that are not a valid protobuf message of the method's
/// request type are refused with <see cref="StatusCode.InvalidArgument"/> naming the method and the parse problem, and
/// requests of the small types (<see cref="SmallRequestTypes"/>) over <see cref="MaxSmallRequestBytes"/> with
/// <see cref="StatusCode.ResourceExhausted"/> before they are parsed.
/// grpc-dotnet parses a unary request before any interceptor runs and maps a parser exception to
/// <see cref="StatusCode.Unknown"/>; an <see cref="RpcException"/> thrown by the deserializer keeps its status instead
/// (for client streams it surfaces from <c>MoveNext</c> in the service method, with the same effect).
/// Public for the aggregator cluster's slice silos, whose service binds the same way (docs/cluster.md §6).
/// </summary>
/// <param name="inner">The binder grpc-dotnet gave.</param>
public sealed class CheckedRequestBinder(ServiceBinderBase inner) : ServiceBinderBase
{
    /// <inheritdoc />
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        => inner.AddMethod(Checked(method), handler);

    /// <inheritdoc />
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        => inner.AddMethod(Checked(method), handler);

    /// <inheritdoc />
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        => inner.AddMethod(Checked(method), handler);

    /// <inheritdoc />
    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        => inner.AddMethod(Checked(method), handler);

    /// <summary>
    /// The most bytes of a request that carries no bulk data (a header, keys, signatures, a decline reason of at most 500
    /// characters): 64 KiB, far above any honest one (under 2 KiB).
    /// </summary>
    public const int MaxSmallRequestBytes = 64 * 1024;

    /// <summary>Request types held to <see cref="MaxSmallRequestBytes"/>; shares, masked inputs and unmask responses are not.</summary>
    internal static readonly IReadOnlySet<Type> SmallRequestTypes = new HashSet<Type>
    {
        typeof(Wire.V1.AwaitRoundRequest), typeof(Wire.V1.DeclineRoundRequest), typeof(Wire.V1.ProgressReport), typeof(Wire.V1.AdvertiseKeysRequest), typeof(Wire.V1.StageQuery),
        typeof(Wire.V1.ConsistencyRequest), typeof(Wire.V1.ModelRequest), typeof(Wire.V1.StatusRequest),
    };

    /// <summary>The same method with a request marshaller that turns parse failures into InvalidArgument.</summary>
    internal static Method<TRequest, TResponse> Checked<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        ArgumentNullException.ThrowIfNull(method);
        Marshaller<TRequest> original = method.RequestMarshaller;
        int? limit = SmallRequestTypes.Contains(typeof(TRequest)) ? MaxSmallRequestBytes : null;
        var marshaller = new Marshaller<TRequest>(original.ContextualSerializer, context =>
        {
            if (limit is int max && context.PayloadLength > max)
            {
                // Before parsing: a request that is only a header and a few keys or signatures cannot be held in memory at
                // the 4 MiB message limit (e.g. thousands of long-polls padded with a huge session id or unknown fields).
                throw new RpcException(new Status(StatusCode.ResourceExhausted, string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"{method.FullName}: the request is {context.PayloadLength} bytes; the limit for {typeof(TRequest).Name} is {max} bytes (it carries no bulk data)")));
            }

            try
            {
                return original.ContextualDeserializer(context);
            }
            catch (InvalidProtocolBufferException ex)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument,
                    $"{method.FullName}: the request is not a valid {typeof(TRequest).Name} protobuf message ({ex.Message})"));
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
    }
}
