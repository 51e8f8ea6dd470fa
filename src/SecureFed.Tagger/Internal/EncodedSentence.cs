namespace SecureFed.Tagger.Internal;

/// <summary>Hashed features (and optional gold label ids) of one sentence; <paramref name="Chars"/> is empty without the character CNN.</summary>
internal sealed record EncodedSentence(long[] Words, long[] Shapes, long[] Ngrams, long[] Chars, long[]? Labels)
{
    public int Length => Words.Length;

    /// <summary>Per label index, whether a token tagged O may carry it (partial annotation); null = only O.</summary>
    public bool[]? OutsideAllowed { get; init; }

    /// <summary>The pretrained encoder's vectors, [Length × <see cref="TaggerConfig.EncoderDim"/>] row-major; null without an encoder.</summary>
    public float[]? Features { get; init; }
}
