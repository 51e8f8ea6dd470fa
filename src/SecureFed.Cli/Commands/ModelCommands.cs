using System.CommandLine;
using System.Globalization;
using SecureFed.Agent;
using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed model ...</c>: model specification, initial parameters and interpolation of two models.</summary>
internal static class ModelCommands
{
    public static Command Create()
    {
        var command = new Command("model", "Model specifications and model files.");
        command.Subcommands.Add(SpecCommand());
        command.Subcommands.Add(MergeCommand());
        command.Subcommands.Add(LayerScalesCommand());
        return command;
    }

    private static Command SpecCommand()
    {
        var output = new Option<string>("--out") { Description = "Where to write the specification JSON (a new file: an existing one is never replaced).", Required = true };
        var size = new Option<string>("--size") { Description = "default, tiny, tiny-crf (the tiny model with a CRF head: the one to train under DP after a public warm start), tiny-encoder or tiny-crf-encoder (fed the frozen public encoder all-MiniLM-L6-v2's token vectors too: for DP without a public corpus), tiny-crf-encoder-mean (the mean of its six layers' vectors instead of the last layer's: the best under DP without a public corpus).", DefaultValueFactory = _ => "default" };
        var types = new Option<string?>("--types") { Description = "Comma-separated entity types (default: the five clinical types)." };
        var command = new Command("spec", "Write a model specification (tagger configuration + entity types) that every site and the aggregator must share; prints its SHA-256.")
        {
            output, size, types,
        };
        command.SetAction((parse, ct) =>
        {
            string path = parse.GetValue(output)!;
            OutputPaths.RequireNewFile(path, "--out");
            string s = parse.GetValue(size) ?? "default";
            if (s is not ("default" or "tiny" or "tiny-crf" or "tiny-encoder" or "tiny-crf-encoder" or "tiny-crf-encoder-mean"))
            {
                throw new UsageException($"--size must be default, tiny, tiny-crf, tiny-encoder, tiny-crf-encoder or tiny-crf-encoder-mean, got '{s}'.");
            }

            string? t = parse.GetValue(types);
            IReadOnlyList<string> entityTypes = t is null ? LabelSet.ClinicalTypes : [.. t.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
            if (entityTypes.Count == 0)
            {
                throw new UsageException("--types must name at least one entity type.");
            }

            try
            {
                _ = LabelSet.Create(entityTypes);
            }
            catch (ArgumentException ex)
            {
                throw new UsageException($"--types: {ex.Message}.");
            }

            var spec = new ModelSpec(TaggerConfig.Resolve(s), entityTypes);
            OutputPaths.Writing("--out", () => { Federation.AtomicFile.WriteAllText(path, spec.ToJson()); return path; });
            parse.InvocationConfiguration.Output.WriteLine($"wrote {path}; sha256 {spec.Sha256}");
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command MergeCommand()
    {
        var a = new Argument<string>("A") { Description = "First model folder (as written by 'tagger train' or the demo)." };
        var b = new Argument<string>("B") { Description = "Second model folder with the same shape." };
        var lambda = new Option<double>("--lambda") { Description = "Interpolation weight λ: the result is λ·θ_A + (1−λ)·θ_B.", Required = true };
        var output = new Option<string>("--out") { Description = "Output model folder (must not exist or be empty).", Required = true };
        var command = new Command("merge", "Interpolate two models of the same shape: λ·θ_A + (1−λ)·θ_B.") { a, b, lambda, output };
        command.SetAction((parse, ct) =>
        {
            double l = parse.GetValue(lambda);
            if (!(l >= 0 && l <= 1))
            {
                throw new UsageException($"--lambda must be in [0, 1], got {l.ToString(CultureInfo.InvariantCulture)}.");
            }

            string outDir = parse.GetValue(output)!;
            OutputPaths.RequireNewFolder(outDir, "--out", "saved models");

            using TaggerModel modelA = LoadModel(parse.GetValue(a)!, "A");
            using TaggerModel modelB = LoadModel(parse.GetValue(b)!, "B");
            if (modelA.Config != modelB.Config || !modelA.Labels.Labels.SequenceEqual(modelB.Labels.Labels))
            {
                throw new UsageException("the two models do not have the same shape (tagger configuration or label set differ).");
            }

            float[] pa = modelA.Flatten();
            float[] pb = modelB.Flatten();
            float[] merged = new float[pa.Length];
            for (int i = 0; i < merged.Length; i++)
            {
                merged[i] = (float)((l * pa[i]) + ((1 - l) * pb[i]));
            }

            modelA.Unflatten(merged);
            modelA.Save(outDir);
            parse.InvocationConfiguration.Output.WriteLine($"wrote {outDir}: {merged.Length:N0} parameters = {l.ToString(CultureInfo.InvariantCulture)}·A + {(1 - l).ToString(CultureInfo.InvariantCulture)}·B");
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command LayerScalesCommand()
    {
        var modelDir = new Argument<string>("MODEL") { Description = "The public initial model's folder (e.g. 'tagger train' on a public corpus): the model the federation starts from." };
        var publicData = new Option<string>("--public-data") { Description = "A public CoNLL corpus folder (train.tsv; never a site's data), e.g. the one the model was trained on.", Required = true };
        var output = new Option<string?>("--out") { Description = "Also write the aggregator configuration fragment to this JSON file (a new file: an existing one is never replaced)." };
        var command = new Command("layer-scales", "Compute the layer-wise DP-SGD preconditioner (one factor per weight tensor, from public data at the public model) and print it as the aggregator's SecureFed:DpSgdLayerScales setting (docs/PROTOCOL.md, \"Layer scales\").")
        {
            modelDir, publicData, output,
        };
        command.SetAction((parse, ct) =>
        {
            string dir = parse.GetValue(publicData)!;
            if (parse.GetValue(output) is string target)
            {
                // Before the scales are computed: a missing folder was found only when they were written.
                OutputPaths.RequireNewFile(target, "--out");
                OutputPaths.RequireWritableFileFolder(target, "--out");
            }

            string train = Path.Combine(dir, "train.tsv");
            if (Directory.Exists(train))
            {
                throw new UsageException($"--public-data: {train} is a folder; the corpus folder needs a CoNLL file train.tsv.");
            }

            if (!File.Exists(train))
            {
                throw new UsageException($"--public-data: {train} does not exist (a CoNLL corpus folder with train.tsv is needed).");
            }

            using TaggerModel model = LoadModel(parse.GetValue(modelDir)!, "MODEL");
            var types = model.Labels.EntityTypes.ToHashSet(StringComparer.Ordinal);
            // Entity types the model does not tag are O, as in the public warm start (so their spellings are not checked).
            Sentence[] sentences = [.. ConllReader.ReadFile(train, EntityTypeSpellings.Unchecked).Select(x => x with { Tags = [.. x.Tags.Select(t => t.Length > 2 && types.Contains(t[2..]) ? t : "O")] })];
            float[] scales;
            try
            {
                scales = TaggerPreconditioner.LayerScalesFromPublicData(model, sentences);
            }
            catch (ArgumentException ex)
            {
                throw new UsageException($"--public-data {dir}: {ex.Message}");
            }

            string json = System.Text.Json.JsonSerializer.Serialize(new { SecureFed = new { DpSgdLayerScales = scales } });
            var writer = parse.InvocationConfiguration.Output;
            for (int i = 0; i < scales.Length; i++)
            {
                writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {model.ParameterLayout[i].Name,-40} {scales[i],10:G5}"));
            }

            writer.WriteLine(json);
            if (parse.GetValue(output) is string path)
            {
                OutputPaths.Writing("--out", () => { Federation.AtomicFile.WriteAllText(path, json); return path; });
                writer.WriteLine($"wrote {path}");
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static TaggerModel LoadModel(string directory, string name)
    {
        if (!Directory.Exists(directory))
        {
            throw new UsageException($"model {name} '{directory}': no such folder.");
        }

        return TaggerModel.Load(directory, "cpu");
    }
}
