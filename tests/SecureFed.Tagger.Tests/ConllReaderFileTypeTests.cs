using System.ComponentModel;
using System.Diagnostics;

using Xunit.Abstractions;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// <see cref="ConllReader.ReadFile"/> reads regular files only: a named pipe given as a corpus file (or named train.tsv in
/// a corpus folder) hung tagger train, the agent and experiment forever in <c>open</c>, waiting for a writer. Each read
/// runs on a task with a timeout, so a regression fails the test instead of hanging the run; a pipe left waiting is then
/// opened for writing and closed to free the reader's thread.
/// </summary>
public sealed class ConllReaderFileTypeTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan s_prompt = TimeSpan.FromSeconds(10);

    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-conll-type-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ReadFile_NamedPipe_RefusedPromptlyNamingThePathAndWhatItIs()
    {
        string? fifo = MakeFifo("train.tsv");
        if (fifo is null)
        {
            return;
        }

        Exception ex = ReadPromptly(fifo, () => ConllReader.ReadFile(fifo).ToList());

        InputDataException input = Assert.IsType<InputDataException>(ex);
        Assert.StartsWith($"{fifo} is a named pipe (FIFO), not a regular file;", input.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFile_LinkToANamedPipe_RefusedPromptlyNamingTheLinkAndItsTarget()
    {
        string? fifo = MakeFifo("pipe");
        if (fifo is null)
        {
            return;
        }

        string link = Path.Combine(_dir, "dev.tsv");
        File.CreateSymbolicLink(link, fifo);

        Exception ex = ReadPromptly(fifo, () => ConllReader.ReadFile(link).ToList());

        InputDataException input = Assert.IsType<InputDataException>(ex);
        Assert.StartsWith($"{link} (a link to '{fifo}') is a named pipe (FIFO), not a regular file;", input.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadFile_CharacterDevice_RefusedNamingIt()
    {
        if (!OperatingSystem.IsLinux())
        {
            output.WriteLine("Skipped: the file type is read on Linux only.");
            return;
        }

        // /dev/null read as a corpus gave no sentence and no word of why; /dev/zero would be read until memory ran out.
        var ex = Assert.Throws<InputDataException>(() => ConllReader.ReadFile("/dev/null").ToList());

        Assert.StartsWith("/dev/null is a character device, not a regular file;", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Runs <paramref name="read"/> and returns what it threw; fails when it blocks past the timeout.</summary>
    private static Exception ReadPromptly(string fifo, Action read)
    {
        Task<Exception?> task = Task.Factory.StartNew<Exception?>(() => Record.Exception(read), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!task.Wait(s_prompt))
        {
            // The reader sits in open() waiting for a writer: be that writer, so the thread ends with the test.
            using (new FileStream(fifo, FileMode.Open, FileAccess.Write))
            {
            }

            Assert.Fail($"The read did not return within {s_prompt.TotalSeconds} s (it blocked opening the named pipe).");
        }

        return Assert.IsAssignableFrom<Exception>(task.Result);
    }

    /// <summary>A named pipe made with <c>mkfifo</c>; null (the test says why and passes) where there is none.</summary>
    private string? MakeFifo(string name)
    {
        string path = Path.Combine(_dir, name);
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
