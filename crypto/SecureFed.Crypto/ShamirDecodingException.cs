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

    /// <summary>
    /// True when more than t well-formed shares were given and they do determine a secret: for every chunk one polynomial
    /// of degree below t agrees with all but at most ⌊(n − t) / 2⌋ of them (the same bound Berlekamp–Welch corrects), yet
    /// its constant is not a valid secret or fails verification, and no t-subset rebuilds one that verifies. Unless more
    /// than ⌊(n − t) / 2⌋ of the shares are wrong (two polynomials of degree below t agree on at most t − 1 points), that
    /// polynomial is the one the shares were dealt on, so the dealer shared another secret than the one it committed to.
    /// False when the shares are too few or too inconsistent to say.
    /// </summary>
    public bool Consistent { get; init; }
}
