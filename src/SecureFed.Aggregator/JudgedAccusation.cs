namespace SecureFed.Aggregator;

/// <summary>An accusation the aggregator judged in an attempt: the accused's protocol index and the accuser's signature.</summary>
internal sealed record JudgedAccusation(int Accused, byte[] Signature)
{
    /// <summary>Marks a claim whose accusation is being judged.</summary>
    public static readonly JudgedAccusation Pending = new(0, []);

    /// <summary>True when <paramref name="accused"/> and <paramref name="signature"/> are this accusation's (an identical retry).</summary>
    public bool Matches(int accused, ReadOnlySpan<byte> signature) => Signature.Length > 0 && Accused == accused && signature.SequenceEqual(Signature);
}
