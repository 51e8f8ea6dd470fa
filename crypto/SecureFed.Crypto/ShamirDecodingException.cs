using System.Security.Cryptography;

namespace SecureFed.Crypto;

/// <summary>The shares do not determine the secret: too few well-formed ones, or too many of them wrong.</summary>
public sealed class ShamirDecodingException : CryptographicException
{
    /// <summary>Creates the exception.</summary>
    public ShamirDecodingException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public ShamirDecodingException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public ShamirDecodingException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
