using System.Text.Json;
using System.Text.RegularExpressions;
using SecureFed.Audit;
using SecureFed.Cli;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Layer scales from the command line (docs/PROTOCOL.md, "Layer scales"): <c>securefed model layer-scales</c> prints the
/// aggregator setting, and <c>securefed demo --public-data … --layer-scales</c> announces them in a real federation, where
/// the aggregator and every agent audit the same digest.
/// </summary>
public sealed class LayerScalesCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-layer-scales-").FullName;

    [Fact]
    public async Task ModelLayerScales_PublicModelAndData_OnePositiveScalePerTensorAsTheAggregatorSetting()
    {
        string model = Path.Combine(_dir, "public-model");
        using (var tagger = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease"]), seed: 3, device: "cpu"))
        {
            tagger.Save(model);
        }

        string publicData = WritePublicCorpus();
        string outFile = Path.Combine(_dir, "scales.json");

        var (code, output, err) = await Run("model", "layer-scales", model, "--public-data", publicData, "--out", outFile);

        Assert.True(code == 0, err);
        using var loaded = TaggerModel.Load(model, "cpu");
        using JsonDocument json = JsonDocument.Parse(await File.ReadAllTextAsync(outFile));
        float[] scales = [.. json.RootElement.GetProperty("SecureFed").GetProperty("DpSgdLayerScales").EnumerateArray().Select(e => e.GetSingle())];
        Assert.Equal(loaded.ParameterLayout.Count, scales.Length);
        Assert.All(scales, s => Assert.True(s > 0 && float.IsFinite(s)));
        Assert.Contains(loaded.ParameterLayout[0].Name, output, StringComparison.Ordinal);
        Assert.Contains("\"DpSgdLayerScales\":[", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelLayerScales_PublicDataSpellsATypeInMixedCase_ScalesComputed()
    {
        // Types the model does not tag become O, so their spellings do not matter: B-disease after B-Disease was refused.
        string model = Path.Combine(_dir, "public-model");
        using (var tagger = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease"]), seed: 3, device: "cpu"))
        {
            tagger.Save(model);
        }

        string publicData = WritePublicCorpus();
        string train = Path.Combine(publicData, "train.tsv");
        File.WriteAllText(train, File.ReadAllText(train) + "fever\tB-disease\n\n");

        var (code, output, err) = await Run("model", "layer-scales", model, "--public-data", publicData);

        Assert.True(code == 0, $"exit {code}: {err}");
        Assert.Contains("\"DpSgdLayerScales\":[", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelLayerScales_PublicFolderWithoutTrainTsv_Exits2NamingThePath()
    {
        var (code, _, err) = await Run("model", "layer-scales", _dir, "--public-data", Path.Combine(_dir, "nowhere"));

        Assert.Equal(2, code);
        Assert.Contains(Path.Combine(_dir, "nowhere", "train.tsv") + " does not exist", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelLayerScales_OutInAMissingFolder_Exits2BeforeAnyScaleIsComputed()
    {
        // The scales were computed and printed, then writing them failed with exit 1 (CLI crash hunt, session 57).
        string publicData = WritePublicCorpus();
        string outFile = Path.Combine(_dir, "no-such-folder", "scales.json");

        var (code, output, err) = await Run("model", "layer-scales", Path.Combine(_dir, "no-model"), "--public-data", publicData, "--out", outFile);

        Assert.Equal(2, code);
        Assert.Contains("--out " + outFile + ": the folder " + Path.Combine(_dir, "no-such-folder") + " does not exist", err, StringComparison.Ordinal);
        Assert.DoesNotContain("DpSgdLayerScales", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelLayerScales_TrainTsvIsAFolder_Exits2SayingItIsAFolder()
    {
        string publicData = Path.Combine(_dir, "public-folder");
        Directory.CreateDirectory(Path.Combine(publicData, "train.tsv"));

        var (code, _, err) = await Run("model", "layer-scales", _dir, "--public-data", publicData);

        Assert.Equal(2, code);
        Assert.Contains(Path.Combine(publicData, "train.tsv") + " is a folder", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_LayerScalesWithoutPublicData_Exits2NamingPublicData()
    {
        var (code, _, err) = await Run("demo", "--out", Path.Combine(_dir, "demo"), "--layer-scales");

        Assert.Equal(2, code);
        Assert.Contains("--layer-scales needs --public-data", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "demo", "agents")));
    }

    [Fact]
    public async Task Demo_PublicDataWithLayerScales_AnnouncedBoundAndAuditedTheSameByAggregatorAndEverySite()
    {
        string demo = Path.Combine(_dir, "demo");

        var (code, output, err) = await Run("demo", "--out", demo, "--rounds", "2", "--train-per-site", "20", "--no-comparison",
            "--public-data", WritePublicCorpus(), "--public-epochs", "1", "--layer-scales");

        string plain = Regex.Replace(Regex.Replace(output, @"\x1b\[[0-9;]*m", ""), @"\s+", " ");
        Assert.True(code == 0, $"exit {code}\n{plain}\n{err}");
        Assert.Contains("Layer scales: the aggregator announces one DP-SGD factor per weight tensor", plain, StringComparison.Ordinal);
        Assert.Matches(@"public warm start: epoch 1/1, [0-9,]+ sentences, loss [0-9.]+, [0-9]+ s elapsed", plain); // progress of the warm start

        Assert.Contains("lr 4, per-example clip C=1.", plain, StringComparison.Ordinal);
        string[] aggregatorAudit = File.ReadAllLines(Path.Combine(demo, "aggregator-data", "audit", AuditLog.LogFileName));
        string[] opened = [.. aggregatorAudit.Where(l => l.Contains($"\"{AuditEvents.RoundOpened}\"", StringComparison.Ordinal))];
        Assert.Equal(2, opened.Length);
        Match count = Regex.Match(opened[0], "\"dp_sgd_layer_scales\":([0-9]+)");
        Match sha = Regex.Match(opened[0], "\"dp_sgd_layer_scales_sha256\":\"([0-9a-f]{64})\"");
        Assert.True(count.Success && sha.Success, opened[0]);
        Assert.True(int.Parse(count.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 3);
        foreach (string site in new[] { "site-de", "site-fr", "site-jp" })
        {
            string[] joined = [.. File.ReadAllLines(Path.Combine(demo, "agents", site, "audit", AuditLog.LogFileName))
                .Where(l => l.Contains($"\"{AuditEvents.RoundJoined}\"", StringComparison.Ordinal))];
            Assert.Equal(2, joined.Length);
            Assert.All(joined, l => Assert.Contains($"\"dp_sgd_layer_scales_sha256\":\"{sha.Groups[1].Value}\"", l, StringComparison.Ordinal));
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A small public corpus folder (synthetic clinical sentences; Disease kept, the demo turns other types to O).</summary>
    private string WritePublicCorpus()
    {
        string dir = Path.Combine(_dir, "public");
        Directory.CreateDirectory(dir);
        using var writer = new StreamWriter(Path.Combine(dir, "train.tsv"));
        foreach (Sentence s in SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 60, seed: 5))
        {
            for (int i = 0; i < s.Length; i++)
            {
                writer.WriteLine($"{s.Tokens[i]}\t{s.Tags[i]}");
            }

            writer.WriteLine();
        }

        return dir;
    }
}
