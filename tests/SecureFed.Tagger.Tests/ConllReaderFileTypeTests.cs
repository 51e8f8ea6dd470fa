using SecureFed.Testing;
using Xunit.Abstractions;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// <see cref="ConllReader.ReadFile"/> reads regular files only: a named pipe given as a corpus file (or named train.tsv in
/// a corpus folder) hung tagger train, the agent and experiment forever in <c>open</c>, waiting for a writer. Each read
/// runs on a task with a timeout (<see cref="NamedPipe.ThrownPromptly"/>), so a regression fails instead of hanging.
/// </summary>
public sealed class ConllReaderFileTypeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-conll-type-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void ReadFile_NamedPipe_RefusedPromptlyNamingThePathAndWhatItIs()
    {
        string? fifo = NamedPipe.Make(Path.Combine(_dir, "train.tsv"), output);
        if (fifo is null)
        {
            return;
        }

        Exception ex = NamedPipe.ThrownPromptly(fifo, () => ConllReader.ReadFile(fifo).ToList());

        InputDataException input = Assert.IsType<InputDataException>(ex);
        Assert.StartsWith($"{fifo} is a named pipe (FIFO), not a regular file;", input.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A descriptor named explicitly (/dev/fd/N: what a shell's process substitution passes, <c>--train &lt;(zcat …)</c>)
    /// is a pipe with its writer: it is read, not refused (diff review of session 59).
    /// </summary>
    [Fact]
    public async Task ReadFile_DevFdOfAPipeWithItsWriter_Read()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var reader = new System.IO.Pipes.AnonymousPipeServerStream(System.IO.Pipes.PipeDirection.In, HandleInheritability.None);
        string path = "/dev/fd/" + reader.SafePipeHandle.DangerousGetHandle().ToInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        using (var writer = new System.IO.Pipes.AnonymousPipeClientStream(System.IO.Pipes.PipeDirection.Out, reader.ClientSafePipeHandle))
        {
            writer.Write("Familial\tB-Disease\nadenomatous\tI-Disease\n\nIt\tO\n"u8);
        }

        reader.DisposeLocalCopyOfClientHandle(); // no writer left: the read ends at the data written

        Task<int> read = Task.Factory.StartNew(() => ConllReader.ReadFile(path).Count(), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.Equal(2, await read.WaitAsync(TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public void ReadFile_LinkToANamedPipe_RefusedPromptlyNamingTheLinkAndItsTarget()
    {
        string? fifo = NamedPipe.Make(Path.Combine(_dir, "pipe"), output);
        if (fifo is null)
        {
            return;
        }

        string link = Path.Combine(_dir, "dev.tsv");
        File.CreateSymbolicLink(link, fifo);

        Exception ex = NamedPipe.ThrownPromptly(fifo, () => ConllReader.ReadFile(link).ToList());

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
}
