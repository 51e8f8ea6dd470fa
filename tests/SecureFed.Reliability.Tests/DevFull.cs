using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A real "No space left on device" (ENOSPC) without root: Linux's <c>/dev/full</c> fails every write with ENOSPC.
/// <see cref="Redirect(int)"/> points an open file descriptor of the code under test at it (<c>dup2</c>), so the
/// product's own write on its own handle gets the kernel's ENOSPC while the real file keeps its earlier content.
/// </summary>
internal static partial class DevFull
{
    public const string DevicePath = "/dev/full";

    /// <summary>True on Linux with <c>/dev/full</c>; tests skip (return early) otherwise.</summary>
    public static bool Available => OperatingSystem.IsLinux() && File.Exists(DevicePath);

    /// <summary>Makes every later write through <paramref name="handle"/> fail with ENOSPC.</summary>
    public static void Redirect(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        Redirect((int)handle.DangerousGetHandle());
    }

    /// <summary>Makes every later write through descriptor <paramref name="fd"/> fail with ENOSPC.</summary>
    public static void Redirect(int fd)
    {
        const int O_WRONLY = 1;
        int full = Open(DevicePath, O_WRONLY);
        if (full < 0)
        {
            throw new IOException($"open({DevicePath}) failed: errno {Marshal.GetLastPInvokeError()}");
        }

        try
        {
            if (Dup2(full, fd) < 0)
            {
                throw new IOException($"dup2 onto descriptor {fd} failed: errno {Marshal.GetLastPInvokeError()}");
            }
        }
        finally
        {
            _ = Close(full);
        }
    }

    /// <summary>The descriptor of this process that has <paramref name="path"/> open (from /proc/self/fd).</summary>
    public static int DescriptorOf(string path)
    {
        string full = Path.GetFullPath(path);
        foreach (string link in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(link).LinkTarget == full)
                {
                    return int.Parse(Path.GetFileName(link), System.Globalization.CultureInfo.InvariantCulture);
                }
            }
            catch (IOException)
            {
                // the descriptor closed while we looked
            }
        }

        throw new InvalidOperationException($"no open descriptor for {full}");
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2(int oldFd, int newFd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
