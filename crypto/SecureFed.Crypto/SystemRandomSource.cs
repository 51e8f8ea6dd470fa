using System.Security.Cryptography;

namespace SecureFed.Crypto;

/// <summary>The operating system's CSPRNG (<see cref="RandomNumberGenerator"/>).</summary>
public sealed class SystemRandomSource : IRandomSource
{
    /// <summary>The shared instance; stateless and thread-safe.</summary>
    public static SystemRandomSource Instance { get; } = new();

    private SystemRandomSource()
    {
    }

    /// <inheritdoc />
    public void Fill(Span<byte> destination) => RandomNumberGenerator.Fill(destination);
}
