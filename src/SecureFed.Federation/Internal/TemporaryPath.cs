namespace SecureFed.Federation.Internal;

/// <summary>
/// Error messages of a write that goes through a temporary name (a hidden file or staging folder next to the target,
/// renamed into place at the end): the user gave the target and never sees the temporary name, so a message names the
/// target instead.
/// </summary>
internal static class TemporaryPath
{
    /// <summary>
    /// <paramref name="exception"/>'s message with every mention of <paramref name="temporaryPath"/> replaced by
    /// <paramref name="targetPath"/>.
    /// </summary>
    /// <param name="exception">The failure while creating or writing the temporary file or folder.</param>
    /// <param name="temporaryPath">The temporary name (full path).</param>
    /// <param name="targetPath">The path the user gave (full path).</param>
    public static string Reason(Exception exception, string temporaryPath, string targetPath)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception.Message.Replace(temporaryPath, targetPath, StringComparison.Ordinal);
    }
}
