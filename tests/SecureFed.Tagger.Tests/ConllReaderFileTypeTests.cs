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
