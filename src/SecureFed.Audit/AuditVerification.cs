using System.Globalization;
using System.Text;

namespace SecureFed.Audit;

/// <summary>The outcome of <see cref="AuditVerifier.Verify"/> for one log directory.</summary>
public sealed class AuditVerification
{
    /// <summary>The log directory (full path).</summary>
    public required string Directory { get; init; }

    /// <summary>Whether every line and checkpoint checked out.</summary>
    public bool Ok => Problems.Count == 0;

    /// <summary>Whether the directory holds a log file at all; when false nothing else was read (no key, no checkpoint).</summary>
    public bool LogFound { get; init; } = true;

    /// <summary>Number of complete lines in audit.jsonl (a torn tail is not counted).</summary>
    public long Lines { get; init; }

    /// <summary>Number of checkpoints whose signature, size and root all verified.</summary>
    public int Checkpoints { get; init; }

    /// <summary>Lines covered by the newest valid checkpoint.</summary>
    public long CoveredLines { get; init; }

    /// <summary>Lines after the newest checkpoint: well-formed but not yet protected by a signature.</summary>
    public long UncoveredLines => Math.Max(0, Lines - CoveredLines);

    /// <summary>The first problem, a sentence naming the line number or checkpoint file; null when <see cref="Ok"/>.</summary>
    public string? FirstProblem => Problems.Count == 0 ? null : Problems[0];

    /// <summary>All problems found, in log order.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>The actor named in the log's lines.</summary>
    public string? Actor { get; init; }

    /// <summary>The checkpoint origin.</summary>
    public string? Origin { get; init; }

    /// <summary>The verifier key the checkpoints were checked against (pin it with --key next time).</summary>
    public string? VerifierKey { get; init; }

    /// <summary>Where <see cref="VerifierKey"/> came from: "--key" or the log's verifier.key (trust on first use).</summary>
    public string? VerifierKeySource { get; init; }

    /// <summary>Lowercase hex root hash of the newest valid checkpoint.</summary>
    public string? RootHash { get; init; }

    /// <summary>A human-readable summary.</summary>
    public override string ToString()
    {
        // Everything read from the log (actor, origin, problems quoting lines) is made printable: no escape sequence reaches the terminal.
        static string P(string? text) => AuditText.Printable(text);
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{(Ok ? "OK" : "FAILED")}: {P(Directory)}\n");
        if (!LogFound)
        {
            // Nothing was read: no actor, no line count and no key to report (a "verifier key (none)" line read as if --key had been ignored).
            text.Append(CultureInfo.InvariantCulture, $"  problem: {P(FirstProblem)}\n");
            return text.ToString();
        }

        text.Append(CultureInfo.InvariantCulture, $"  actor {P(Actor ?? "?")}, origin {P(Origin ?? "?")}\n");
        text.Append(CultureInfo.InvariantCulture, $"  {Lines} line(s), {Checkpoints} valid checkpoint(s), newest covers {CoveredLines} line(s)");
        if (RootHash is not null)
        {
            text.Append(CultureInfo.InvariantCulture, $", root {RootHash}");
        }

        text.Append('\n');
        if (UncoveredLines > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"  note: {UncoveredLines} line(s) after the newest checkpoint are not yet covered by a signature\n");
        }

        text.Append(CultureInfo.InvariantCulture, $"  verifier key {P(VerifierKey ?? "(none)")} (from {VerifierKeySource ?? "nowhere"})\n");
        foreach (string problem in Problems)
        {
            text.Append(CultureInfo.InvariantCulture, $"  problem: {P(problem)}\n");
        }

        return text.ToString();
    }
}
