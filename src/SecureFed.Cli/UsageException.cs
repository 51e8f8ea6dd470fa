namespace SecureFed.Cli;

/// <summary>An invalid value supplied by the user; reported on stderr with exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
