using System.Text.Json;
using SecureFed.Cli;
using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>Self-training of the federated arms' models on public text (<c>--distill-text</c>, <see cref="PublicDistillation"/>).</summary>
public sealed class DistillTextTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-distill-text-").FullName;

    [Fact]
    public void Validate_PublicTextFolders_Accepted()
    {
        ExperimentOptions options = Options([PublicCorpus("gene-text", 5), PublicCorpus("chem-text", 5)]) with { DistillEpochs = 2, DistillLearningRate = 0.001 };

        options.Validate();
    }

    [Theory]
    [InlineData("")]
    [InlineData("/")]
    public void Validate_TheEvaluatedCorpus_RefusedHoweverSpelled(string suffix)
    {
        string evaluated = PublicCorpus("ncbi", 5);
        ExperimentOptions options = Options([PublicCorpus("gene-text", 5), evaluated + suffix]) with { DataDirectory = evaluated };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--distill-text must not include the evaluated corpus", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ALinkToTheEvaluatedCorpus_Refused()
    {
        string evaluated = PublicCorpus("ncbi", 5);
        string link = Path.Combine(_dir, "ncbi-link");
        Directory.CreateSymbolicLink(link, evaluated);
        ExperimentOptions options = Options([link]) with { DataDirectory = evaluated };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--distill-text must not include the evaluated corpus", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("missing-folder", "--distill-text: folder")]
    [InlineData("twice", "--distill-text names")]
    [InlineData("empty-name", "--distill-text has an empty folder name")]
    [InlineData("zero-epochs", "--distill-epochs must be at least 1, not 0")]
    [InlineData("epochs-without-text", "set the student's training on --distill-text")]
    [InlineData("lr-without-text", "set the student's training on --distill-text")]
    [InlineData("zero-lr", "--distill-lr must be finite and > 0")]
    [InlineData("pooled-only", "not with --pooled-only")]
    [InlineData("teacher-without-text", "--distill-teacher set the student's training on --distill-text")]
    [InlineData("teacher-not-a-model", "--distill-teacher: ")]
    public void Validate_BadDistillation_RefusedWithAClearMessage(string problem, string message)
    {
        string text = PublicCorpus("gene-text", 5);
        ExperimentOptions options = Options([text]);
        options = problem switch
        {
            "missing-folder" => options with { DistillTextDirectories = [text, Path.Combine(_dir, "nope")] },
            "twice" => options with { DistillTextDirectories = [text, text + "/"] },
            "empty-name" => options with { DistillTextDirectories = [text, ""] },
            "zero-epochs" => options with { DistillEpochs = 0 },
            "epochs-without-text" => options with { DistillTextDirectories = [], DistillEpochs = 2 },
            "lr-without-text" => options with { DistillTextDirectories = [], DistillLearningRate = 0.01 },
            "zero-lr" => options with { DistillLearningRate = 0 },
            "pooled-only" => options with { PooledOnly = true, Epsilons = [] },
            "teacher-without-text" => options with { DistillTextDirectories = [], DistillTeacherDirectory = text },
            "teacher-not-a-model" => options with { DistillTeacherDirectory = text },
            _ => throw new ArgumentOutOfRangeException(nameof(problem)),
        };

        ArgumentException error = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Experiment_DistillTextNamingTheEvaluatedCorpus_ExitsWithUsageError()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "sites"), train: 30, eval: 10);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(["experiment", "--data", corpus, "--epsilon", "8", "--distill-text", corpus, "--out", Path.Combine(_dir, "out")],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(2, code);
        Assert.Contains("--distill-text must not include the evaluated corpus", stderr.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ReadText_EverySplitOfEachFolder_TokensOnly()
    {
        string first = PublicCorpus("gene-text", 4);
        string second = PublicCorpus("chem-text", 3);

        IReadOnlyList<IReadOnlyList<string>> text = PublicDistillation.ReadText([first, second]);

        Assert.Equal(3 * 4, text.Count(t => t[0] == "gene-text"));
        Assert.Equal(3 * 3, text.Count(t => t[0] == "chem-text"));
        Assert.Equal(text.Count, text.Select(t => string.Join(' ', t)).Distinct(StringComparer.Ordinal).Count());
        Assert.All(text, t => Assert.Equal(5, t.Count));
    }

    [Fact]
    public void ReadText_LabelsSpelledInMixedCase_ReadAsTokensAnyway()
    {
        // Labels are ignored here (--pretrain-text, --distill-text): a type spelled two ways was refused as in labelled data.
        string text = PublicCorpus("mixed-text", 2);
        string train = Path.Combine(text, "train.tsv");
        File.WriteAllText(train, File.ReadAllText(train) + "fever\tB-disease\n\n");

        IReadOnlyList<IReadOnlyList<string>> tokens = PublicDistillation.ReadText([text]);

        Assert.Equal((3 * 2) + 1, tokens.Count);
        Assert.Equal(["fever"], tokens.Single(t => t.Count == 1));
    }

    [Fact]
    public void PseudoLabel_PublicSentences_LabelledWithTheTeachersViterbiOutput()
    {
        IReadOnlyList<IReadOnlyList<string>> text = PublicDistillation.ReadText([PublicCorpus("gene-text", 6)]);
        using TaggerModel teacher = TaggerModel.Create(TaggerConfig.TinyCrf, LabelSet.Create(["Disease"]), 7, "cpu");

        Sentence[] pseudo = PublicDistillation.PseudoLabel(teacher, text);

        IReadOnlyList<IReadOnlyList<string>> viterbi = teacher.Predict(text);
        Assert.Equal(text.Count, pseudo.Length);
        for (int i = 0; i < pseudo.Length; i++)
        {
            Assert.Equal(text[i], pseudo[i].Tokens);
            Assert.Equal(viterbi[i], pseudo[i].Tags);
        }

        // The public corpus's own labels are not what the student learns: an untrained teacher tags something else.
        Assert.Contains(pseudo, s => !s.Tags.SequenceEqual(["O", "O", "B-Disease", "I-Disease", "O"]));
    }

    [Fact]
    public async Task Experiment_DistillText_ReportsTeacherAndStudentAndSavesBothModels()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "sites"), train: 60, eval: 20);
        string text = PublicCorpus("public-text", 20);
        string output = Path.Combine(_dir, "out");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();

        int code = await CliApp.RunAsync(
            ["experiment", "--data", corpus, "--sites", "3", "--federated-only", "--epsilon", "8", "--seeds", "1", "--rounds", "1",
             "--config", "tiny-crf", "--dp-steps", "1", "--sample-rate", "0.3", "--distill-text", text, "--distill-epochs", "2", "--threads", "1",
             "--out", output, "--json"],
            stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));

        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");
        // Only the public text was labelled: its 3 × 20 sentences, not the sites' or the evaluated dev and test.
        Assert.Equal(2, stderr.ToString().Split("labelled 60 sentences").Length - 1);
        using JsonDocument results = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "results.json")));
        JsonElement[] runs = [.. results.RootElement.GetProperty("runs").EnumerateArray()];
        Assert.Equal(["federated", "self_trained_student", "federated_dp", "self_trained_student"], runs.Select(r => r.GetProperty("kind").GetString()));
        for (int i = 0; i < runs.Length; i += 2)
        {
            JsonElement teacher = runs[i];
            JsonElement student = runs[i + 1];
            Assert.Equal(JsonValueKind.Null, teacher.GetProperty("distillation").ValueKind);
            JsonElement d = student.GetProperty("distillation");
            Assert.Equal(teacher.GetProperty("arm").GetString(), d.GetProperty("teacher_arm").GetString());
            Assert.Equal(teacher.GetProperty("test_f1").GetDouble(), d.GetProperty("teacher_test_f1").GetDouble(), 12);
            Assert.Equal(teacher.GetProperty("dev_f1_per_round")[0].GetDouble(), d.GetProperty("teacher_dev_f1").GetDouble(), 12);
            double[] dev = [.. d.GetProperty("dev_f1_per_epoch").EnumerateArray().Select(e => e.GetDouble())];
            double[] test = [.. d.GetProperty("test_f1_per_epoch").EnumerateArray().Select(e => e.GetDouble())];
            Assert.Equal(2, dev.Length);
            Assert.Equal(2, test.Length);
            int best = d.GetProperty("best_epoch").GetInt32();
            Assert.Equal(Array.IndexOf(dev, dev.Max()) + 1, best);
            Assert.Equal(dev[best - 1], d.GetProperty("student_dev_f1").GetDouble(), 12);
            Assert.Equal(test[best - 1], d.GetProperty("student_test_f1").GetDouble(), 12);
            Assert.Equal(test[best - 1], student.GetProperty("test_f1").GetDouble(), 12);
            Assert.Equal(60, d.GetProperty("public_sentences").GetInt32());
        }

        string[] lines = stdout.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        using JsonDocument summary = JsonDocument.Parse(lines[^1]);
        Assert.Equal(2, summary.RootElement.GetProperty("self_trained").GetArrayLength());
        Assert.Contains("self-trained student (epoch", stdout.ToString(), StringComparison.Ordinal);

        // Each arm's final model and its student are written; the student moved away from its teacher.
        foreach (string name in new[] { "seed1-federated", "seed1-dp-eps8" })
        {
            using TaggerModel teacher = TaggerModel.Load(Path.Combine(output, "models", name), "cpu");
            using TaggerModel student = TaggerModel.Load(Path.Combine(output, "models", name + "-student"), "cpu");
            Assert.NotEqual(teacher.Flatten(), student.Flatten());
        }

        // --distill-teacher: the saved DP model again, self-trained without training any arm; the same teacher and student.
        using var again = new StringWriter();
        using var againErr = new StringWriter();
        code = await CliApp.RunAsync(
            ["experiment", "--data", corpus, "--sites", "3", "--federated-only", "--epsilon", "none", "--seeds", "1",
             "--config", "tiny-crf", "--threads", "1", "--distill-text", text, "--distill-epochs", "2", "--distill-teacher", Path.Combine(output, "models", "seed1-dp-eps8"),
             "--out", Path.Combine(_dir, "again")],
            again, againErr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"exit {code}\n{again}\n{againErr}");
        Assert.DoesNotContain("round 1/", againErr.ToString(), StringComparison.Ordinal);
        using JsonDocument rerun = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(_dir, "again", "results.json")));
        JsonElement[] rows = [.. rerun.RootElement.GetProperty("runs").EnumerateArray()];
        Assert.Equal(["saved_teacher", "self_trained_student"], rows.Select(r => r.GetProperty("kind").GetString()));
        Assert.Equal(runs[2].GetProperty("test_f1").GetDouble(), rows[0].GetProperty("test_f1").GetDouble(), 12);
        Assert.Equal(runs[3].GetProperty("distillation").GetProperty("dev_f1_per_epoch").GetRawText(), rows[1].GetProperty("distillation").GetProperty("dev_f1_per_epoch").GetRawText());
        Assert.True(Directory.Exists(Path.Combine(_dir, "again", "models", "seed1-dp-eps8-student")));
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private ExperimentOptions Options(IReadOnlyList<string> text) => new()
    {
        DataDirectory = "/nonexistent/ncbi",
        ConfigName = "tiny-crf",
        DistillTextDirectories = text,
    };

    /// <summary>A small CoNLL corpus folder whose sentences start with the folder's name and are distinct across splits.</summary>
    private string PublicCorpus(string name, int sentences)
    {
        string directory = Path.Combine(_dir, name);
        if (Directory.Exists(directory))
        {
            return directory;
        }

        Directory.CreateDirectory(directory);
        foreach ((string file, int offset) in new[] { ("train.tsv", 0), ("dev.tsv", 10_000), ("test.tsv", 20_000) })
        {
            using var writer = new StreamWriter(Path.Combine(directory, file));
            for (int i = 0; i < sentences; i++)
            {
                writer.WriteLine($"{name}\tO");
                writer.WriteLine($"patient{offset + i}\tO");
                writer.WriteLine("severe\tB-Disease");
                writer.WriteLine("anemia\tI-Disease");
                writer.WriteLine(".\tO");
                writer.WriteLine();
            }
        }

        return directory;
    }
}
