using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureFed.Tagger;
using Spectre.Console;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed tagger train|eval|predict</c>: the clinical token tagger on CoNLL files.</summary>
internal static class TaggerCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var command = new Command("tagger", "Train, evaluate and run the clinical token tagger (TorchSharp) on CoNLL/IOB2 files.");
        command.Subcommands.Add(CreateTrain());
        command.Subcommands.Add(CreateEval());
        command.Subcommands.Add(CreatePredict());
        return command;
    }

    private static Option<string> DeviceOption() => new("--device")
    {
        Description = "Torch device: auto (CUDA when available), cpu or cuda.",
        DefaultValueFactory = _ => "auto",
    };

    private static Option<int> ThreadsOption() => new("--threads")
    {
        Description = "Torch threads (0 = auto: half the cores, at least 1).",
        DefaultValueFactory = _ => 0,
    };

    private static int ApplyThreads(ParseResult parse, Option<int> threads)
    {
        int n = parse.GetValue(threads);
        return TorchRuntime.ThreadsProblem(n) is { } problem ? throw new UsageException(problem) : TorchRuntime.SetThreads(n);
    }

    private static Command CreateTrain()
    {
        var train = new Option<FileInfo>("--train") { Description = "Training file (TOKEN<TAB>TAG, blank line between sentences).", Required = true };
        var dev = new Option<FileInfo?>("--dev") { Description = "Dev file for early stopping on entity F1 (recommended)." };
        var output = new Option<DirectoryInfo>("--out") { Description = "Directory to write the model to (must not exist or be empty: a saved model is never overwritten).", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "Maximum epochs.", DefaultValueFactory = _ => 30 };
        var device = DeviceOption();
        var config = new Option<string>("--config") { Description = "Model size: default, tiny, tiny-crf, tiny-encoder, tiny-crf-encoder, tiny-crf-encoder-mean, or a JSON file of tagger settings as TaggerConfig.ToJson writes it (settings left out keep their defaults; an unknown property, or another kind of file such as a model spec, is refused).", DefaultValueFactory = _ => "default" };
        var seed = new Option<int>("--seed") { Description = "Seed for initialisation and batch order.", DefaultValueFactory = _ => 1 };
        var batchSize = new Option<int>("--batch-size") { Description = "Sentences per batch.", DefaultValueFactory = _ => 32 };
        var lr = new Option<double>("--lr") { Description = "Adam learning rate.", DefaultValueFactory = _ => 0.003 };
        var lrDecay = new Option<double>("--lr-decay") { Description = "Per-epoch learning-rate decay: epoch e uses lr / (1 + decay * (e - 1)); 0 = constant.", DefaultValueFactory = _ => 0.05 };
        var average = new Option<double>("--weight-average") { Description = "Decay of an exponential moving average of the weights (scored on dev and saved); 0 = off.", DefaultValueFactory = _ => 0.995 };
        var patience = new Option<int>("--patience") { Description = "Early stop after this many epochs without dev-F1 gain (0 = off).", DefaultValueFactory = _ => 5 };
        var maxSteps = new Option<int?>("--max-steps") { Description = "Optional cap on optimiser steps." };
        var threads = ThreadsOption();

        var command = new Command("train", "Train a tagger on a CoNLL file (early-stopped on --dev) and save it to --out.");
        foreach (Option o in new Option[] { train, dev, output, epochs, device, config, seed, batchSize, lr, lrDecay, average, patience, maxSteps, threads })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            TextWriter stdout = parse.InvocationConfiguration.Output;
            FileInfo trainFile = RequireFile(parse.GetValue(train)!, "--train");
            FileInfo? devFile = parse.GetValue(dev) is FileInfo d ? RequireFile(d, "--dev") : null;
            DirectoryInfo outDir = parse.GetValue(output)!;
            OutputPaths.RequireNewFolder(outDir.FullName, "--out", "saved models");
            OutputPaths.RequireWritableFolder(outDir.FullName, "--out"); // now, not after every epoch has trained

            string deviceName = ValidateDevice(parse.GetValue(device)!);
            TaggerConfig taggerConfig = ResolveConfig(parse.GetValue(config)!);
            var options = new TrainOptions
            {
                Epochs = Positive(parse.GetValue(epochs), "--epochs"),
                BatchSize = Positive(parse.GetValue(batchSize), "--batch-size"),
                LearningRate = parse.GetValue(lr) is double rate && rate > 0 && rate < 10 ? rate : throw new UsageException("--lr must be in (0, 10)"),
                LearningRateDecay = parse.GetValue(lrDecay) is double decay && decay >= 0 && decay < 100 ? decay : throw new UsageException("--lr-decay must be in [0, 100)"),
                WeightAverageDecay = parse.GetValue(average) is double avg && avg >= 0 && avg < 1 ? avg : throw new UsageException("--weight-average must be in [0, 1)"),
                Seed = parse.GetValue(seed),
                Patience = parse.GetValue(patience) >= 0 ? parse.GetValue(patience) : throw new UsageException("--patience must be >= 0"),
                MaxSteps = parse.GetValue(maxSteps) is int m ? Positive(m, "--max-steps") : null,
                Threads = ApplyThreads(parse, threads),
            };

            // One spelling per entity type across train and dev: B-disease next to B-Disease made two types, silently.
            // The clinical types the label set adds are not in it: data spelled B-DISEASE throughout trains (as experiment
            // and the agent take it), with a warning below.
            var spellings = new EntityTypeSpellings();
            var trainSet = ConllReader.ReadFile(trainFile.FullName, spellings).ToList();
            if (trainSet.Count == 0)
            {
                throw new UsageException($"--train {trainFile.FullName} has no sentence to train on.");
            }

            var devSet = devFile is null ? null : ConllReader.ReadFile(devFile.FullName, spellings).ToList();
            if (devSet is { Count: 0 })
            {
                throw new UsageException($"--dev {devFile!.FullName} has no sentence; leave --dev out to train without one.");
            }

            LabelSet labels = LabelSet.FromSentences(devSet is null ? trainSet : trainSet.Concat(devSet));
            foreach (string type in labels.EntityTypes.Where(t => !LabelSet.ClinicalTypes.Contains(t, StringComparer.Ordinal)))
            {
                if (LabelSet.ClinicalTypes.FirstOrDefault(c => string.Equals(c, type, StringComparison.OrdinalIgnoreCase)) is string clinical)
                {
                    (parse.InvocationConfiguration.Error ?? Console.Error).WriteLine(
                        $"warning: the data's entity type \"{type}\" differs only in letter case from the clinical type \"{clinical}\" every tagger's label set holds; the model gets both types and \"{clinical}\" stays unused (spell it \"{clinical}\" to use the one label).");
                }
            }

            using TaggerModel model = TaggerModel.Create(taggerConfig, labels, options.Seed, deviceName);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"tagger: {trainSet.Count} train sentences ({trainSet.Sum(s => s.Length)} tokens), {devSet?.Count ?? 0} dev; " +
                $"{model.ParameterCount:N0} parameters on {model.DeviceName}; labels {string.Join(' ', labels.Labels)}"));

            TrainResult result = RunTraining(stdout, model, trainSet, devSet, options, ct);
            model.Save(outDir.FullName);
            var summary = new JsonObject
            {
                ["train"] = trainFile.FullName,
                ["dev"] = devFile?.FullName,
                ["epochs"] = result.Epochs,
                ["best_epoch"] = result.BestEpoch,
                ["steps"] = result.Steps,
                ["final_loss"] = result.FinalLoss,
                ["best_dev_f1"] = result.BestDevF1,
                ["skipped_steps"] = result.SkippedSteps,
                ["diverged"] = result.Diverged,
                ["train_tokens_per_second"] = result.TokensPerSecond,
                ["elapsed_seconds"] = result.Elapsed.TotalSeconds,
                ["device"] = model.DeviceName,
                ["parameters"] = model.ParameterCount,
            };
            File.WriteAllText(Path.Combine(outDir.FullName, "training.json"), summary.ToJsonString(Indented));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"trained {result.Epochs} epochs ({result.Steps} steps) in {result.Elapsed.TotalSeconds:F0} s; best dev F1 " +
                $"{(result.BestDevF1 is double f ? f.ToString("F4", CultureInfo.InvariantCulture) : "n/a")} (epoch {result.BestEpoch}); " +
                $"{result.TokensPerSecond:F0} train tokens/s; model saved to {outDir.FullName}"));
            if (result.SkippedSteps > 0)
            {
                string stopped = result.Diverged
                    ? string.Create(CultureInfo.InvariantCulture, $"; training stopped in epoch {result.Epochs} when the weights were no longer numbers, and the saved model is epoch {result.BestEpoch}'s")
                    : "";
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"warning: {result.SkippedSteps} steps were skipped because the loss or its gradient was not a finite number{stopped} (a smaller --lr may help)"));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static TrainResult RunTraining(TextWriter stdout, TaggerModel model, List<Sentence> train, List<Sentence>? dev, TrainOptions options, CancellationToken ct)
    {
        var trainer = new TaggerTrainer();
        bool interactive = ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected;
        if (!interactive)
        {
            var lines = new SyncProgress(p =>
            {
                if (p.EpochCompleted || p.Step % 100 == 0)
                {
                    stdout.WriteLine(FormatProgress(p));
                    stdout.Flush();
                }
            });
            return trainer.Train(model, train, dev, options, lines, ct);
        }

        TrainResult? result = null;
        AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                ProgressTask task = ctx.AddTask("training", maxValue: options.Epochs);
                var sink = new SyncProgress(p =>
                {
                    task.Value = p.Epoch - 1 + p.EpochFraction;
                    task.Description = Markup.Escape(FormatProgress(p));
                    if (p.EpochCompleted)
                    {
                        AnsiConsole.MarkupLine(Markup.Escape(FormatProgress(p)));
                    }
                });
                result = trainer.Train(model, train, dev, options, sink, ct);
                task.Value = task.MaxValue;
            });
        return result!;
    }

    private static string FormatProgress(TrainProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"epoch {p.Epoch}/{p.Epochs} step {p.Step} loss {p.Loss:F4} dev F1 {(p.DevF1 is double f ? f.ToString("F4", CultureInfo.InvariantCulture) : "-")} " +
        $"best {(p.BestDevF1 is double b ? b.ToString("F4", CultureInfo.InvariantCulture) : "-")} {p.TokensPerSecond:F0} tok/s");

    private static Command CreateEval()
    {
        var modelDir = new Option<DirectoryInfo>("--model") { Description = "Model directory written by 'tagger train'.", Required = true };
        var test = new Option<FileInfo>("--test") { Description = "Gold CoNLL file.", Required = true };
        var conllOut = new Option<FileInfo?>("--conll-out") { Description = "Write 'token gold predicted' lines here (conlleval input): a new file, never an existing one (a corpus, an earlier output: delete it or choose another name)." };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table." };
        var device = DeviceOption();
        var threads = ThreadsOption();
        var command = new Command("eval", "Entity-level exact-match precision/recall/F1 (conlleval semantics) of a model on a CoNLL file.");
        foreach (Option o in new Option[] { modelDir, test, conllOut, json, device, threads })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) =>
        {
            TextWriter stdout = parse.InvocationConfiguration.Output;
            DirectoryInfo dir = RequireModel(parse.GetValue(modelDir)!);
            FileInfo testFile = RequireFile(parse.GetValue(test)!, "--test");
            if (parse.GetValue(conllOut) is FileInfo target)
            {
                if (OutputPaths.SamePath(target.FullName, testFile.FullName))
                {
                    throw new UsageException($"--conll-out {target.FullName} is the --test file; writing predictions there would replace the gold labels.");
                }

                if (OutputPaths.IsInside(target.FullName, dir.FullName))
                {
                    throw new UsageException($"--conll-out {target.FullName} is inside the --model folder {dir.FullName}; writing predictions there could replace the model's files (give a path outside it).");
                }

                // Its lines carry no mark of their own (conlleval reads them as they are), so an earlier output cannot be told from a corpus.
                OutputPaths.RequireNewFile(target.FullName, "--conll-out");
                OutputPaths.RequireWritableFileFolder(target.FullName, "--conll-out");
            }

            string deviceName = ValidateDevice(parse.GetValue(device)!);
            ApplyThreads(parse, threads);
            var gold = ConllReader.ReadFile(testFile.FullName).ToList();
            if (gold.Count == 0)
            {
                // As 'tagger train' refuses an empty --train: F1 0 of no sentence would read as a model that finds nothing.
                throw new UsageException($"--test {testFile.FullName} has no sentence to evaluate the model on.");
            }

            using TaggerModel model = TaggerModel.Load(dir.FullName, deviceName);
            ct.ThrowIfCancellationRequested();
            var watch = System.Diagnostics.Stopwatch.StartNew();
            IReadOnlyList<IReadOnlyList<string>> predicted = model.Predict([.. gold.Select(s => s.Tokens)]);
            double seconds = watch.Elapsed.TotalSeconds;
            EvaluationResult result = TaggerEvaluator.Score(gold, predicted);
            double tokensPerSecond = seconds > 0 ? result.Tokens / seconds : 0;
            if (parse.GetValue(conllOut) is FileInfo conll)
            {
                OutputPaths.Writing("--conll-out", () => { ConllWriter.WriteFile(conll.FullName, gold, predicted); return conll.FullName; });
            }

            if (parse.GetValue(json))
            {
                var perType = new JsonObject();
                foreach (var (type, score) in result.PerType)
                {
                    perType[type] = ScoreJson(score);
                }

                JsonObject obj = ScoreJson(result.Overall);
                obj["sentences"] = result.Sentences;
                obj["tokens"] = result.Tokens;
                obj["token_accuracy"] = result.TokenAccuracy;
                obj["tokens_per_second"] = tokensPerSecond;
                obj["per_type"] = perType;
                obj["model"] = dir.FullName;
                obj["test"] = testFile.FullName;
                obj["device"] = model.DeviceName;
                stdout.WriteLine(obj.ToJsonString());
            }
            else
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{"type",-12} {"precision",9} {"recall",9} {"f1",9} {"gold",7} {"pred",7} {"tp",7}"));
                foreach (var (type, score) in result.PerType)
                {
                    stdout.WriteLine(Row(type, score));
                }

                stdout.WriteLine(Row("overall", result.Overall));
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{result.Sentences} sentences, {result.Tokens} tokens, token accuracy {result.TokenAccuracy:F4}, {tokensPerSecond:F0} tokens/s on {model.DeviceName}"));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command CreatePredict()
    {
        var modelDir = new Option<DirectoryInfo>("--model") { Description = "Model directory written by 'tagger train'.", Required = true };
        var input = new Option<FileInfo?>("--input") { Description = "Text file, one sentence per line (default: stdin)." };
        var device = DeviceOption();
        var threads = ThreadsOption();
        var command = new Command("predict", "Tag raw text (one sentence per line; stdin or --input); prints TOKEN<TAB>TAG lines, blank line between sentences.");
        foreach (Option o in new Option[] { modelDir, input, device, threads })
        {
            command.Options.Add(o);
        }

        command.SetAction(async (parse, ct) =>
        {
            TextWriter stdout = parse.InvocationConfiguration.Output;
            DirectoryInfo dir = RequireModel(parse.GetValue(modelDir)!);
            FileInfo? inputFile = parse.GetValue(input) is FileInfo f ? RequireFile(f, "--input") : null;
            string deviceName = ValidateDevice(parse.GetValue(device)!);
            ApplyThreads(parse, threads);
            string text = await ReadInputAsync(inputFile, ct).ConfigureAwait(false);
            var sentences = text.Split('\n')
                .Select(line => TextTokenizer.Tokenize(line))
                .Where(tokens => tokens.Count > 0)
                .ToList();
            using TaggerModel model = TaggerModel.Load(dir.FullName, deviceName);
            IReadOnlyList<IReadOnlyList<string>> tags = model.Predict(sentences);
            for (int s = 0; s < sentences.Count; s++)
            {
                for (int i = 0; i < sentences[s].Count; i++)
                {
                    await stdout.WriteLineAsync($"{sentences[s][i]}\t{tags[s][i]}").ConfigureAwait(false);
                }

                await stdout.WriteLineAsync().ConfigureAwait(false);
            }

            return CliApp.ExitOk;
        });
        return command;
    }

    /// <summary>
    /// The text to tag: <paramref name="inputFile"/>, or stdin; refused as train and eval refuse their files when it is not
    /// UTF-8 (a binary file would otherwise be tagged as U+FFFD tokens). A terminal's typed input is read as the console's text.
    /// </summary>
    private static async Task<string> ReadInputAsync(FileInfo? inputFile, CancellationToken ct)
    {
        if (inputFile is not null)
        {
            await using FileStream file = File.OpenRead(inputFile.FullName);
            return await ConllReader.ReadTextAsync(file, inputFile.FullName, ct).ConfigureAwait(false);
        }

        if (!Console.IsInputRedirected)
        {
            return await Console.In.ReadToEndAsync(ct).ConfigureAwait(false);
        }

        await using Stream stdin = Console.OpenStandardInput();
        return await ConllReader.ReadTextAsync(stdin, "stdin", ct).ConfigureAwait(false);
    }

    private static JsonObject ScoreJson(EntityScore score) => new()
    {
        ["precision"] = score.Precision,
        ["recall"] = score.Recall,
        ["f1"] = score.F1,
        ["gold"] = score.Gold,
        ["predicted"] = score.Predicted,
        ["true_positives"] = score.TruePositives,
    };

    private static string Row(string name, EntityScore s) => string.Create(CultureInfo.InvariantCulture,
        $"{name,-12} {s.Precision,9:F4} {s.Recall,9:F4} {s.F1,9:F4} {s.Gold,7} {s.Predicted,7} {s.TruePositives,7}");

    private static FileInfo RequireFile(FileInfo file, string option) => new(InputPaths.RequireFile(file.FullName, option));

    private static DirectoryInfo RequireModel(DirectoryInfo dir) =>
        Path.Exists(Path.Combine(dir.FullName, "model.json")) // a folder of that name: TaggerModel.Load says so
            ? dir
            : throw new UsageException($"--model: no tagger model in {dir.FullName} (expected model.json and parameters.f32 from 'securefed tagger train')");

    private static int Positive(int value, string option) =>
        value > 0 ? value : throw new UsageException($"{option} must be > 0 (got {value})");

    private static string ValidateDevice(string device) => device.Trim().ToUpperInvariant() switch
    {
        "AUTO" or "CPU" or "CUDA" => device.Trim().ToLowerInvariant(),
        _ => throw new UsageException($"--device must be auto, cpu or cuda (got \"{device}\")"),
    };

    private static TaggerConfig ResolveConfig(string value)
    {
        try
        {
            return TaggerConfig.Resolve(value);
        }
        catch (InvalidDataException ex)
        {
            throw new UsageException($"--config {ex.Message}");
        }
    }

    /// <summary>Invokes the callback synchronously on the training thread (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }
}
