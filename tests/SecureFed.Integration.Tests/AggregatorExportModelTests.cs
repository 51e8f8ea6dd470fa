using System.Security.Cryptography;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cli;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// <c>securefed aggregator export-model</c> (new-user review of session 45: a real federation's final model was only in
/// the aggregator's database; each agent keeps the model it trained from, one version behind).
/// </summary>
public sealed class AggregatorExportModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-export-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRun.RunAsync(args);

    /// <summary>An aggregator data directory with models v0..v2 of the tiny spec (v2 the newest) and its configuration file.</summary>
    private (string Config, float[][] Models) Aggregator()
    {
        string spec = Path.Combine(_dir, "spec.json");
        var modelSpec = new Agent.ModelSpec(TaggerConfig.Tiny, ["Disease"]);
        File.WriteAllText(spec, modelSpec.ToJson());
        string data = Path.Combine(_dir, "data");
        float[] initial = Agent.TaggerLocalTrainer.InitialParameters(modelSpec, seed: 3);
        float[][] models = [initial, [.. initial.Select(v => v + 0.25f)], [.. initial.Select(v => v * 0.5f)]];
        using (AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(data)))
        {
            byte[] first = ModelState.ToBytes(models[0]);
            store.SaveModel(0, 0, first, Convert.ToHexStringLower(SHA256.HashData(first)));
            for (int v = 1; v < models.Length; v++)
            {
                // As the aggregator stores them: each round completes with the next version.
                long round = store.BeginRound("{}");
                byte[] bytes = ModelState.ToBytes(models[v]);
                store.CompleteRoundWithModel(round, v, bytes, Convert.ToHexStringLower(SHA256.HashData(bytes)), ["site-a", "site-b"]);
            }
        }

        string config = Path.Combine(_dir, "aggregator.json");
        File.WriteAllText(config, """{ "SecureFed": { "DataDirectory": "data", "ModelSpec": "spec.json" } }""");
        return (config, models);
    }

    [Theory]
    [InlineData(null, 2)]
    [InlineData(1L, 1)]
    [InlineData(0L, 0)]
    public async Task ExportModel_WritesTheVersionAsATaggerModelFolder(long? version, int expected)
    {
        (string config, float[][] models) = Aggregator();
        string output = Path.Combine(_dir, "fused");
        string[] args = version is long v ? ["aggregator", "export-model", "--config", config, "--version", v.ToString(System.Globalization.CultureInfo.InvariantCulture), "--out", output]
            : ["aggregator", "export-model", "--config", config, "--out", output];

        var (code, stdout, err) = await Run(args);

        Assert.True(code == CliApp.ExitOk, err);
        // Version 0 is the initial model (it said "after round 0", which no round is; auditor/operator review, session 49).
        Assert.Contains(expected == 0 ? "model v0 (the initial model, before any round" : $"model v{expected} (after round {expected}", stdout, StringComparison.Ordinal);
        Assert.Contains("securefed tagger eval --model", stdout, StringComparison.Ordinal);
        using TaggerModel model = TaggerModel.Load(output, "cpu");
        Assert.Equal(models[expected], model.Flatten());
    }

    [Fact]
    public async Task ExportModel_SettingsAfterConfig_OverrideTheFileAsTheyDoForTheAggregator()
    {
        // It read only the file and the environment: '--SecureFed:DataDirectory=...', which the aggregator service itself
        // honours after --config, was refused as an unrecognised argument.
        (string config, float[][] models) = Aggregator();
        File.WriteAllText(config, """{ "SecureFed": { "DataDirectory": "nowhere", "ModelSpec": "spec.json" } }""");
        string output = Path.Combine(_dir, "fused");

        var (code, stdout, err) = await Run("aggregator", "export-model", "--config", config, "--out", output, "--SecureFed:DataDirectory=data");

        Assert.True(code == CliApp.ExitOk, err);
        Assert.Contains("model v2 (after round 2", stdout, StringComparison.Ordinal);
        using (TaggerModel model = TaggerModel.Load(output, "cpu"))
        {
            Assert.Equal(models[2], model.Flatten());
        }

        // Anything else after --config is refused as for the service, naming it.
        (code, _, err) = await Run("aggregator", "export-model", "--config", config, "--out", Path.Combine(_dir, "o"), "--datadir", "data");
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("unknown argument '--datadir'", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "o")));

        // One of its own options mistyped is named as that option, not answered "settings are given as
        // --SecureFed:Version=…" (a key nothing reads: following that exported the newest model, not version 1).
        foreach (string[] typo in new[] { new[] { "--Version", "1" }, new[] { "-version", "1" }, new[] { "--Version=1" } })
        {
            (code, _, err) = await Run(["aggregator", "export-model", "--config", config, "--out", Path.Combine(_dir, "o"), .. typo]);
            Assert.Equal(CliApp.ExitUsage, code);
            Assert.Contains($"unknown argument '{typo[0]}': did you mean --version?", err, StringComparison.Ordinal);
            Assert.DoesNotContain("--SecureFed:Version", err, StringComparison.Ordinal);
            Assert.False(Directory.Exists(Path.Combine(_dir, "o")));
        }
    }

    [Fact]
    public async Task ExportModel_UnknownVersion_UsageErrorNamingTheVersionsKept()
    {
        (string config, _) = Aggregator();

        var (code, _, err) = await Run("aggregator", "export-model", "--config", config, "--version", "7", "--out", Path.Combine(_dir, "o"));

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("keeps no model version 7; it keeps 3 version(s) from 0 to 2", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "o")));
    }

    [Fact]
    public async Task ExportModel_SpecOfAnotherShape_UsageErrorNamingBothSizes()
    {
        (string config, float[][] models) = Aggregator();
        File.WriteAllText(Path.Combine(_dir, "spec.json"), new Agent.ModelSpec(TaggerConfig.TinyCrf, ["Disease"]).ToJson());

        var (code, _, err) = await Run("aggregator", "export-model", "--config", config, "--out", Path.Combine(_dir, "o"));

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains($"model v2 has {models[2].Length:N0} parameters, but the model specification", err, StringComparison.Ordinal);
        Assert.Contains("give the aggregator's own configuration", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExportModel_StoreOpenByARunningAggregator_RefusedNothingWritten()
    {
        (string config, _) = Aggregator();
        using AggregatorStore running = AggregatorStore.Open(AggregatorState.StorePath(Path.Combine(_dir, "data")));

        var (code, _, err) = await Run("aggregator", "export-model", "--config", config, "--out", Path.Combine(_dir, "o"));

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("another process has it open", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "o")));
    }

    [Fact]
    public async Task ExportModel_NoStore_SaysTheDatabaseDoesNotExist()
    {
        string config = Path.Combine(_dir, "aggregator.json");
        File.WriteAllText(config, """{ "SecureFed": { "DataDirectory": "nowhere" } }""");

        var (code, _, err) = await Run("aggregator", "export-model", "--config", config, "--out", Path.Combine(_dir, "o"));

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("aggregator.db': the file does not exist", err, StringComparison.Ordinal);
    }
}
