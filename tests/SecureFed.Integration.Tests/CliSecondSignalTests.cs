using System.Diagnostics;
using System.Globalization;
using System.Text;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A second Ctrl-C while a command trains in libtorch ends the process at once with 130, not a crash. It ended the
/// process with <c>Environment.Exit</c>, which runs libtorch's static destructors on the signal's thread while the
/// training thread is still inside a backward pass: a segmentation fault (exit 139; crash reports showed
/// <c>torch::jit::deregisterOperator</c> on one thread and <c>at::accelerator::getAccelerator</c> in
/// <c>Engine::execute</c> on the other), in 1 of 12 double SIGINTs of a `tagger train --config default --batch-size 512`
/// on NCBI-disease here and 4 of 34 of a tiny one in a loaded review; now <c>_exit</c> (<see cref="CliApp.ExitNow"/>). A
/// stress test: each run sends both signals during a long training step, as <c>timeout -s INT</c> or two quick Ctrl-Cs do.
/// </summary>
public sealed class CliSecondSignalTests : IDisposable
{
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(3);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-second-signal-").FullName;

    [Fact]
    public async Task TaggerTrain_SecondSigintDuringATrainingStep_EndsAtOnceWith130NotACrash()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        string train = WriteCorpus(Path.Combine(_dir, "train.tsv"), sentences: 1500);
        for (int run = 1; run <= 4; run++)
        {
            using CliProcess cli = CliProcess.Start("tagger", "train", "--train", train, "--config", "default", "--batch-size", "512",
                "--epochs", "50", "--out", Path.Combine(_dir, "model-" + run.ToString(CultureInfo.InvariantCulture)));
            await cli.WaitForOutputAsync("train sentences", Hang); // printed right before the first step
            await Task.Delay(TimeSpan.FromMilliseconds(500 * run)); // into a step (each takes seconds on this model)

            int code = await cli.SignalTwiceAsync("INT", Hang);

            Assert.True(code == CliApp.ExitCancelled, $"run {run}: exit code {code} (139: a segmentation fault):\n{cli.Output}");
            Assert.Contains("securefed: stopping (SIGINT); press Ctrl-C again to exit at once", cli.Output, StringComparison.Ordinal);
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A CoNLL file of <paramref name="sentences"/> 20-token sentences with Disease mentions.</summary>
    private static string WriteCorpus(string path, int sentences)
    {
        var text = new StringBuilder();
        var random = new Random(7);
        for (int s = 0; s < sentences; s++)
        {
            for (int t = 0; t < 20; t++)
            {
                string tag = t % 7 == 3 ? "B-Disease" : t % 7 == 4 ? "I-Disease" : "O";
                text.Append("w").Append(random.Next(5000).ToString(CultureInfo.InvariantCulture)).Append('\t').Append(tag).Append('\n');
            }

            text.Append('\n');
        }

        File.WriteAllText(path, text.ToString());
        return path;
    }
}
