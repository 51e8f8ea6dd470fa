namespace SecureFed.Testing;

/// <summary>Reading a line-per-record log (an audit log's <c>*.jsonl</c>) that a running host may still be appending to.</summary>
internal static class LogFiles
{
    /// <summary>
    /// The complete lines of <paramref name="path"/>: those ended by a newline. A last line without its newline is one
    /// still being written, not yet a record: it is left for the next read (parsing it as JSON failed once in CI: "Expected
    /// depth to be zero at the end of the JSON payload"). Empty lines are skipped. The file is opened to share with its writer.
    /// </summary>
    public static IEnumerable<string> CompleteLines(string path)
    {
        string text;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        using (var reader = new StreamReader(stream))
        {
            text = reader.ReadToEnd();
        }

        string[] pieces = text.Split('\n');
        return pieces.Take(pieces.Length - 1).Where(l => l.Length > 0);
    }
}
