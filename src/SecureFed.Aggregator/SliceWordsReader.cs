namespace SecureFed.Aggregator;

/// <summary>
/// Reads one slice upload and hands each piece of its words, with their offset within the slice, to
/// <paramref name="piece"/> (awaited before the next piece is read); returns the upload's refusal, or null once every word
/// was handed over (<see cref="IRoundServer.AcceptMaskedInputSliceAsync"/>, <see cref="SliceUploadReader.StreamAsync"/>).
/// </summary>
public delegate Task<SliceUploadRefusal?> SliceWordsReader(Func<ReadOnlyMemory<uint>, int, Task> piece, CancellationToken cancellationToken);
