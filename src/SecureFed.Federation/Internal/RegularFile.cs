using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace SecureFed.Federation.Internal;

/// <summary>
/// Reads a file an operator named (a manifest, a key, a certificate) only when it is a regular file, after symbolic
/// links are followed, of bounded size. <see cref="File.Exists(string?)"/> is true for a named pipe, a device or a
/// socket: opening a FIFO blocked the process forever (SIGTERM included, the thread sits in <c>open</c>), and
/// <c>/dev/zero</c> or a 1.5 GB file ended in "Out of memory". The type is read with the C library's <c>statx</c> on
/// Linux (.NET reports a pipe as an ordinary file); elsewhere only directories are told apart, and the size cap still
/// holds because at most the limit is read whatever the file claims.
/// </summary>
internal static partial class RegularFile
{
    /// <summary>The most a federation manifest may hold: 16 MiB (thousands of sites need well under 2 MiB).</summary>
    public const int ManifestLimit = 16 * 1024 * 1024;

    /// <summary>The most a key or certificate PEM file may hold: 64 KiB (a key or certificate needs a few KiB).</summary>
    public const int KeyFileLimit = 64 * 1024;

    private const int AtFdCwd = -100;
    private const uint StatxType = 0x1;
    private const int StatxSize = 256;
    private const int FileTypeMask = 0xF000;
    private const int RegularFileType = 0x8000;

    /// <summary>Reads all of <paramref name="path"/>; the caller wipes the result when it holds a secret.</summary>
    /// <param name="path">The file to read.</param>
    /// <param name="limit">The most bytes the file may hold.</param>
    /// <param name="what">What the file is, for messages (e.g. <c>Federation manifest</c>).</param>
    /// <exception cref="IOException">The file is not a regular file (the message names the path and what it is), or it cannot be read.</exception>
    /// <exception cref="InvalidDataException">The file holds more than <paramref name="limit"/> bytes; the message names the path and its size.</exception>
    public static byte[] ReadAllBytes(string path, int limit, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        EnsureRegular(path, what);

        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        long length = stream.Length;
        if (length > limit)
        {
            throw TooLarge(path, what, length.ToString("N0", CultureInfo.InvariantCulture) + " bytes", limit);
        }

        // Up to one byte more than the limit: a file that grows while read, or claims a wrong length (a file of
        // /proc reports 0), is caught too.
        byte[] buffer = new byte[(int)length + 1];
        int total = 0;
        while (true)
        {
            if (total == buffer.Length)
            {
                if (total > limit)
                {
                    break;
                }

                byte[] larger = new byte[Math.Min(limit + 1, buffer.Length * 2)];
                buffer.CopyTo(larger, 0);
                CryptographicOperations.ZeroMemory(buffer);
                buffer = larger;
            }

            int read = stream.Read(buffer, total, buffer.Length - total);
            if (read == 0)
            {
                break;
            }

            total += read;
        }

        if (total > limit)
        {
            CryptographicOperations.ZeroMemory(buffer);
            throw TooLarge(path, what, "more than " + limit.ToString("N0", CultureInfo.InvariantCulture) + " bytes", limit);
        }

        byte[] result = buffer.AsSpan(0, total).ToArray();
        CryptographicOperations.ZeroMemory(buffer);
        return result;
    }

    private static InvalidDataException TooLarge(string path, string what, string size, int limit) =>
        new($"{what} '{path}' is {size}; at most {limit.ToString("N0", CultureInfo.InvariantCulture)} bytes are read (the file is not what it should be).");

    private static void EnsureRegular(string path, string what)
    {
        if (Directory.Exists(path))
        {
            throw new NotRegularFileException($"{what} '{path}' is a directory, not a regular file.");
        }

        if (NonRegularKind(path) is { } kind)
        {
            throw new NotRegularFileException($"{what} '{path}'{LinkText(path)} is {kind}, not a regular file; give the path of the file itself.");
        }
    }

    /// <summary>
    /// What <paramref name="path"/> is when it exists and, after symbolic links are followed, is not a regular file
    /// ("a named pipe (FIFO)", "a character device", "a directory", ...); null for a regular file, a missing or unreadable
    /// path (opening it reports that in .NET's usual words), and anywhere but Linux. Ask before opening: opening a FIFO for
    /// reading waits for a writer, forever.
    /// </summary>
    internal static string? NonRegularKind(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        byte[] status = new byte[StatxSize];
        if (Statx(AtFdCwd, path, 0, StatxType, status) != 0)
        {
            return null;
        }

        // struct statx: stx_mode (u16) at 28, in the machine's byte order; the same layout on every architecture.
        int type = MemoryMarshal.Read<ushort>(status.AsSpan(28, 2)) & FileTypeMask;
        return type switch
        {
            RegularFileType => null,
            0x1000 => "a named pipe (FIFO)",
            0x2000 => "a character device",
            0x4000 => "a directory",
            0x6000 => "a block device",
            0xC000 => "a socket",
            _ => "not a file",
        };
    }

    /// <summary>" (a link to '/target')" when <paramref name="path"/> is a symbolic link, for a message; else empty.</summary>
    internal static string LinkText(string path) =>
        File.ResolveLinkTarget(path, returnFinalTarget: true) is { } link ? $" (a link to '{link.FullName}')" : string.Empty;

    /// <summary>The path is not a regular file; the message already names it, so callers pass it on unwrapped.</summary>
    internal sealed class NotRegularFileException(string message) : IOException(message);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, byte[] status);
}
