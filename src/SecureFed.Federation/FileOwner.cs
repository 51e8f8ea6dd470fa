using System.Globalization;
using System.Runtime.InteropServices;

namespace SecureFed.Federation;

/// <summary>
/// Which user owns a file and which user this process runs as, on Linux (the C library's <c>statx</c> and <c>geteuid</c>;
/// .NET has no managed API for a file's owner). A command that replaces a service's file (the privacy ledger repair)
/// refuses to run as another user than the file's owner: the replacement, its backup and the audit lines it writes would
/// belong to the command's user, and the service could no longer write them.
/// </summary>
public static partial class FileOwner
{
    private const int AtFdCwd = -100;
    private const uint StatxUid = 0x8;
    private const int StatxSize = 256;

    /// <summary>Whether owners can be read here (Linux); elsewhere callers skip the check.</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>The effective user id of this process.</summary>
    /// <exception cref="PlatformNotSupportedException">Not on Linux (<see cref="IsSupported"/>).</exception>
    public static uint EffectiveUserId()
    {
        EnsureSupported();
        return GetEffectiveUserId();
    }

    /// <summary>The user id that owns <paramref name="path"/> (a symbolic link is followed).</summary>
    /// <exception cref="PlatformNotSupportedException">Not on Linux (<see cref="IsSupported"/>).</exception>
    /// <exception cref="IOException">The file's status could not be read; the message names the path and the error.</exception>
    public static uint UserIdOf(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        EnsureSupported();
        byte[] status = new byte[StatxSize];
        if (Statx(AtFdCwd, path, 0, StatxUid, status) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"The owner of '{path}' could not be read (statx: {Marshal.GetPInvokeErrorMessage(errno)}, errno {errno}).");
        }

        // struct statx: stx_mask (u32) at 0, stx_uid (u32) at 20, in the machine's byte order; the same layout on every
        // architecture.
        if ((MemoryMarshal.Read<uint>(status) & StatxUid) == 0)
        {
            throw new IOException($"The owner of '{path}' could not be read (statx returned no user id).");
        }

        return MemoryMarshal.Read<uint>(status.AsSpan(20, 4));
    }

    /// <summary>
    /// A user id as a person reads it: "name (uid N)" with the name from <c>/etc/passwd</c> when it lists the id, else
    /// "uid N" (a directory service the file does not list is not asked).
    /// </summary>
    public static string Describe(uint uid)
    {
        string id = uid.ToString(CultureInfo.InvariantCulture);
        try
        {
            foreach (string line in File.ReadLines("/etc/passwd"))
            {
                string[] fields = line.Split(':');
                if (fields.Length > 2 && fields[2] == id && fields[0].Length > 0)
                {
                    return $"'{fields[0]}' (uid {id})";
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // no name: the id alone
        }

        return $"uid {id}";
    }

    /// <summary>
    /// The first of <paramref name="paths"/> (those that exist) that another user than this process's owns, with that
    /// user; null when this process's user owns all of them, or owners cannot be read here (<see cref="IsSupported"/>).
    /// </summary>
    public static (string Path, uint Owner)? FirstOwnedByAnother(params string[] paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        if (!IsSupported)
        {
            return null;
        }

        uint self = GetEffectiveUserId();
        foreach (string path in paths.Where(p => File.Exists(p) || Directory.Exists(p)))
        {
            uint owner = UserIdOf(path);
            if (owner != self)
            {
                return (path, owner);
            }
        }

        return null;
    }

    private static void EnsureSupported()
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("File owners are read on Linux only.");
        }
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int directory, string path, int flags, uint mask, byte[] status);
}
