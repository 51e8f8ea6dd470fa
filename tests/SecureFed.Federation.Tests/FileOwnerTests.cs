using SecureFed.Federation;

namespace SecureFed.Federation.Tests;

/// <summary>
/// <see cref="FileOwner"/>: a file's owner read with statx against the process's user and against <c>stat</c>'s own
/// answer, names from /etc/passwd, and errors that name the path. (Another owner needs root: the ledger repair's CLI test
/// gives a file to uid 65534 when it runs as root.)
/// </summary>
public sealed class FileOwnerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-owner-").FullName;

    [Fact]
    public void UserIdOf_AFileThisProcessCreated_IsItsEffectiveUserAndStatAgrees()
    {
        Assert.True(FileOwner.IsSupported == OperatingSystem.IsLinux());
        if (!FileOwner.IsSupported)
        {
            Assert.Throws<PlatformNotSupportedException>(() => FileOwner.EffectiveUserId());
            return;
        }

        string path = Path.Combine(_dir, "f");
        File.WriteAllText(path, "x");
        uint self = FileOwner.EffectiveUserId();
        Assert.Equal(self, FileOwner.UserIdOf(path));
        Assert.Equal(self, FileOwner.UserIdOf(_dir));
        Assert.Equal(Stat("%u", path), self.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Stat("%u", "/etc/passwd"), FileOwner.UserIdOf("/etc/passwd").ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Null(FileOwner.FirstOwnedByAnother(path, _dir, Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void UserIdOf_MissingFile_IOExceptionNamingThePathAndTheError()
    {
        if (!FileOwner.IsSupported)
        {
            return;
        }

        string missing = Path.Combine(_dir, "missing");
        IOException ex = Assert.Throws<IOException>(() => FileOwner.UserIdOf(missing));
        Assert.Contains($"The owner of '{missing}' could not be read (statx: ", ex.Message, StringComparison.Ordinal);
        Assert.Contains("errno 2", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Describe_NamesListedUsersAndGivesTheIdOfOthers()
    {
        string? rootLine = File.Exists("/etc/passwd") ? File.ReadLines("/etc/passwd").FirstOrDefault(l => l.Split(':') is [_, _, "0", ..]) : null;
        Assert.Equal(rootLine is null ? "uid 0" : $"'{rootLine.Split(':')[0]}' (uid 0)", FileOwner.Describe(0));
        Assert.Equal("uid 4000000123", FileOwner.Describe(4_000_000_123));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Stat(string format, string path)
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-L", "-c", format, path]) { RedirectStandardOutput = true })!;
        string output = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return output;
    }
}
