using Grpc.Core;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// Reads one slice of a masked input from an <c>UploadMaskedInput</c> stream (protocol version 4), shared by the
/// coordinator's service and the slice silos' (docs/cluster.md §6): at most one slice is buffered, chunks must be in
/// order, at most <see cref="MaxChunkWords"/> long and (after the first) not empty, and the words must match the SHA-256 of the first chunk.
/// </summary>
public static class SliceUploadReader
{
    /// <summary>Largest chunk accepted, in words (as for a whole vector).</summary>
    public const int MaxChunkWords = 65_536;

    /// <summary>
    /// Checks the first chunk's size, announced length and digest against slice <paramref name="slice"/> of
    /// <paramref name="length"/> words (before the upload waits for a slot).
    /// </summary>
    public static SliceUploadRefusal? CheckFirst(MaskedInputChunk first, int slice, int length)
    {
        ArgumentNullException.ThrowIfNull(first);
        if (first.Words.Count > MaxChunkWords)
        {
            return Oversized(first);
        }

        if (first.TotalWords != (uint)length)
        {
            return new(StatusCode.InvalidArgument, "malformed_upload", $"slice {slice} announces {first.TotalWords} words; the round's slice {slice} has {length}");
        }

        if (first.Sha256.Length != 64)
        {
            return new(StatusCode.InvalidArgument, "malformed_upload", "the first chunk must carry the SHA-256 of the slice (64 hex digits)");
        }

        return null;
    }

    /// <summary>
    /// Reads the stream's chunks, <paramref name="first"/> included, with the same checks of their framing as
    /// <see cref="ReadAsync"/> (size, order, total length), and hands each chunk's words to <paramref name="piece"/> with
    /// their offset in the slice as they arrive, so at most one chunk is buffered. The digest is the receiver's to check
    /// (the words are not kept). Returns the refusal, or null once all <paramref name="length"/> words were handed over.
    /// </summary>
    public static async Task<SliceUploadRefusal?> StreamAsync(MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> stream, int length, int slice, Func<Google.Protobuf.Collections.RepeatedField<uint>, int, Task> piece, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(piece);
        int received = 0;
        MaskedInputChunk chunk = first;
        while (true)
        {
            SliceUploadRefusal? refusal = CheckChunk(chunk, chunk == first, received, length, slice);
            if (refusal is not null)
            {
                return refusal;
            }

            if (chunk.Words.Count > 0)
            {
                await piece(chunk.Words, received).ConfigureAwait(false);
            }

            received += chunk.Words.Count;
            if (!await stream.MoveNext(cancellationToken).ConfigureAwait(false))
            {
                break;
            }

            chunk = stream.Current;
        }

        return received == length
            ? null
            : new(StatusCode.InvalidArgument, "malformed_upload", $"slice {slice} has {received} words; the round's slice {slice} has {length}");
    }

    /// <summary>
    /// As <see cref="StreamAsync(MaskedInputChunk, IAsyncStreamReader{MaskedInputChunk}, int, int, Func{Google.Protobuf.Collections.RepeatedField{uint}, int, Task}, CancellationToken)"/>,
    /// the chunks' words gathered in one buffer of <see cref="MaxChunkWords"/> words that is reused, and passed on when it is
    /// full or the stream ends (the piece's memory is the reader's again when <paramref name="piece"/>'s task completes). So
    /// <paramref name="piece"/> is called once per <see cref="MaxChunkWords"/> words however the sender cut its stream: a
    /// slice sent one word a chunk no longer costs a slice-grain call and a spill write per word (hostile-site review of the
    /// cluster, docs/cluster.md §6).
    /// </summary>
    public static async Task<SliceUploadRefusal?> StreamAsync(MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> stream, int length, int slice, Func<ReadOnlyMemory<uint>, int, Task> piece, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(piece);
        uint[] buffer = System.Buffers.ArrayPool<uint>.Shared.Rent(MaxChunkWords);
        bool lent = false;
        int gathered = 0; // words in the buffer not yet passed on
        int from = 0;     // the offset of the buffer's first word
        async Task FlushAsync()
        {
            if (gathered > 0)
            {
                lent = true;
                await piece(buffer.AsMemory(0, gathered), from).ConfigureAwait(false);
                lent = false;
                from += gathered;
                gathered = 0;
            }
        }

        try
        {
            SliceUploadRefusal? refusal = await StreamAsync(first, stream, length, slice, async (words, offset) =>
            {
                // The words arrive in order (offset == from + gathered: checked by the chunk rules); a chunk holds at most
                // MaxChunkWords words, so it fits whole once the buffer is passed on.
                if (gathered + words.Count > MaxChunkWords)
                {
                    await FlushAsync().ConfigureAwait(false);
                }

                words.CopyTo(buffer, gathered);
                gathered += words.Count;
                if (gathered == MaxChunkWords)
                {
                    await FlushAsync().ConfigureAwait(false);
                }
            }, cancellationToken).ConfigureAwait(false);
            if (refusal is null)
            {
                await FlushAsync().ConfigureAwait(false);
            }

            return refusal;
        }
        finally
        {
            if (!lent)
            {
                System.Buffers.ArrayPool<uint>.Shared.Return(buffer); // a buffer whose piece failed is left to the collector
            }
        }
    }

    /// <summary>
    /// Reads the rest of an upload whose words are not kept (an identical retry decided by its digest), with the framing
    /// checks of <see cref="ReadAsync"/>, and checks the words against the SHA-256 of the first chunk.
    /// </summary>
    public static async Task<SliceUploadRefusal?> VerifyAsync(MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> stream, int length, int slice, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(first);
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        SliceUploadRefusal? refusal = await StreamAsync(first, stream, length, slice, (ReadOnlyMemory<uint> words, int _) =>
        {
            WireEncoding.AppendWords(hash, words.Span);
            return Task.CompletedTask;
        }, cancellationToken).ConfigureAwait(false);
        return refusal ?? (string.Equals(Convert.ToHexStringLower(hash.GetHashAndReset()), first.Sha256, StringComparison.OrdinalIgnoreCase)
            ? null
            : DigestMismatch(slice));
    }

    /// <summary>The refusal of a slice whose words do not match the SHA-256 announced in its first chunk.</summary>
    public static SliceUploadRefusal DigestMismatch(int slice)
        => new(StatusCode.DataLoss, "digest_mismatch", $"slice {slice} does not match the SHA-256 announced in its first chunk");

    private static SliceUploadRefusal Oversized(MaskedInputChunk chunk)
        => new(StatusCode.ResourceExhausted, "oversized_chunk", $"a chunk of {chunk.Words.Count} words exceeds the limit of {MaxChunkWords}");

    private static SliceUploadRefusal? CheckChunk(MaskedInputChunk chunk, bool isFirst, int received, int length, int slice)
    {
        if (chunk.Words.Count > MaxChunkWords)
        {
            return Oversized(chunk);
        }

        if (chunk.Words.Count == 0 && !isFirst)
        {
            return new(StatusCode.InvalidArgument, "malformed_upload", $"an empty chunk at offset {chunk.Offset} of slice {slice}: every chunk after the first must carry words");
        }

        if (chunk.Offset != (uint)received)
        {
            return new(StatusCode.InvalidArgument, "malformed_upload", $"chunk at offset {chunk.Offset} of slice {slice} arrived when {received} words had been received");
        }

        return received + chunk.Words.Count > length
            ? new(StatusCode.InvalidArgument, "malformed_upload", $"slice {slice} is longer than its {length} words")
            : null;
    }

    /// <summary>
    /// Reads the stream's chunks, <paramref name="first"/> included, into the first <paramref name="length"/> words of
    /// <paramref name="buffer"/> (the slice's length) and checks the digest. Returns the refusal, or null with the words read.
    /// </summary>
    public static async Task<SliceUploadRefusal?> ReadAsync(MaskedInputChunk first, IAsyncStreamReader<MaskedInputChunk> stream, uint[] buffer, int length, int slice, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, buffer.Length);
        SliceUploadRefusal? refusal = await StreamAsync(first, stream, length, slice, (Google.Protobuf.Collections.RepeatedField<uint> words, int offset) =>
        {
            words.CopyTo(buffer, offset);
            return Task.CompletedTask;
        }, cancellationToken).ConfigureAwait(false);
        if (refusal is not null)
        {
            return refusal;
        }

        string digest = Convert.ToHexStringLower(WireEncoding.VectorDigest(buffer.AsSpan(0, length)));
        return string.Equals(digest, first.Sha256, StringComparison.OrdinalIgnoreCase) ? null : DigestMismatch(slice);
    }
}
