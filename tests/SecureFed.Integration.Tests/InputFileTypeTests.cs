using SecureFed.Agent;
using SecureFed.Cli;
using SecureFed.Experiments;
using SecureFed.Federation;
using SecureFed.Testing;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Input files read nowhere else that is guarded, given as a named pipe: each is refused before it is opened, naming the
/// path and what it is. Opening a FIFO for reading waited for a writer forever (the agent at start-up, experiment after
/// reading its corpora, the CLI commands with no message); each read has a timeout, so a regression fails, not hangs.
/// Where no named pipe can be made (Windows, no <c>mkfifo</c>) these tests are reported skipped, saying why, not passed.
/// </summary>
public sealed class InputFileTypeTests : IDisposable
{
    private static readonly TimeSpan s_prompt = TimeSpan.FromSeconds(60);

    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-input-filetype-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [SkippableFact]
    public void ModelSpecLoad_NamedPipe_RefusedNamingItWithoutOpeningIt()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "spec.json"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        Exception error = NamedPipe.ThrownPromptly(fifo, () => ModelSpec.Load(fifo));

        Assert.IsType<InvalidDataException>(error);
        Assert.StartsWith($"{fifo} is a named pipe (FIFO), not a regular file; a model specification is a JSON file", error.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public void WarmStartCacheRead_NamedPipe_RefusedNamingTheOptionAndThePath()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "warm-start-0123456789abcdef.f32"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        Exception error = NamedPipe.ThrownPromptly(fifo, () => ExperimentRunner.ReadFloats(fifo, 4));

        Assert.IsType<InvalidDataException>(error);
        Assert.StartsWith($"--warm-start-cache: {fifo} is a named pipe (FIFO), not a regular file;", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A named pipe at the cache file's <c>&lt;file&gt;.tmp</c>: the cache was written through that fixed temporary path,
    /// and opening the pipe for writing waited for a reader forever (after the warm start had trained, with no message).
    /// It is now written through a temporary file of a unique name: the pipe is neither opened nor in the way.
    /// </summary>
    [SkippableFact]
    public async Task WarmStartCacheWrite_NamedPipeAtTheTemporaryPath_WrittenWithoutOpeningIt()
    {
        string path = Path.Combine(_dir, "warm-start-0123456789abcdef.f32");
        string? fifo = NamedPipe.TryMake(path + ".tmp", out string? whyNot);
        Skip.If(fifo is null, whyNot);

        float[] values = [1.5f, -2f, 0.25f, 3f];
        Task<Exception?> write = Task.Factory.StartNew<Exception?>(() => Record.Exception(() => ExperimentRunner.WriteFloats(path, values)),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (await Task.WhenAny(write, Task.Delay(s_prompt)) != write)
        {
            // Free the writer blocked in open() by being the pipe's reader, so its thread ends with the test.
            var release = new Thread(() => { using var reader = new FileStream(fifo, FileMode.Open, FileAccess.Read); }) { IsBackground = true };
            release.Start();
            release.Join(TimeSpan.FromSeconds(5));
            Assert.Fail($"Writing {path} did not return within {s_prompt.TotalSeconds} s (it blocked opening the named pipe {fifo}).");
        }

        Assert.Null(await write);
        Assert.Equal(values, ExperimentRunner.ReadFloats(path, values.Length));
        Assert.Equal(new[] { Path.GetFileName(path), Path.GetFileName(fifo) }, Directory.GetFileSystemEntries(_dir).Select(e => Path.GetFileName(e)).Order(StringComparer.Ordinal));
    }

    [SkippableFact]
    public void OperatorCredential_VerifierOrTokenIsANamedPipe_RefusedNamingIt()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "operator-token"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        Exception verifier = NamedPipe.ThrownPromptly(fifo, () => OperatorCredential.LoadVerifier(fifo));
        Exception token = NamedPipe.ThrownPromptly(fifo, () => OperatorCredential.LoadToken(fifo));

        foreach (Exception error in (Exception[])[verifier, token])
        {
            Assert.IsType<InvalidDataException>(error);
            Assert.StartsWith($"{fifo} is a named pipe (FIFO), not a regular file;", error.Message, StringComparison.Ordinal);
        }
    }

    [SkippableFact]
    public async Task TaggerPredict_InputIsANamedPipe_UsageErrorNamingItPromptly()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "input.txt"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        string model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "model.json"), "{}");

        var (code, err) = await RunPromptly(fifo, "tagger", "predict", "--model", model, "--input", fifo);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"error: {fifo} is a named pipe (FIFO), not a regular file; give --input a regular file.", err, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task AuditCheckProof_ProofIsANamedPipe_UsageErrorNamingItPromptly()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "proof.txt"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        var (code, err) = await RunPromptly(fifo, "audit", "check-proof", fifo);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"{fifo} is a named pipe (FIFO), not a regular file; give the proof file", err, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task AuditVerify_PreviousCheckpointIsANamedPipe_UsageErrorNamingItPromptly()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "checkpoint.txt"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        string log = Directory.CreateDirectory(Path.Combine(_dir, "audit")).FullName;
        Directory.CreateDirectory(Path.Combine(log, "checkpoints")); // a log folder, as far as the argument check goes

        var (code, err) = await RunPromptly(fifo, "audit", "verify", log, "--previous", fifo);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"{fifo} is a named pipe (FIFO), not a regular file; give --previous the checkpoint file itself", err, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task AuditReport_PrivacyAuditIsANamedPipe_UsageErrorNamingItPromptly()
    {
        string? fifo = NamedPipe.TryMake(Path.Combine(_dir, "privacy-audit.json"), out string? whyNot);
        Skip.If(fifo is null, whyNot);

        string log = Directory.CreateDirectory(Path.Combine(_dir, "audit")).FullName;
        Directory.CreateDirectory(Path.Combine(log, "checkpoints")); // a log folder, as far as the argument check goes

        var (code, err) = await RunPromptly(fifo, "audit", "report", log, "--privacy-audit", fifo, "--out", Path.Combine(_dir, "report.html"));

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {err}");
        Assert.Contains($"--privacy-audit privacy audit result {fifo} is a named pipe (FIFO), not a regular file;", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TaggerTrain_DevSpellsATrainTypeWithOtherCase_UsageErrorNamingBothFilesLinesAndSpellings()
    {
        string train = Path.Combine(_dir, "train.tsv");
        string dev = Path.Combine(_dir, "dev.tsv");
        File.WriteAllText(train, "Ataxia\tB-Disease\nis\tO\n\nAspirin\tB-Chemical\n");
        File.WriteAllText(dev, "Fever\tO\nand\tO\naspirin\tB-chemical\n");
        string model = Path.Combine(_dir, "model");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["tagger", "train", "--train", train, "--dev", dev, "--out", model, "--config", "tiny", "--epochs", "1"],
            stdout, stderr, CancellationToken.None).WaitAsync(s_prompt);

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {stderr}");
        Assert.Contains($"{dev}:3: entity type \"chemical\" (B-chemical) differs only in letter case from \"Chemical\" (first at {train}:4);", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(model, "model.json")));
    }

    [Fact]
    public async Task TaggerTrain_TypeSpelledInOtherCaseThanAClinicalTypeThroughout_TrainsWithAWarningNamingBothSpellings()
    {
        // B-DISEASE in train and dev alike is one type; it was refused for differing from the clinical type Disease every
        // label set holds, though it trained before and experiment and the agent take it.
        string train = Path.Combine(_dir, "train.tsv");
        string dev = Path.Combine(_dir, "dev.tsv");
        File.WriteAllText(train, "Ataxia\tB-DISEASE\nis\tO\n\nAspirin\tB-Chemical\n");
        File.WriteAllText(dev, "Fever\tO\nand\tO\nanemia\tB-DISEASE\n");
        string model = Path.Combine(_dir, "model");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["tagger", "train", "--train", train, "--dev", dev, "--out", model, "--config", "tiny", "--epochs", "1", "--max-steps", "1"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        Assert.True(code == CliApp.ExitOk, $"exit {code}: {stderr}");
        Assert.Contains("warning: the data's entity type \"DISEASE\" differs only in letter case from the clinical type \"Disease\"", stderr.ToString(), StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(model, "model.json")));
    }

    [Fact]
    public async Task Experiment_TestSpellsATrainTypeWithOtherCase_UsageErrorNamingBothFilesLinesAndSpellings()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 30, eval: 10);
        string train = Path.Combine(corpus, "train.tsv");
        string test = Path.Combine(corpus, "test.tsv");
        // test.tsv spells the type one way throughout (each file alone is consistent); train.tsv spells it another.
        File.WriteAllText(test, File.ReadAllText(test).Replace("-Disease", "-disease", StringComparison.Ordinal));
        string[] trainLines = File.ReadAllLines(train);
        string[] testLines = File.ReadAllLines(test);
        int trainLine = Array.FindIndex(trainLines, l => l.EndsWith("-Disease", StringComparison.Ordinal)) + 1;
        int testLine = Array.FindIndex(testLines, l => l.EndsWith("-disease", StringComparison.Ordinal)) + 1;
        Assert.True(trainLine > 0 && testLine > 0, "the synthetic corpus has Disease mentions in train.tsv and test.tsv");
        string testTag = testLines[testLine - 1].Split('\t')[^1];
        string output = Path.Combine(_dir, "out");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--data", corpus, "--epsilon", "none", "--rounds", "1", "--out", output],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        Assert.True(code == CliApp.ExitUsage, $"exit {code}: {stderr}");
        Assert.Contains($"{test}:{testLine}: entity type \"disease\" ({testTag}) differs only in letter case from \"Disease\" (first at {train}:{trainLine});", stderr.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }

    /// <summary>Runs the command line; fails (after freeing the pipe's reader) when it has not returned within the timeout.</summary>
    private static async Task<(int Code, string Err)> RunPromptly(string fifo, params string[] args)
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

        return (await run, stderr.ToString());
    }
}
