using System.Security.Cryptography;
using System.Text;

namespace SecureFed.Federation;

/// <summary>
/// The operator's console credential: <c>securefed provision</c> draws a random token (<see cref="TokenBytes"/> bytes,
/// lowercase hex) for the operator and puts only its SHA-256 into the aggregator's kit
/// (<see cref="KitFiles.OperatorTokenVerifier"/>). The aggregator's admin listener compares the SHA-256 of a presented
/// token with it in constant time, so the aggregator's kit alone does not open the console.
/// </summary>
public sealed class OperatorCredential
{
    /// <summary>Random bytes in a token (64 hex digits).</summary>
    public const int TokenBytes = 32;

    private readonly byte[] _verifier;

    private OperatorCredential(byte[] verifier) => _verifier = verifier;

    /// <summary>The verifier of <paramref name="token"/>: SHA-256 of its ASCII text, lowercase hex.</summary>
    public static string Verifier(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token.Trim())));
    }

    /// <summary>Reads a verifier file (64 hex digits); a missing or malformed file is an error naming it.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file does not hold 64 hex digits.</exception>
    public static OperatorCredential LoadVerifier(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException(
                $"{path}: the operator token's verifier is missing; 'securefed provision' writes it into the aggregator's kit ({KitFiles.OperatorTokenVerifier}).", path);
        }

        RequireRegular(path);
        string text = File.ReadAllText(path).Trim();
        if (text.Length != 64 || !text.All(Uri.IsHexDigit))
        {
            throw new InvalidDataException($"{path}: expected the SHA-256 of the operator token as 64 hex digits.");
        }

        return new OperatorCredential(Convert.FromHexString(text));
    }

    /// <summary>Reads an operator token file (what the operator presents); errors name the file.</summary>
    public static string LoadToken(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        RequireRegular(path);
        string text = File.ReadAllText(path).Trim();
        if (text.Length != 2 * TokenBytes || !text.All(Uri.IsHexDigit))
        {
            throw new InvalidDataException($"{path}: expected an operator token of {2 * TokenBytes} hex digits.");
        }

        return text;
    }

    /// <summary>
    /// Refuses a path that is not a regular file before it is opened: a named pipe "exists" too, and reading one waited for
    /// a writer forever (the aggregator hung at start-up with no message); a link to /dev/zero had no end.
    /// </summary>
    private static void RequireRegular(string path)
    {
        if (Internal.RegularFile.NonRegularKind(path) is { } kind)
        {
            throw new InvalidDataException($"{path}{Internal.RegularFile.LinkText(path)} is {kind}, not a regular file; the operator token and its verifier are small files of hex digits ('securefed provision' writes them). It was not opened.");
        }
    }

    /// <summary>True when <paramref name="token"/> is the operator's token (constant-time comparison of the digests).</summary>
    public bool Accepts(string? token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 256)
        {
            return false;
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(token.Trim()), digest);
        return CryptographicOperations.FixedTimeEquals(digest, _verifier);
    }
}
