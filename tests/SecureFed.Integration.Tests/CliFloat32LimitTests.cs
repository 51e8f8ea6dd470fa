using Microsoft.Extensions.Configuration;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Learning rates and clips past a 32-bit float (the model trains in float32, and libtorch refuses to convert a larger
/// scalar): <c>experiment --dp-lr 1e308</c> (or <c>--grad-clip</c>, or <c>--lr</c> with sgd) crashed the process with an
/// unhandled <c>ExternalException</c> and its stack trace (exit 134), as did a <c>--server-lr</c> whose averaged update
/// left the float range (an unhandled <c>RoundAbortedException</c>); the demo and the agents took such values and every
/// site then failed its training with "value cannot be converted to type float without overflow", naming no option.
/// </summary>
public sealed class CliFloat32LimitTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-f32-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRun.RunAsync(args);

    [Theory]
    [InlineData("experiment --seeds 1", "--dp-lr")]
    [InlineData("experiment --seeds 1", "--grad-clip")]
    [InlineData("experiment --seeds 1 --optimizer sgd", "--lr")]
    [InlineData("privacy audit", "--dp-lr")]
    public async Task ExperimentAndPrivacyAudit_ValueBeyondFloat32_UsageErrorNamingTheOption_NotACrash(string command, string option)
    {
        string output = Path.Combine(_dir, "out");
        string[] args = [.. command.Split(' '), "--data", Corpus("c"), "--epsilon", "8", "--rounds", "1", option, "1e308", "--out", output];

        var (code, _, err) = await Run(args);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains($"{option} must be a positive number of at most 3.4E+38", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "a refused run leaves no output folder behind");
    }

    [Fact]
    public async Task Experiment_ServerLearningRateThatTakesTheModelPastFloat32_ErrorNamingTheOption_NotACrash()
    {
        string output = Path.Combine(_dir, "out-server-lr");

        var (code, _, err) = await Run("experiment", "--data", Corpus("s"), "--epsilon", "none", "--federated-only", "--seeds", "1",
            "--rounds", "1", "--server-lr", "1e308", "--out", output);

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("round 1 aborted at Unmasking: the averaged update is not finite", err, StringComparison.Ordinal);
        Assert.Contains("--server-lr 1E+308", err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--lr")]
    [InlineData("--grad-clip")]
    public async Task Demo_ValueBeyondFloat32_UsageErrorBeforeAnyFolderIsMade(string option)
    {
        string output = Path.Combine(_dir, "demo" + option);

        var (code, _, err) = await Run("demo", "--corpus", "synthetic", "--sentences", "20", "--model", "tiny", "--rounds", "1",
            "--no-comparison", option, "1e308", "--out", output);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains($"{option} must be a positive number of at most 3.4E+38", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output), "a refused demo leaves no output folder behind");
    }

    [Fact]
    public void AgentLearningRate_BeyondFloat32_RefusedAtStartUpNamingTheSetting()
    {
        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SecureFed:Site"] = "site-a",
            ["SecureFed:Aggregator"] = "https://127.0.0.1:1",
            ["SecureFed:LearningRate"] = "1e308",
        }).Build().GetSection(AgentOptions.Section).Bind(options);

        string error = Assert.Single(options.Validate());

        Assert.StartsWith("SecureFed:LearningRate must be a positive number of at most 3.4E+38", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AggregatorGradientClip_BeyondFloat32_RefusedAtStartUpNamingTheSetting()
    {
        var options = new AggregatorOptions { Federation = "f", DpSgdMaxGradNorm = 1e308 };

        Assert.Contains(options.Validate(), e => e.StartsWith("SecureFed:DpSgdMaxGradNorm must be a positive number of at most 3.4E+38", StringComparison.Ordinal));
        Assert.DoesNotContain(new AggregatorOptions { Federation = "f", DpSgdMaxGradNorm = 1e30 }.Validate(), e => e.Contains("DpSgdMaxGradNorm", StringComparison.Ordinal));
    }

    /// <summary>A small CoNLL corpus folder (train, dev, test) with one entity type.</summary>
    private string Corpus(string name)
    {
        string directory = Path.Combine(_dir, name);
        Directory.CreateDirectory(directory);
        foreach (string file in new[] { "train.tsv", "dev.tsv", "test.tsv" })
        {
            using var writer = new StreamWriter(Path.Combine(directory, file));
            for (int i = 0; i < 30; i++)
            {
                writer.WriteLine("The\tO");
                writer.WriteLine("patient\tO");
                writer.WriteLine("has\tO");
                writer.WriteLine("diabetes\tB-Disease");
                writer.WriteLine();
            }
        }

        return directory;
    }
}
