using System.Security.Cryptography;
using System.Text;
using SecureFed.Agent;
using SecureFed.Tagger;

namespace SecureFed.Reliability.Tests;

/// <summary>docs/PROTOCOL.md §2 "Model specification hash": the exact canonical bytes, independent of the file's formatting.</summary>
public sealed class ModelSpecCanonicalTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-spec-").FullName;

    [Fact]
    public void ModelSpec_CanonicalJson_ExactBytesAndHash()
    {
        var spec = new ModelSpec(TaggerConfig.Tiny with { WordDropout = 0.00001 }, ["Drug", "Dis\"ease", "Drug", "Ab\\c"]);

        const string expected = "{\"config\":{\"word_buckets\":2048,\"char_ngram_buckets\":2048,\"shape_buckets\":64,\"word_dim\":16,"
            + "\"char_dim\":16,\"shape_dim\":4,\"min_ngram\":2,\"max_ngram\":4,\"max_ngrams_per_token\":24,\"hidden\":24,\"layers\":1,"
            + "\"dropout\":0.1,\"word_dropout\":1E-05,\"char_cnn_filters\":0,\"char_buckets\":512,\"char_emb_dim\":24,\"char_cnn_width\":3,"
            + "\"max_chars_per_token\":20,\"crf\":false},\"entity_types\":[\"Ab\\\\c\",\"Dis\\\"ease\",\"Drug\"]}";
        Assert.Equal(expected, spec.ToJson());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(expected))), spec.Sha256);
    }

    [Fact]
    public void ModelSpec_WithEncoder_CanonicalJsonNamesIt_SpecFileRoundTripsIt_AndTheHashDiffers()
    {
        var plain = new ModelSpec(TaggerConfig.TinyCrf, ["Disease"]);
        var withEncoder = new ModelSpec(TaggerConfig.TinyCrfEncoder, ["Disease"]);
        string path = Path.Combine(_dir, "spec-encoder.json");
        File.WriteAllText(path, withEncoder.ToJson());

        ModelSpec loaded = ModelSpec.Load(path);

        Assert.Equal(plain.ToJson().Replace("\"crf\":true}", "\"crf\":true,\"encoder\":\"minilm-l6-v2\"}", StringComparison.Ordinal), withEncoder.ToJson());
        Assert.Equal("minilm-l6-v2", loaded.Config.Encoder);
        Assert.Equal(withEncoder.Sha256, loaded.Sha256);
        Assert.NotEqual(plain.Sha256, withEncoder.Sha256);
    }

    [Fact]
    public void ModelSpec_LoadPrettyPrintedFile_SameHashAsCanonical()
    {
        ModelSpec spec = ModelSpec.Clinical(tiny: false);
        string path = Path.Combine(_dir, "spec.json");
        string pretty = "{\r\n  \"entity_types\" : [ \"Symptom\", \"Disease\", \"Drug\", \"Procedure\", \"Genetics\" ],\r\n  \"config\": "
            + TaggerConfig.Default.ToJson() + "\r\n}\r\n";
        File.WriteAllText(path, pretty);

        ModelSpec loaded = ModelSpec.Load(path);

        Assert.Equal(spec.Sha256, loaded.Sha256);
        Assert.Equal("db7d00fdf231550ce8a375cb1902b749f8ce7c92c0c2188bfffe21d9fb2d6cc1", spec.Sha256); // PROTOCOL.md §2
        Assert.DoesNotContain(' ', spec.ToJson());
        Assert.DoesNotContain('\n', spec.ToJson());
    }

    [Fact]
    public void ModelSpec_LoadTypeWithASpace_RefusedNamingTheFile()
    {
        string path = Path.Combine(_dir, "spec.json");
        File.WriteAllText(path, "{\"config\":" + TaggerConfig.Tiny.ToJson() + ",\"entity_types\":[\"Disease\",\"Adverse Event\"]}");

        var error = Assert.Throws<InvalidDataException>(() => ModelSpec.Load(path));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("Adverse Event", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// What an agent logs when the announced spec differs (review of session 45, t_spec_mismatch2.txt: only two hashes,
    /// round after round): this site's file and spec in words, the federation's hash recognised when it is a spec of
    /// 'securefed model spec', what to do on either side; the aggregator's text bounded and cleaned when it is no hash.
    /// </summary>
    [Fact]
    public void ModelSpecMismatch_Explain_NamesBothSpecificationsAndWhatToDoOnEitherSide()
    {
        string path = Path.Combine(_dir, "spec-tiny.json");
        File.WriteAllText(path, new ModelSpec(TaggerConfig.TinyCrfEncoderMean, ["Disease"]).ToJson());
        ModelSpec own = ModelSpec.Load(path);
        string federation = ModelSpec.Clinical(tiny: false).Sha256;

        string explained = ModelSpecMismatch.Explain(federation, own.Sha256, own, path);
        string hostile = ModelSpecMismatch.Explain(new string('\u0001', 100_000), own.Sha256, own, path);

        Assert.Equal(
            $"this site's model specification (SecureFed:ModelSpec {path}: the tagger of --size tiny-crf-encoder-mean; entity types Disease; SHA-256 {own.Sha256}) " +
            $"differs from the one the aggregator announces (SHA-256 {federation}, the spec of 'securefed model spec --size default' with the five clinical types); " +
            "the agent declines every round until they match. If the federation uses that model, get its model specification file from the aggregator's operator " +
            "(the file the aggregator's SecureFed:ModelSpec names, or the command that wrote it), set SecureFed:ModelSpec in this site's agent.json to it and restart " +
            "the agent; if the aggregator was started with the wrong one, its operator restarts it with the federation's, and this agent takes part again by itself.",
            explained);
        Assert.True(hostile.Length < 1_000, $"{hostile.Length} characters");
        Assert.DoesNotContain('\u0001', hostile);
        Assert.Null(ModelSpec.KnownAs(own.Sha256)); // Disease only: not the clinical types
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
