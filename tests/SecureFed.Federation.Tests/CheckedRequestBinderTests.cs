using System.Buffers;
using Google.Protobuf;
using Grpc.Core;
using SecureFed.Aggregator;
using SecureFed.Wire.V1;

namespace SecureFed.Federation.Tests;

/// <summary>
/// <see cref="CheckedRequestBinder"/>'s request deserializer, without a network: what a request of up to the 4 MiB message
/// limit costs to parse. Parsing costs memory per field and per entry, not per byte, so a hostile site's 4 MiB of 2-byte
/// empty share entries or unknown fields used to become 120–290 MB of objects per call (hostile-site review), where the
/// threat model counted 4 MiB per call in flight.
/// </summary>
public sealed class CheckedRequestBinderTests
{
    private const int NearLimit = (4 * 1024 * 1024) - 64;

    /// <summary>A parse may allocate a few times its payload (strings, arrays, list growth), never tens of times.</summary>
    private const long AllocationBound = 4L * NearLimit;

    public static TheoryData<string> BulkMethods => ["ShareKeys", "Unmask self_mask_shares", "Unmask masking_key_shares"];

    [Theory]
    [MemberData(nameof(BulkMethods))]
    public void Deserialize_MillionsOfEmptyShareEntries_RefusedBeforeParsingNamingTheEntry(string which)
    {
        byte[] payload = which switch
        {
            "ShareKeys" => Repeat([0x12, 0x00], NearLimit),
            "Unmask self_mask_shares" => Repeat([0x12, 0x00], NearLimit),
            _ => Repeat([0x1A, 0x00], NearLimit),
        };

        (RpcException? refused, long allocated) = which == "ShareKeys"
            ? Deserialize<ShareKeysRequest>(payload, ShareKeysRequest.Parser)
            : Deserialize<UnmaskResponseMessage>(payload, UnmaskResponseMessage.Parser);

        Assert.NotNull(refused);
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        string field = which == "ShareKeys" ? "ShareKeysRequest.shares[0] is 0 bytes; an entry is at least 118 bytes"
            : which.EndsWith("self_mask_shares", StringComparison.Ordinal) ? "UnmaskResponseMessage.self_mask_shares[0] is 0 bytes; an entry is at least 42 bytes"
            : "UnmaskResponseMessage.masking_key_shares[0] is 0 bytes; an entry is at least 42 bytes";
        Assert.Contains(field, refused.Status.Detail, StringComparison.Ordinal);
        Assert.True(allocated < AllocationBound, $"refusing {payload.Length} bytes allocated {allocated} bytes");
    }

    [Fact]
    public void Deserialize_ShortEntryAfterHonestOnesAndAnUnknownGroup_RefusedNamingItsIndex()
    {
        var request = new ShareKeysRequest { Header = new Header { FederationId = "f", Round = 1, SessionId = "s", Stage = Stage.ShareKeys, Sender = "site-a" } };
        for (uint i = 2; i <= 4; i++)
        {
            request.Shares.Add(new EncryptedShareMessage { Sender = 1, Recipient = i, Ciphertext = ByteString.CopyFrom(new byte[116]) });
        }

        // An unknown group (field 9) holding a length-delimited field 2 (not an entry), then one short entry.
        byte[] payload = [.. request.ToByteArray(), 0x4B, 0x12, 0x00, 0x4C, 0x12, 0x03, 0x08, 0x01, 0x10];

        (RpcException? refused, _) = Deserialize<ShareKeysRequest>(payload, ShareKeysRequest.Parser);

        Assert.NotNull(refused);
        Assert.Contains("ShareKeysRequest.shares[3] is 3 bytes", refused.Status.Detail, StringComparison.Ordinal);
    }

    public static TheoryData<byte, byte> UnknownFields => new()
    {
        { 0x4A, 0x00 }, // field 9, empty bytes
        { 0x48, 0x00 }, // field 9, varint 0
        { 0x4B, 0x4C }, // field 9, an empty group
    };

    [Theory]
    [MemberData(nameof(UnknownFields))]
    public void Deserialize_ChunkPaddedWithMillionsOfUnknownFields_ParsedWithoutThemAndWithoutAnObjectEach(byte tag, byte rest)
    {
        var chunk = new MaskedInputChunk { Header = new Header { FederationId = "f", Round = 1, SessionId = "s", Stage = Stage.MaskedInput, Sender = "site-a" }, TotalWords = 3, Sha256 = new string('0', 64) };
        chunk.Words.Add([1u, 2u, 3u]);
        byte[] honest = chunk.ToByteArray();
        byte[] payload = [.. honest, .. Repeat([tag, rest], NearLimit - honest.Length)];

        (RpcException? refused, long allocated, MaskedInputChunk? parsed) = Parse(payload, MaskedInputChunk.Parser);

        Assert.Null(refused);
        Assert.NotNull(parsed);
        Assert.Equal(chunk, parsed); // the known fields as sent, no unknown field kept
        Assert.True(allocated < AllocationBound, $"parsing {payload.Length} bytes allocated {allocated} bytes");
    }

    [Fact]
    public void Deserialize_HonestShareKeysAndUnmask_ParsedAsSent()
    {
        var shares = new ShareKeysRequest { Header = new Header { FederationId = "f", Round = 7, SessionId = "s", Stage = Stage.ShareKeys, Sender = "site-a" } };
        var unmask = new UnmaskResponseMessage { Header = new Header { FederationId = "f", Round = 7, SessionId = "s", Stage = Stage.Unmasking, Sender = "site-a" } };
        for (uint i = 1; i <= 512; i++)
        {
            shares.Shares.Add(new EncryptedShareMessage { Sender = 1, Recipient = i, Ciphertext = ByteString.CopyFrom(new byte[116]) });
            (i % 2 == 0 ? unmask.SelfMaskShares : unmask.MaskingKeyShares).Add(new RevealedShareMessage { Owner = i, Value = ByteString.CopyFrom(new byte[40]) });
        }

        Assert.Equal(shares, Parse(shares.ToByteArray(), ShareKeysRequest.Parser).Parsed);
        Assert.Equal(unmask, Parse(unmask.ToByteArray(), UnmaskResponseMessage.Parser).Parsed);
    }

    private static (RpcException? Refused, long Allocated) Deserialize<T>(byte[] payload, MessageParser<T> parser)
        where T : class, IMessage<T>
    {
        (RpcException? refused, long allocated, _) = Parse(payload, parser);
        return (refused, allocated);
    }

    private static (RpcException? Refused, long Allocated, T? Parsed) Parse<T>(byte[] payload, MessageParser<T> parser)
        where T : class, IMessage<T>
    {
        var method = new Method<T, Ack>(MethodType.Unary, "securefed.v1.Aggregation", typeof(T).Name,
            Marshallers.Create(m => m.ToByteArray(), parser.ParseFrom), Marshallers.Create(a => a.ToByteArray(), Ack.Parser.ParseFrom));
        Func<DeserializationContext, T> deserialize = CheckedRequestBinder.Checked(method).RequestMarshaller.ContextualDeserializer;
        var context = new Payload(payload);
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            T parsed = deserialize(context);
            return (null, GC.GetAllocatedBytesForCurrentThread() - before, parsed);
        }
        catch (RpcException ex)
        {
            return (ex, GC.GetAllocatedBytesForCurrentThread() - before, null);
        }
    }

    private static byte[] Repeat(byte[] unit, int bytes)
    {
        byte[] result = new byte[bytes / unit.Length * unit.Length];
        for (int i = 0; i < result.Length; i += unit.Length)
        {
            unit.CopyTo(result, i);
        }

        return result;
    }

    /// <summary>A request payload as grpc-dotnet hands it to a deserializer.</summary>
    private sealed class Payload(byte[] bytes) : DeserializationContext
    {
        public override int PayloadLength => bytes.Length;

        public override byte[] PayloadAsNewBuffer() => (byte[])bytes.Clone();

        public override ReadOnlySequence<byte> PayloadAsReadOnlySequence() => new(bytes);
    }
}
