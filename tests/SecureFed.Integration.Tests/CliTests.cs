using System.Text.Json;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>The securefed command's contract: exit codes, JSON output, clear errors.</summary>
public sealed class CliTests
{
    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Run_UnknownCommand_PrintsErrorAndExits2()
    {
        var (code, _, err) = await Run("frobnicate");

        Assert.Equal(2, code);
        Assert.Contains("frobnicate", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Run_BadOptionValue_Exits2()
    {
        var (code, _, err) = await Run("privacy", "epsilon", "--noise-multiplier", "abc", "--sample-rate", "0.1", "--steps", "10", "--delta", "1e-5");

        Assert.Equal(2, code);
        Assert.NotEmpty(err);
    }

    [Fact]
    public async Task Run_Version_PrintsVersion()
    {
        var (code, output, _) = await Run("--version");

        Assert.Equal(0, code);
        Assert.Matches(@"\d+\.\d+\.\d+", output);
    }

    [Fact]
    public async Task Run_Help_ListsTheMainCommands()
    {
        var (code, output, _) = await Run("--help");

        Assert.Equal(0, code);
        foreach (string name in new[] { "demo", "aggregator", "agent", "provision", "privacy", "tagger", "audit", "model", "bench" })
        {
            Assert.Contains(name, output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task PrivacyEpsilon_OpacusVector_ReproducesPublishedValue()
    {
        var (code, output, _) = await Run("privacy", "epsilon", "--noise-multiplier", "1.5", "--sample-rate", "0.04", "--steps", "2250", "--delta", "1e-5", "--json");

        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(7.32911, doc.RootElement.GetProperty("epsilon").GetDouble(), 4);
    }

    [Fact]
    public async Task PrivacyEpsilon_TfPrivacyClassic_ReproducesPublishedValue()
    {
        var (code, output, _) = await Run("privacy", "epsilon", "--noise-multiplier", "1.3", "--sample-rate", "0.0025", "--steps", "6000", "--delta", "1e-5", "--orders", "tfp", "--conversion", "classic", "--json");

        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal(0.94187, doc.RootElement.GetProperty("epsilon").GetDouble(), 4);
    }

    [Theory]
    [InlineData("--sample-rate", "0")]
    [InlineData("--sample-rate", "1.5")]
    [InlineData("--delta", "1")]
    [InlineData("--steps", "0")]
    [InlineData("--noise-multiplier", "-1")]
    public async Task PrivacyEpsilon_InvalidValue_Exits2NamingTheOption(string option, string value)
    {
        var args = new Dictionary<string, string> { ["--noise-multiplier"] = "1.0", ["--sample-rate"] = "0.01", ["--steps"] = "100", ["--delta"] = "1e-5" };
        args[option] = value;

        var (code, _, err) = await Run(["privacy", "epsilon", .. args.SelectMany(kv => new[] { kv.Key, kv.Value })]);

        Assert.Equal(2, code);
        Assert.Contains(option, err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BenchSecagg_SmallCohortWithDropouts_SumMatchesJson()
    {
        var (code, output, _) = await Run("bench", "secagg", "--clients", "8", "--length", "1000", "--dropout", "0.25", "--graph", "complete", "--json");

        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.True(doc.RootElement.GetProperty("sum_matches").GetBoolean());
        Assert.Equal("complete", doc.RootElement.GetProperty("graph_policy").GetString());
        Assert.True(doc.RootElement.GetProperty("bytes_per_client").GetDouble() > doc.RootElement.GetProperty("plain_bytes_per_client").GetDouble());
    }

    [Fact]
    public async Task BenchSecagg_DefaultGraph_RunsBothPoliciesAndReportsRatios()
    {
        var (code, output, _) = await Run("bench", "secagg", "--clients", "40", "--length", "64", "--dropout", "0.05", "--planned-dropout", "0.1", "--json");

        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        JsonElement complete = doc.RootElement.GetProperty("complete");
        JsonElement sparse = doc.RootElement.GetProperty("sparse");
        Assert.True(doc.RootElement.GetProperty("sum_matches").GetBoolean());
        Assert.True(complete.GetProperty("sum_matches").GetBoolean());
        Assert.True(sparse.GetProperty("sum_matches").GetBoolean());
        Assert.Equal(("complete", "complete", 39), (complete.GetProperty("graph_policy").GetString(), complete.GetProperty("graph").GetString(), complete.GetProperty("degree").GetInt32()));
        Assert.Equal(("sparse", "harary", 26, 15), (sparse.GetProperty("graph_policy").GetString(), sparse.GetProperty("graph").GetString(), sparse.GetProperty("degree").GetInt32(), sparse.GetProperty("threshold").GetInt32()));
        double ratio = doc.RootElement.GetProperty("sparse_over_complete").GetProperty("bytes_per_client").GetDouble();
        Assert.Equal(sparse.GetProperty("bytes_per_client").GetDouble() / complete.GetProperty("bytes_per_client").GetDouble(), ratio, 12);
        Assert.True(ratio < 1, $"sparse / complete bytes per client = {ratio}");
    }

    [Fact]
    public async Task BenchDpSgd_TinyModelSyntheticCorpus_JsonHasEveryArmPositive()
    {
        string data = Path.Combine(Path.GetTempPath(), $"securefed-dpbench-{Guid.NewGuid():N}.tsv");
        try
        {
            File.WriteAllLines(data, SyntheticClinicalLines(48));
            var (code, output, err) = await Run("bench", "dp-sgd", "--data", data, "--sentences", "48", "--batch", "8", "--steps", "4", "--repeats", "3", "--config", "tiny", "--json");

            Assert.True(code == 0, err);
            string last = output.TrimEnd().Split('\n')[^1];
            using var doc = JsonDocument.Parse(last);
            JsonElement tiny = doc.RootElement.GetProperty("configs").GetProperty("tiny");
            foreach (string field in new[] { "ordinary_tokens_per_second", "dp_tokens_per_second", "dp_with_dropout_tokens_per_second", "dp_per_example_loop_tokens_per_second" })
            {
                Assert.True(tiny.GetProperty(field).GetDouble() > 0, field);
            }

            // Each figure is the median of the interleaved repeats.
            foreach ((string rate, string samples) in new[] { ("ordinary_tokens_per_second", "ordinary_samples"), ("dp_tokens_per_second", "dp_samples"), ("dp_with_dropout_tokens_per_second", "dp_with_dropout_samples") })
            {
                double[] values = [.. tiny.GetProperty(samples).EnumerateArray().Select(v => v.GetDouble()).Order()];
                Assert.Equal(3, values.Length);
                Assert.Equal(values[1], tiny.GetProperty(rate).GetDouble(), 0.05);
            }

            Assert.Equal(3, doc.RootElement.GetProperty("repeats").GetInt32());

            // Without a default-model arm the headline figures are the only model's, DP-SGD as the agents run it.
            Assert.Equal(tiny.GetProperty("dp_tokens_per_second").GetDouble(), doc.RootElement.GetProperty("dp_tokens_per_second").GetDouble());
            Assert.Equal(tiny.GetProperty("dp_tokens_per_second").GetDouble() / tiny.GetProperty("ordinary_tokens_per_second").GetDouble(), tiny.GetProperty("dp_ratio").GetDouble(), 0.002); // rounded to 0.1 tokens/s and 0.001
            Assert.Equal(tiny.GetProperty("dp_with_dropout_tokens_per_second").GetDouble() / tiny.GetProperty("ordinary_tokens_per_second").GetDouble(), tiny.GetProperty("dp_with_dropout_ratio").GetDouble(), 0.002);
        }
        finally
        {
            File.Delete(data);
        }
    }

    private static IEnumerable<string> SyntheticClinicalLines(int sentences)
    {
        foreach (var sentence in SecureFed.Tagger.SyntheticClinicalCorpus.Generate(SecureFed.Tagger.SyntheticClinicalCorpus.Profiles[0], sentences, seed: 3))
        {
            for (int i = 0; i < sentence.Length; i++)
            {
                yield return sentence.Tokens[i] + "\t" + sentence.Tags[i];
            }

            yield return "";
        }
    }

    [Fact]
    public async Task BenchSecagg_UnknownGraph_Exits2NamingTheOption()
    {
        var (code, _, err) = await Run("bench", "secagg", "--clients", "8", "--length", "10", "--graph", "harary");

        Assert.Equal(2, code);
        Assert.Contains("--graph must be complete, sparse or both, got 'harary'", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelMerge_LambdaOutOfRange_Exits2()
    {
        var (code, _, err) = await Run("model", "merge", "a", "b", "--lambda", "1.5", "--out", "c");

        Assert.Equal(2, code);
        Assert.Contains("--lambda", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_ExistingNonEmptyOutput_RefusesWithoutTouchingIt()
    {
        string dir = Directory.CreateTempSubdirectory("securefed-demo-out-").FullName;
        string keep = Path.Combine(dir, "keep.txt");
        await File.WriteAllTextAsync(keep, "earlier results");
        try
        {
            var (code, _, err) = await Run("demo", "--out", dir);

            Assert.Equal(2, code);
            Assert.Contains("not empty", err, StringComparison.Ordinal);
            Assert.Equal("earlier results", await File.ReadAllTextAsync(keep));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
