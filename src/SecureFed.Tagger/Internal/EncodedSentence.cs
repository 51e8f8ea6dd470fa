namespace SecureFed.Tagger.Internal;

/// <summary>Hashed features (and optional gold label ids) of one sentence.</summary>
internal sealed record EncodedSentence(long[] Words, long[] Shapes, long[] Ngrams, long[]? Labels)
{
    public int Length => Words.Length;
}
