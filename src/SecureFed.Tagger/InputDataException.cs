namespace SecureFed.Tagger;

/// <summary>
/// Input data the user named that cannot be read as what it should be: a malformed line of a CoNLL file (no tag, an
/// invalid tag), bytes that are not UTF-8, a corpus folder's file that is missing or holds no sentence. The message names
/// the file (and the line, for a malformed one). Like any other invalid value the user gave, the CLI reports it as a
/// usage error (exit code 2), whichever command read the file; a failure to read it (an I/O error) is not one. Not an
/// <see cref="InvalidDataException"/> (sealed, and thrown for damaged files of SecureFed's own, a model or a ledger, which
/// stay failures) nor an <see cref="IOException"/> (a disk or permission error).
/// </summary>
public sealed class InputDataException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong, naming the file (<c>file:line: problem</c> for a malformed line).</param>
    public InputDataException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its cause.</summary>
    /// <param name="message">What is wrong, naming the file.</param>
    /// <param name="innerException">The exception that found it (e.g. the decoder's, for bytes that are not UTF-8).</param>
    public InputDataException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
