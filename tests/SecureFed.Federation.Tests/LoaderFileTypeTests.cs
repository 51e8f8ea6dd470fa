using System.ComponentModel;
using System.Diagnostics;

using Xunit.Abstractions;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The manifest and key loaders read regular files of bounded size only: a named pipe hung the process forever in
/// <c>open</c> (SIGTERM included) and a huge file ended in "Out of memory". Every load runs on a task with a timeout,
/// so a hang fails the test instead of the run; a pipe left waiting is then opened for writing and closed to free it.
/// </summary>
public sealed class LoaderFileTypeTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan s_prompt = TimeSpan.FromSeconds(10);

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Load_ManifestIsANamedPipe_RefusedPromptlyNamingItAndWhatItIs()
    {
        string? fifo = MakeFifo("federation.json");
        if (fifo is null)
        {
            return;
        }

        Exception ex = LoadPromptly(fifo, () => FederationManifest.Load(fifo));

        IOException io = Assert.IsAssignableFrom<IOException>(ex);
        Assert.StartsWith($"Federation manifest '{fifo}' is a named pipe (FIFO), not a regular file", io.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_IdentityKeyIsALinkToANamedPipe_RefusedPromptlyNamingTheLinkAndItsTarget()
    {
        string? fifo = MakeFifo("pipe");
        if (fifo is null)
        {
            return;
        }

        string link = _dir.Combine("identity.key");
        File.CreateSymbolicLink(link, fifo);

        Exception ex = LoadPromptly(fifo, () => IdentityKeyFile.Read(link));

        IOException io = Assert.IsAssignableFrom<IOException>(ex);
        Assert.Contains($"Identity key '{link}' (a link to '{fifo}') is a named pipe (FIFO), not a regular file", io.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ManifestOver16MiB_InvalidDataExceptionNamingTheFileAndItsSize()
    {
        string path = _dir.Combine("federation.json");
        using (FileStream sparse = File.Create(path))
        {
            sparse.SetLength((16L * 1024 * 1024) + 1);
        }

        Exception ex = LoadPromptly(null, () => FederationManifest.Load(path));

        InvalidDataException invalid = Assert.IsType<InvalidDataException>(ex);
        Assert.Contains($"Federation manifest '{path}' is 16,777,217 bytes; at most 16,777,216 bytes are read", invalid.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_IdentityKeyOf1MiB_InvalidDataExceptionNamingTheFileAndItsSize()
    {
        string path = _dir.Combine("identity.key");
        using (FileStream sparse = File.Create(path))
        {
            sparse.SetLength(1024 * 1024);
        }

        Exception ex = LoadPromptly(null, () => IdentityKeyFile.Read(path));

        InvalidDataException invalid = Assert.IsType<InvalidDataException>(ex);
        Assert.Contains($"Identity key '{path}' is 1,048,576 bytes; at most 65,536 bytes are read", invalid.Message, StringComparison.Ordinal);
    }

    /// <summary>Runs <paramref name="load"/> and returns what it threw; fails when it blocks past the timeout.</summary>
    private static Exception LoadPromptly(string? fifo, Action load)
    {
        Task<Exception?> task = Task.Factory.StartNew<Exception?>(() => Record.Exception(load), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!task.Wait(s_prompt))
        {
            if (fifo is not null)
            {
                // The reader may sit in open() waiting for a writer: be that writer, so its thread ends with the test. On a
                // background thread with a bounded wait, since a reader that was only slow (not in open()) leaves this open blocked.
                var release = new Thread(() => { using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write); }) { IsBackground = true };
                release.Start();
                release.Join(TimeSpan.FromSeconds(5));
            }

            Assert.Fail($"The load did not return within {s_prompt.TotalSeconds} s (it blocked on the file).");
        }

        return Assert.IsAssignableFrom<Exception>(task.Result);
    }

    /// <summary>A named pipe made with <c>mkfifo</c>; null (the test says why and passes) where there is none.</summary>
    private string? MakeFifo(string name)
    {
        string path = _dir.Combine(name);
        if (OperatingSystem.IsWindows())
        {
            output.WriteLine("Skipped: Windows has no named pipes in the file system.");
            return null;
        }

        try
        {
            using Process mkfifo = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!;
            mkfifo.WaitForExit();
            Assert.True(mkfifo.ExitCode == 0, $"mkfifo '{path}' exited with {mkfifo.ExitCode}.");
        }
        catch (Win32Exception ex)
        {
            output.WriteLine($"Skipped: mkfifo could not be started ({ex.Message}); a named pipe is needed for this test.");
            return null;
        }

        return path;
    }
}
