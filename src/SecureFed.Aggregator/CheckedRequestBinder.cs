using Google.Protobuf;
using Grpc.Core;

namespace SecureFed.Aggregator;

/// <summary>
/// Wraps every method's request deserializer so that bytes that are not a valid protobuf message of the method's
/// request type are refused with <see cref="StatusCode.InvalidArgument"/> naming the method and the parse problem.
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

    /// <summary>The same method with a request marshaller that turns parse failures into InvalidArgument.</summary>
    internal static Method<TRequest, TResponse> Checked<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        ArgumentNullException.ThrowIfNull(method);
        Marshaller<TRequest> original = method.RequestMarshaller;
        var marshaller = new Marshaller<TRequest>(original.ContextualSerializer, context =>
        {
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
