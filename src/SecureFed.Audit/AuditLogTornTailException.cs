namespace SecureFed.Audit;

/// <summary>
/// The log's last line is torn (bytes without a final newline: a crash mid-write) and the log was opened without
/// <c>repairTornTail</c>: the <see cref="Exception.InnerException"/> of the <see cref="InvalidDataException"/> that
/// <see cref="AuditLog.Open(string, string, SecureFed.Crypto.Ed25519PrivateKey, string, bool, TimeProvider?)"/> throws,
/// so that a service can say how its operator asks for the repair. The lines before it are intact.
/// </summary>
public sealed class AuditLogTornTailException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="logPath">The log file.</param>
    /// <param name="lineNumber">The torn line's 1-based number.</param>
    /// <param name="tornBytes">The torn line's length in bytes.</param>
    /// <param name="intactLines">The lines before it, all intact.</param>
    /// <param name="message">The message.</param>
    public AuditLogTornTailException(string logPath, long lineNumber, long tornBytes, long intactLines, string message)
        : base(message)
    {
        LogPath = logPath;
        LineNumber = lineNumber;
        TornBytes = tornBytes;
        IntactLines = intactLines;
    }

    /// <summary>The log file.</summary>
    public string LogPath { get; }

    /// <summary>The torn line's 1-based number.</summary>
    public long LineNumber { get; }

    /// <summary>The torn line's length in bytes.</summary>
    public long TornBytes { get; }

    /// <summary>The lines before the torn one, all intact.</summary>
    public long IntactLines { get; }

    /// <summary>The problem, then <paramref name="howToRepair"/> (how the caller's user asks for the repair) instead of the library's own hint.</summary>
    /// <param name="howToRepair">A sentence naming the setting or option that repairs the log.</param>
    /// <returns>The message.</returns>
    public string Explain(string howToRepair) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{LogPath}: line {LineNumber} is torn ({TornBytes} bytes without a final newline; a crash mid-write?). Lines 1..{IntactLines} are intact. {howToRepair}");
}
