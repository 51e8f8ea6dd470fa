using System.Text;

namespace SecureFed.Audit.Internal;

/// <summary>Small-file writes that survive a crash: write a temporary file, fsync, rename over the target.</summary>
internal static class DurableFile
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static void WriteAllText(string path, string text) => WriteAllBytes(path, Utf8.GetBytes(text));

    public static void WriteAllBytes(string path, byte[] data)
    {
        string temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            stream.Write(data);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>Reads a file as strict UTF-8.</summary>
    /// <exception cref="InvalidDataException">The file is not valid UTF-8.</exception>
    public static string ReadAllText(string path)
    {
        byte[] data = File.ReadAllBytes(path);
        try
        {
            return Utf8.GetString(data);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException($"{path} is not valid UTF-8.");
        }
    }
}
