namespace SecureFed.Crypto;

/// <summary>
/// A source of cryptographically secure random bytes. Production code uses <see cref="SystemRandomSource"/>;
/// tests may inject a deterministic implementation so that runs are reproducible.
/// </summary>
public interface IRandomSource
{
    /// <summary>Fills <paramref name="destination"/> with random bytes.</summary>
    void Fill(Span<byte> destination);
}
