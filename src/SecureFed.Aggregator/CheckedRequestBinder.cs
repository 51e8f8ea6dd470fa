using System.Buffers;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// Wraps every method's request deserializer so that bytes that are not a valid protobuf message of the method's
/// request type are refused with <see cref="StatusCode.InvalidArgument"/> naming the method and the parse problem, and
/// requests of the small types (<see cref="SmallRequestTypes"/>) over <see cref="MaxSmallRequestBytes"/> with
/// <see cref="StatusCode.ResourceExhausted"/> before they are parsed. Requests are parsed without their unknown fields, and
/// a bulk request whose repeated entries are shorter than the smallest honest one (<see cref="EntryFloors"/>) is refused
/// with <see cref="StatusCode.InvalidArgument"/> before it is parsed: parsing costs memory per field and per entry, not
/// per byte (hostile-site review: 4 MiB of 2-byte empty share entries or unknown fields parsed into 120–290 MB of objects).
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

    /// <summary>
    /// Per bulk request type, its repeated message fields whose entries each carry a value of fixed size: the field number,
    /// the fewest bytes an entry whose value has that size takes on the wire (the value's tag, length and bytes; every
    /// other field of the entry may be absent), and the field's name. An encrypted share is 116 bytes
    /// (<see cref="ShareCipher.Overhead"/> + <see cref="ProtocolLabels.SharePlaintextSize"/>), a revealed share
    /// <see cref="ProtocolLabels.ShareValueSize"/> bytes; the service refuses any other size anyway.
    /// </summary>
    internal static readonly IReadOnlyDictionary<Type, EntryFloor[]> EntryFloors = new Dictionary<Type, EntryFloor[]>
    {
        [typeof(Wire.V1.ShareKeysRequest)] = [new(Wire.V1.ShareKeysRequest.SharesFieldNumber, 2 + ShareCipher.Overhead + ProtocolLabels.SharePlaintextSize, "shares")],
        [typeof(Wire.V1.UnmaskResponseMessage)] =
        [
            new(Wire.V1.UnmaskResponseMessage.SelfMaskSharesFieldNumber, 2 + ProtocolLabels.ShareValueSize, "self_mask_shares"),
            new(Wire.V1.UnmaskResponseMessage.MaskingKeySharesFieldNumber, 2 + ProtocolLabels.ShareValueSize, "masking_key_shares"),
        ],
    };

    /// <summary>The same method with a request marshaller that turns parse failures into InvalidArgument.</summary>
    internal static Method<TRequest, TResponse> Checked<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        ArgumentNullException.ThrowIfNull(method);
        Marshaller<TRequest> original = method.RequestMarshaller;
        int? limit = SmallRequestTypes.Contains(typeof(TRequest)) ? MaxSmallRequestBytes : null;
        EntryFloor[]? floors = EntryFloors.GetValueOrDefault(typeof(TRequest));

        // Unknown fields are skipped, not kept: kept, each one became an object (4 MiB of empty groups in one
        // MaskedInputChunk: 290 MB), and no field this aggregator does not know changes what it does.
        MessageParser? parser = typeof(IMessage).IsAssignableFrom(typeof(TRequest)) && Activator.CreateInstance<TRequest>() is IMessage prototype
            ? prototype.Descriptor.Parser.WithDiscardUnknownFields(true)
            : null;
        var marshaller = new Marshaller<TRequest>(original.ContextualSerializer, context =>
        {
            if (limit is int max && context.PayloadLength > max)
            {
                // Before parsing: a request that is only a header and a few keys or signatures cannot be held in memory at
                // the 4 MiB message limit (e.g. thousands of long-polls padded with a huge session id or unknown fields).
                throw PreParseRefusal.Refuse(StatusCode.ResourceExhausted, Operations.RefusalReasons.OversizedRequest, string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"{method.FullName}: the request is {context.PayloadLength} bytes; the limit for {typeof(TRequest).Name} is {max} bytes (it carries no bulk data)"));
            }

            ReadOnlySequence<byte> payload = context.PayloadAsReadOnlySequence();
            if (floors is not null && ShortEntry(payload, floors) is string problem)
            {
                // Before parsing: an entry shorter than its value cannot be an honest one, and millions of them would each
                // become an object (4 MiB of 2-byte shares: 2 million, 120 MB), where the service refuses their count later.
                throw PreParseRefusal.Refuse(StatusCode.InvalidArgument, Operations.RefusalReasons.MalformedRequest, $"{method.FullName}: {typeof(TRequest).Name}.{problem}");
            }

            try
            {
                return parser is null ? original.ContextualDeserializer(context) : (TRequest)parser.ParseFrom(payload);
            }
            catch (InvalidProtocolBufferException ex)
            {
                throw PreParseRefusal.Refuse(StatusCode.InvalidArgument, Operations.RefusalReasons.MalformedRequest,
                    $"{method.FullName}: the request is not a valid {typeof(TRequest).Name} protobuf message ({ex.Message})");
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
    }

    /// <summary>
    /// The first entry of a field in <paramref name="floors"/> that is shorter than its floor, as "field[i] is N bytes; …",
    /// found by walking the top-level fields without parsing them; null when there is none, or when the bytes are not
    /// well-formed (the parser then refuses them before it reaches a field the walk has not checked).
    /// </summary>
    internal static string? ShortEntry(ReadOnlySequence<byte> payload, EntryFloor[] floors)
    {
        ArgumentNullException.ThrowIfNull(floors);
        var reader = new SequenceReader<byte>(payload);
        Span<int> counts = stackalloc int[floors.Length];
        int depth = 0; // inside unknown groups, whose fields are not the message's
        while (!reader.End)
        {
            if (!TryReadVarint(ref reader, out ulong tag))
            {
                return null;
            }

            switch ((int)(tag & 7))
            {
                case 0:
                    if (!TryReadVarint(ref reader, out _))
                    {
                        return null;
                    }

                    break;
                case 1:
                case 5:
                    int fixedSize = (tag & 7) == 1 ? 8 : 4;
                    if (reader.Remaining < fixedSize)
                    {
                        return null;
                    }

                    reader.Advance(fixedSize);
                    break;
                case 2:
                    if (!TryReadVarint(ref reader, out ulong length) || length > (ulong)reader.Remaining)
                    {
                        return null;
                    }

                    for (int i = 0; depth == 0 && i < floors.Length; i++)
                    {
                        if ((ulong)floors[i].Field == tag >> 3)
                        {
                            if (length < (ulong)floors[i].MinBytes)
                            {
                                return string.Create(CultureInfo.InvariantCulture,
                                    $"{floors[i].Name}[{counts[i]}] is {length} bytes; an entry is at least {floors[i].MinBytes} bytes (its {floors[i].MinBytes - 2}-byte value with the value's tag and length); refused before parsing");
                            }

                            counts[i]++;
                        }
                    }

                    reader.Advance((long)length);
                    break;
                case 3:
                    if (++depth > 100)
                    {
                        return null;
                    }

                    break;
                case 4:
                    if (--depth < 0)
                    {
                        return null;
                    }

                    break;
                default:
                    return null;
            }
        }

        return null;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out byte b))
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A repeated message field of a bulk request and the fewest bytes an entry of it takes on the wire (the entry's own tag and length excluded).</summary>
    internal readonly record struct EntryFloor(int Field, int MinBytes, string Name);
}
