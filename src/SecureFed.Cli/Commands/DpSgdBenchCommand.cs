using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench dp-sgd</c>: training tokens per second of ordinary training, DP-SGD with the batched per-example
/// clipping, and DP-SGD with one backward pass per example (the reference), on the same sentences with the same
/// (expected) batch size, one torch thread, for each model configuration.
/// </summary>
internal static class DpSgdBenchCommand
{
    public static Command Create()
    {
        var data = new Option<FileInfo?>("--data") { Description = "A CoNLL training file. Default: ../shared/data/ncbi-disease/train.tsv when it exists, else the embedded synthetic corpus." };
        var sentences = new Option<int>("--sentences") { Description = "Training sentences used (the first N).", DefaultValueFactory = _ => 1024 };
        var batch = new Option<int>("--batch") { Description = "Batch size of ordinary training = expected batch size q N of DP-SGD.", DefaultValueFactory = _ => 32 };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps measured per arm (after 2 warm-up steps); the per-example loop runs a quarter of them.", DefaultValueFactory = _ => 24 };
        var repeats = new Option<int>("--repeats") { Description = "Rounds of the ordinary and batched DP-SGD arms, interleaved (ordinary, DP-SGD, DP-SGD with dropout, then again); each figure is the median, so a burst of load on a shared machine moves one sample, not the ratio.", DefaultValueFactory = _ => 3 };
        var configs = new Option<string[]>("--config") { Description = "Model configurations (repeatable): default, tiny.", DefaultValueFactory = _ => ["default", "tiny"], AllowMultipleArgumentsPerToken = true };
        var json = new Option<bool>("--json") { Description = "End with one JSON line (ordinary_tokens_per_second and dp_tokens_per_second are the default model's; DP-SGD as the agents run it, each example's gradient without dropout, and dp_with_dropout_tokens_per_second with it)." };
        var command = new Command("dp-sgd", "Measure DP-SGD training speed against ordinary training (tokens/s, one torch thread).")
        {
            data, sentences, batch, steps, repeats, configs, json,
        };
        command.SetAction((parse, ct) =>
        {
            int n = Positive(parse.GetValue(sentences), "--sentences");
            int b = Positive(parse.GetValue(batch), "--batch");
            int s = Positive(parse.GetValue(steps), "--steps");
            int r = Positive(parse.GetValue(repeats), "--repeats");
            if (b > n)
            {
                throw new UsageException($"--batch ({b}) must not exceed --sentences ({n}).");
            }

            // Every --config is checked before the banner: a misspelt one is a usage error, not a half-started benchmark.
            TaggerConfig[] models = [.. (parse.GetValue(configs) ?? []).Select(ResolveConfig)];
            (List<Sentence> train, string source) = Load(parse.GetValue(data), n);
            bool hugePages = TorchRuntime.HugePagesSetting() == "1";
            TextWriter output = parse.InvocationConfiguration.Output;
            LabelSet labels = LabelSet.FromSentences(train);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"bench dp-sgd: {train.Count} sentences ({train.Sum(x => x.Length)} tokens) from {source}, batch {b}, {s} steps per arm, {r} interleaved repeats (medians), 1 torch thread, huge pages {(hugePages ? "on" : "off")} ({TorchRuntime.HugePagesVariable}={TorchRuntime.HugePagesSetting() ?? "unset"}), load {LoadAverage()}"));
            var results = new JsonObject();
            string[] names = parse.GetValue(configs) ?? [];
            for (int i = 0; i < names.Length; i++)
            {
                results[names[i]] = MeasureConfig(output, names[i], models[i], labels, train, b, s, r, ct);
            }

            if (parse.GetValue(json))
            {
                JsonNode? main = results["default"] ?? results.FirstOrDefault().Value;
                var summary = new JsonObject
                {
                    ["source"] = source,
                    ["sentences"] = train.Count,
                    ["batch"] = b,
                    ["repeats"] = r,
                    ["huge_pages"] = hugePages,
                    ["ordinary_tokens_per_second"] = main?["ordinary_tokens_per_second"]?.DeepClone(),
                    ["dp_tokens_per_second"] = main?["dp_tokens_per_second"]?.DeepClone(),
                    ["configs"] = results,
                };
                output.WriteLine(summary.ToJsonString(new JsonSerializerOptions { WriteIndented = false }));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static JsonObject MeasureConfig(TextWriter output, string name, TaggerConfig config, LabelSet labels, List<Sentence> train, int batch, int steps, int repeats, CancellationToken ct)
    {
        double q = batch / (double)train.Count;
        var ordinary = new TrainOptions { Epochs = 1000, BatchSize = batch, MaxSteps = steps, Patience = 0, Threads = 1, Seed = 1 };
        // The product's DP-SGD (the agents' default since DpDropout became opt-in): each example's gradient without
        // dropout. The path with dropout in each example's gradient (the agents' DpDropout) is measured beside it.
        var dp = ordinary with { DpSgd = new DpSgdOptions(1.0, 1.0, q) { NoDropout = true } };
        var dpWithDropout = ordinary with { DpSgd = new DpSgdOptions(1.0, 1.0, q) };
        var loop = dp with { DpSgd = new DpSgdOptions(1.0, 1.0, q) { PerExampleLoop = true, NoDropout = true }, MaxSteps = Math.Max(2, steps / 4) };
        var ordinaryRates = new List<double>();
        var dpRates = new List<double>();
        var dpWithDropoutRates = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            ordinaryRates.Add(Measure(config, labels, train, ordinary, ct));
            dpRates.Add(Measure(config, labels, train, dp, ct));
            dpWithDropoutRates.Add(Measure(config, labels, train, dpWithDropout, ct));
        }

        double ordinaryRate = BenchStatistics.Median(ordinaryRates);
        double dpRate = BenchStatistics.Median(dpRates);
        double dpWithDropoutRate = BenchStatistics.Median(dpWithDropoutRates);
        double loopRate = Measure(config, labels, train, loop, ct);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name,-8} ordinary {ordinaryRate,8:F0} tokens/s | DP-SGD batched {dpRate,8:F0} tokens/s ({dpRate / ordinaryRate:F2}x; with dropout {dpWithDropoutRate:F0}, {dpWithDropoutRate / ordinaryRate:F2}x) | DP-SGD per-example loop {loopRate,8:F0} tokens/s ({loopRate / ordinaryRate:F2}x)"));
        return new JsonObject
        {
            ["ordinary_tokens_per_second"] = Math.Round(ordinaryRate, 1),
            ["dp_tokens_per_second"] = Math.Round(dpRate, 1),
            ["dp_with_dropout_tokens_per_second"] = Math.Round(dpWithDropoutRate, 1),
            ["dp_per_example_loop_tokens_per_second"] = Math.Round(loopRate, 1),
            ["dp_ratio"] = Math.Round(dpRate / ordinaryRate, 3),
            ["dp_with_dropout_ratio"] = Math.Round(dpWithDropoutRate / ordinaryRate, 3),
            ["dp_per_example_loop_ratio"] = Math.Round(loopRate / ordinaryRate, 3),
            ["ordinary_samples"] = Samples(ordinaryRates),
            ["dp_samples"] = Samples(dpRates),
            ["dp_with_dropout_samples"] = Samples(dpWithDropoutRates),
        };
    }

    private static JsonArray Samples(List<double> values) => [.. values.Select(v => (JsonNode?)JsonValue.Create(Math.Round(v, 1)))];

    /// <summary>Tokens per second of training time, after two warm-up steps on a fresh model.</summary>
    private static double Measure(TaggerConfig config, LabelSet labels, List<Sentence> train, TrainOptions options, CancellationToken ct)
    {
        using (TaggerModel warm = TaggerModel.Create(config, labels, 1, "cpu"))
        {
            new TaggerTrainer().Train(warm, train, null, options with { MaxSteps = 2 }, null, ct);
        }

        using TaggerModel model = TaggerModel.Create(config, labels, 1, "cpu");
        return new TaggerTrainer().Train(model, train, null, options, null, ct).TokensPerSecond;
    }

    private static (List<Sentence> Train, string Source) Load(FileInfo? file, int count)
    {
        string? path = file is null ? null : InputPaths.RequireFile(file.FullName, "--data");
        if (path is null)
        {
            string candidate = Path.GetFullPath(Path.Combine("..", "shared", "data", "ncbi-disease", "train.tsv"));
            path = File.Exists(candidate) ? candidate : null;
        }

        if (path is null)
        {
            var synthetic = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], count, seed: 1).ToList();
            return (synthetic, "the synthetic clinical corpus");
        }

        var sentences = ConllReader.ReadFile(path).Where(x => x.Length > 0).Take(count).ToList();
        if (sentences.Count == 0)
        {
            throw new UsageException($"--data: '{path}' holds no sentences.");
        }

        return (sentences, path);
    }

    private static TaggerConfig ResolveConfig(string name) => name switch
    {
        "default" => TaggerConfig.Default,
        "tiny" => TaggerConfig.Tiny,
        _ => throw new UsageException($"--config must be default or tiny, got '{name}'."),
    };

    private static int Positive(int value, string name) =>
        value > 0 ? value : throw new UsageException($"{name} must be a positive integer, got {value}.");

    private static string LoadAverage()
    {
        try
        {
            return File.ReadAllText("/proc/loadavg").Split(' ')[0];
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
