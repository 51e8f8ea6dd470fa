namespace SecureFed.Federation;

/// <summary>
/// A private key file accepted although its group or other users may read it, with the <c>AcceptReadableKeys</c> opt-out
/// (a Kubernetes Secret volume's default mode 0644, a Docker secret's 0444): what the warning logged each time it is loaded names.
/// </summary>
/// <param name="What">What the key is, e.g. <c>TLS private key</c> or <c>Identity key</c>.</param>
/// <param name="Path">The key file (a link is followed for its mode and owner).</param>
/// <param name="Mode">Its mode in octal, e.g. <c>0644</c>.</param>
/// <param name="Owner">Its owner as a person reads it, e.g. <c>'root' (uid 0)</c>.</param>
public sealed record ReadableKeyFile(string What, string Path, string Mode, string Owner)
{
    /// <summary>
    /// The opt-out that accepted the key as its user turns it on: the setting <c>SecureFed:AcceptReadableKeys</c> (the
    /// default; the services), or a command's flag such as <c>--accept-readable-keys</c>.
    /// </summary>
    public string OptOut { get; init; } = "SecureFed:AcceptReadableKeys";

    /// <summary>The warning for a command's output (the services log the same words with <c>[LoggerMessage]</c>), naming <see cref="OptOut"/>.</summary>
    /// <param name="party">Whose key it is (the kit's party name).</param>
    public string Warning(string party) => OptOut.StartsWith("--", StringComparison.Ordinal)
        ? $"{What} '{Path}' has mode {Mode} and belongs to {Owner}: other users than its owner may read this private key, and it is used only because " +
            $"{OptOut} was given. Whoever can read it can act as {party}; give it mode 0400 where the platform allows (a Kubernetes Secret's defaultMode) and leave out {OptOut}"
        : $"{What} '{Path}' has mode {Mode} and belongs to {Owner}: other users than its owner may read this private key, and it is used only because " +
            $"{OptOut} is true. Whoever can read it can act as {party}; give it mode 0400 where the platform allows (a Kubernetes Secret's defaultMode) and turn the setting off";
}
