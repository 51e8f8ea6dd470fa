using Grpc.Core;
using SecureFed.Aggregator;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Tests;

/// <summary>Reading one slice of a masked input from its stream (protocol version 4), without a server.</summary>
public sealed class SliceUploadReaderTests
{
    private static readonly uint[] Words = [.. Enumerable.Range(0, 300).Select(i => (uint)(i * 7))];

    [Fact]
    public async Task ReadAsync_ChunksInOrderMatchingDigest_FillsTheBuffer()
    {
        uint[] buffer = new uint[400];

        SliceUploadRefusal? refusal = await ReadAsync(Chunks((0, 100), (100, 200)), buffer, 300);

        Assert.Null(refusal);
        Assert.Equal(Words, buffer[..300]);
    }

    [Theory]
    [InlineData("gap", "chunk at offset 150 of slice 2 arrived when 100 words had been received")]
    [InlineData("short", "slice 2 has 100 words; the round's slice 2 has 300")]
    [InlineData("long", "slice 2 is longer than its 300 words")]
    public async Task ReadAsync_BadStream_RefusedSayingWhy(string kind, string reason)
    {
        List<MaskedInputChunk> chunks = kind switch
        {
            "gap" => Chunks((0, 100), (150, 150)),
            "short" => Chunks((0, 100)),
            _ => Chunks((0, 300)),
        };
        if (kind == "long")
        {
            chunks.Add(new MaskedInputChunk { Offset = 300, Words = { 1u } });
        }

        SliceUploadRefusal? refusal = await ReadAsync(chunks, new uint[300], 300);

        Assert.NotNull(refusal);
        Assert.Equal(StatusCode.InvalidArgument, refusal.Code);
        Assert.Equal(reason, refusal.Reason);
    }

    [Fact]
    public async Task ReadAsync_WordsDifferFromDigest_DataLoss()
    {
        List<MaskedInputChunk> chunks = Chunks((0, 300));
        chunks[0].Words[5] ^= 1;

        SliceUploadRefusal? refusal = await ReadAsync(chunks, new uint[300], 300);

        Assert.Equal(StatusCode.DataLoss, refusal?.Code);
        Assert.Equal("digest_mismatch", refusal?.Category);
    }

    [Fact]
    public async Task ReadAsync_OversizedChunk_ResourceExhausted()
    {
        var chunk = new MaskedInputChunk { Offset = 0, TotalWords = 70_000, Sha256 = new string('0', 64) };
        chunk.Words.AddRange(new uint[SliceUploadReader.MaxChunkWords + 1]);

        SliceUploadRefusal? refusal = await ReadAsync([chunk], new uint[70_000], 70_000);

        Assert.Equal(StatusCode.ResourceExhausted, refusal?.Code);
    }

    [Fact]
    public async Task ReadAsync_EmptyChunkAfterFirst_RefusedSayingWhy()
    {
        List<MaskedInputChunk> chunks = Chunks((0, 100), (100, 200));
        chunks.Insert(1, new MaskedInputChunk { Offset = 100 });

        SliceUploadRefusal? refusal = await ReadAsync(chunks, new uint[300], 300);

        Assert.Equal(StatusCode.InvalidArgument, refusal?.Code);
        Assert.Equal("an empty chunk at offset 100 of slice 2: every chunk after the first must carry words", refusal?.Reason);
    }

    /// <summary>
    /// A slice sent one word a chunk (a hostile site's stream; gRPC frames cost it a few bytes each) reaches the slice grain
    /// in as few pieces as an honest one: the words are gathered up to <see cref="SliceUploadReader.MaxChunkWords"/> before
    /// each piece is passed on. Before, each chunk was a piece: a slice-grain call and an unbuffered spill write of 4 bytes
    /// per word at the silo (the single process only copies each chunk into its buffer).
    /// </summary>
    [Fact]
    public async Task StreamAsync_OneWordChunks_PassedOnInPiecesOfUpToMaxChunkWords()
    {
        const int length = SliceUploadReader.MaxChunkWords + 300;
        uint[] words = [.. Enumerable.Range(0, length).Select(i => (uint)i)];
        var chunks = new List<MaskedInputChunk>();
        for (int i = 0; i < length; i++)
        {
            chunks.Add(new MaskedInputChunk { Offset = (uint)i, Words = { words[i] } });
        }

        var pieces = new List<(int Offset, int Count)>();
        uint[] received = new uint[length];

        SliceUploadRefusal? refusal = await SliceUploadReader.StreamAsync(chunks[0], new ListStream(chunks.Skip(1)), length, 2, (ReadOnlyMemory<uint> piece, int offset) =>
        {
            pieces.Add((offset, piece.Length));
            piece.Span.CopyTo(received.AsSpan(offset));
            return Task.CompletedTask;
        }, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Null(refusal);
        Assert.True(pieces.Count == 2, $"{length} one-word chunks were passed on in {pieces.Count} pieces; expected 2 (at most {SliceUploadReader.MaxChunkWords} words each)");
        Assert.Equal([(0, SliceUploadReader.MaxChunkWords), (SliceUploadReader.MaxChunkWords, 300)], pieces);
        Assert.Equal(words, received);
    }

    [Fact]
    public void CheckFirst_OversizedFirstChunk_ResourceExhaustedBeforeAnyRead()
    {
        var first = new MaskedInputChunk { TotalWords = 70_000, Sha256 = new string('0', 64) };
        first.Words.AddRange(new uint[SliceUploadReader.MaxChunkWords + 1]);

        SliceUploadRefusal? refusal = SliceUploadReader.CheckFirst(first, 1, 70_000);

        Assert.Equal(StatusCode.ResourceExhausted, refusal?.Code);
        Assert.Equal("oversized_chunk", refusal?.Category);
    }

    [Fact]
    public void CheckFirst_WrongLengthOrDigest_RefusedSayingWhy()
    {
        Assert.Equal("slice 1 announces 99 words; the round's slice 1 has 100",
            SliceUploadReader.CheckFirst(new MaskedInputChunk { TotalWords = 99, Sha256 = new string('0', 64) }, 1, 100)?.Reason);
        Assert.Equal("the first chunk must carry the SHA-256 of the slice (64 hex digits)",
            SliceUploadReader.CheckFirst(new MaskedInputChunk { TotalWords = 100, Sha256 = "abc" }, 1, 100)?.Reason);
        Assert.Null(SliceUploadReader.CheckFirst(new MaskedInputChunk { TotalWords = 100, Sha256 = new string('0', 64) }, 1, 100));
    }

    private static List<MaskedInputChunk> Chunks(params (int Offset, int Count)[] ranges)
    {
        var chunks = new List<MaskedInputChunk>();
        foreach ((int offset, int count) in ranges)
        {
            var chunk = new MaskedInputChunk { Offset = (uint)offset };
            chunk.Words.AddRange(Words.AsSpan(offset, count).ToArray());
            chunks.Add(chunk);
        }

        chunks[0].TotalWords = 300;
        chunks[0].Sha256 = Convert.ToHexStringLower(WireEncoding.VectorDigest(Words));
        return chunks;
    }

    private static Task<SliceUploadRefusal?> ReadAsync(List<MaskedInputChunk> chunks, uint[] buffer, int length)
    {
        var stream = new ListStream(chunks.Skip(1));
        return SliceUploadReader.ReadAsync(chunks[0], stream, buffer, length, 2, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10));
    }

    private sealed class ListStream(IEnumerable<MaskedInputChunk> chunks) : IAsyncStreamReader<MaskedInputChunk>
    {
        private readonly IEnumerator<MaskedInputChunk> _chunks = chunks.GetEnumerator();

        public MaskedInputChunk Current => _chunks.Current;

        public Task<bool> MoveNext(CancellationToken cancellationToken) => Task.FromResult(_chunks.MoveNext());
    }
}
