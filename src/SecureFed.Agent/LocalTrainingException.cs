namespace SecureFed.Agent;

/// <summary>
/// Local training threw (e.g. a native libtorch error or an unreadable data file). The agent has withdrawn from the
/// round and stops: a site whose trainer fails cannot be trusted to produce an update until an operator looks.
/// </summary>
public sealed class LocalTrainingException : Exception
{
    /// <summary>Creates the exception.</summary>
    public LocalTrainingException(string site, long round, Exception inner)
        : base($"local training failed in round {round}: {FirstLine(inner?.Message)}", inner)
    {
        Site = site;
        Round = round;
    }

    /// <summary>The site whose training failed.</summary>
    public string Site { get; }

    /// <summary>The round in which it failed.</summary>
    public long Round { get; }

    /// <summary>The first non-empty line of <paramref name="message"/> (native errors carry pages of frames after it).</summary>
    public static string FirstLine(string? message)
    {
        if (string.IsNullOrWhiteSpace(message))
        {
            return "(no message)";
        }

        foreach (string line in message.Split('\n'))
        {
            string trimmed = line.Trim();
            if (trimmed.Length > 0)
            {
                return trimmed.Length > 300 ? trimmed[..300] + "…" : trimmed;
            }
        }

        return "(no message)";
    }
}
