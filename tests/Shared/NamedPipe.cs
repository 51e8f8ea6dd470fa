using System.ComponentModel;
using System.Diagnostics;

using Xunit.Abstractions;

namespace SecureFed.Testing;

/// <summary>
/// Named pipes for tests of readers that must refuse one: opening a FIFO for reading waits for a writer, so each read runs
/// on a task with a timeout and a regression fails the test instead of hanging the run.
/// </summary>
internal static class NamedPipe
{
    private static readonly TimeSpan s_prompt = TimeSpan.FromSeconds(10);

    /// <summary>A named pipe at <paramref name="path"/> made with <c>mkfifo</c>; null (the test says why and passes) where there is none.</summary>
    public static string? Make(string path, ITestOutputHelper output)
    {
        string? fifo = TryMake(path, out string? whyNot);
        if (fifo is null)
        {
            output.WriteLine($"Skipped: {whyNot}");
        }

        return fifo;
    }

    /// <summary>
    /// A named pipe at <paramref name="path"/> made with <c>mkfifo</c>; null where there is none, with
    /// <paramref name="whyNot"/> saying why (for a test that reports itself skipped, e.g. <c>Skip.If(fifo is null, whyNot)</c>).
    /// </summary>
    public static string? TryMake(string path, out string? whyNot)
    {
        whyNot = null;
        if (OperatingSystem.IsWindows())
        {
            whyNot = "Windows has no named pipes in the file system; a named pipe is needed for this test.";
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
            whyNot = $"mkfifo could not be started ({ex.Message}); a named pipe is needed for this test.";
            return null;
        }

        return path;
    }

    /// <summary>Runs <paramref name="read"/> and returns what it threw; fails when it blocks past the timeout.</summary>
    public static Exception ThrownPromptly(string? fifo, Action read)
    {
        Task<Exception?> task = Task.Factory.StartNew<Exception?>(() => Record.Exception(read), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!task.Wait(s_prompt))
        {
            ReleaseReader(fifo);
            Assert.Fail($"The read did not return within {s_prompt.TotalSeconds} s (it blocked opening the named pipe).");
        }

        return Assert.IsAssignableFrom<Exception>(task.Result);
    }

    /// <summary>
    /// Frees a reader that may sit in open() of <paramref name="fifo"/> waiting for a writer, by being that writer, so its
    /// thread ends with the test. On a background thread with a bounded wait, since a reader that was only slow (not in
    /// open()) would leave this open blocked. Nothing for a null path.
    /// </summary>
    public static void ReleaseReader(string? fifo)
    {
        if (fifo is null)
        {
            return;
        }

        var release = new Thread(() => { using var writer = new FileStream(fifo, FileMode.Open, FileAccess.Write); }) { IsBackground = true };
        release.Start();
        release.Join(TimeSpan.FromSeconds(5));
    }
}
