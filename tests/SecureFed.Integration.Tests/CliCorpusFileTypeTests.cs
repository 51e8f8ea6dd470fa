using SecureFed.Cli;
using SecureFed.Testing;
using Xunit.Abstractions;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A corpus file that is a named pipe (given as <c>--train</c>, or named train.tsv in an <c>--data</c> folder) is refused
/// at once as a usage error naming it and what it is: the commands hung forever in <c>open</c>, waiting for a writer. Each
/// run has a timeout, so a regression fails instead of hanging; a pipe left waiting is then opened for writing to free it.
/// </summary>
public sealed class CliCorpusFileTypeTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan s_prompt = TimeSpan.FromSeconds(60);

    private const string Sentences = "Ataxia\tB-Disease\nis\tO\nrare\tO\n\nFever\tO\nis\tO\ncommon\tO\n\n";

    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-filetype-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Experiment_CorpusFolderWhoseTrainTsvIsANamedPipe_UsageErrorNamingItPromptly()
    {
        string corpus = Path.Combine(_dir, "corpus");
        Directory.CreateDirectory(corpus);
        File.WriteAllText(Path.Combine(corpus, "dev.tsv"), Sentences);
        File.WriteAllText(Path.Combine(corpus, "test.tsv"), Sentences);
        string? fifo = NamedPipe.Make(Path.Combine(corpus, "train.tsv"), output);
        if (fifo is null)
        {
            return;
        }

        var (code, _, err) = await RunPromptly(fifo, "experiment", "--data", corpus, "--config", "tiny", "--rounds", "1", "--epsilon", "none", "--out", Path.Combine(_dir, "out"));

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"error: {fifo} is a named pipe (FIFO), not a regular file;", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TaggerTrain_TrainFileIsANamedPipe_UsageErrorNamingItPromptly()
    {
        string? fifo = NamedPipe.Make(Path.Combine(_dir, "train.tsv"), output);
        if (fifo is null)
        {
            return;
        }

        string model = Path.Combine(_dir, "model");

        var (code, _, err) = await RunPromptly(fifo, "tagger", "train", "--train", fifo, "--out", model, "--config", "tiny", "--epochs", "1");

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"error: {fifo} is a named pipe (FIFO), not a regular file;", err, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(model, "model.json")));
    }

    /// <summary>Runs the command line; fails (after freeing the pipe's reader) when it has not returned within the timeout.</summary>
    private static async Task<(int Code, string Out, string Err)> RunPromptly(string fifo, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Task<int> run = Task.Factory.StartNew(() => CliApp.RunAsync(args, stdout, stderr, CancellationToken.None), CancellationToken.None,
            TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        if (await Task.WhenAny(run, Task.Delay(s_prompt)) != run)
        {
            NamedPipe.ReleaseReader(fifo);

            Assert.Fail($"The command did not return within {s_prompt.TotalSeconds} s (it blocked opening the named pipe {fifo}).");
        }

        return (await run, stdout.ToString(), stderr.ToString());
    }
}
