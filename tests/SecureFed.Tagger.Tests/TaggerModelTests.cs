using SecureFed.Tagger.Internal;

namespace SecureFed.Tagger.Tests;

public sealed class TaggerModelTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    [Fact]
    public void Create_DeviceAuto_IsCpuWithoutCuda()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 1, device: "auto");

        Assert.Equal(TorchSharp.torch.cuda.is_available() ? "cuda" : "cpu", model.DeviceName);
    }

    [Fact]
    public void Create_UnknownDevice_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => TaggerModel.Create(TaggerConfig.Tiny, Labels, 1, "tpu"));
    }

    [Fact]
    public void Create_CudaWithoutCuda_ThrowsInvalidOperation()
    {
        if (TorchSharp.torch.cuda.is_available())
        {
            Console.WriteLine("skipped: CUDA is available here");
            return;
        }

        var ex = Assert.Throws<InvalidOperationException>(() => TaggerModel.Create(TaggerConfig.Tiny, Labels, 1, "cuda"));
        Assert.Contains("cuda", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParameterCount_EqualsLayoutSumAndFlattenLength()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 1);

        long fromLayout = model.ParameterLayout.Sum(p => p.Shape.Aggregate(1L, (a, b) => a * b));
        Assert.Equal(fromLayout, model.ParameterCount);
        Assert.Equal(model.ParameterCount, model.Flatten().LongLength);
        Assert.Equal("word_emb.weight", model.ParameterLayout[0].Name);
        Assert.Equal("head.bias", model.ParameterLayout[^1].Name);
    }

    [Fact]
    public void Create_SameSeed_SameWeights_DifferentSeed_DifferentWeights()
    {
        using var a = TaggerModel.Create(TaggerConfig.Tiny, Labels, 7);
        using var b = TaggerModel.Create(TaggerConfig.Tiny, Labels, 7);
        using var c = TaggerModel.Create(TaggerConfig.Tiny, Labels, 8);

        Assert.Equal(a.Flatten(), b.Flatten());
        Assert.NotEqual(a.Flatten(), c.Flatten());
    }

    [Fact]
    public void Unflatten_ThenFlatten_RoundTripsExactly()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 1);
        var rng = new Random(3);
        float[] values = [.. Enumerable.Range(0, (int)model.ParameterCount).Select(_ => (float)(rng.NextDouble() - 0.5))];

        model.Unflatten(values);

        Assert.Equal(values, model.Flatten());
    }

    [Fact]
    public void Unflatten_HeadBiasSlice_LandsInLastTensor()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 1);
        float[] values = new float[model.ParameterCount];
        values[^1] = 42f;

        model.Unflatten(values);

        var (_, headBias) = model.Parameters[^1];
        Assert.Equal(42f, headBias.data<float>()[Labels.Count - 1]);
    }

    [Fact]
    public void Unflatten_WrongLength_ThrowsArgumentException()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 1);

        var ex = Assert.Throws<ArgumentException>(() => model.Unflatten(new float[model.ParameterCount - 1]));
        Assert.Contains(model.ParameterCount.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SaveLoad_RoundTrip_SameParametersAndPredictions()
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var model = TaggerModel.Create(TaggerConfig.Tiny, LabelSet.Create(["Disease", "Chemical"]), 5);
            var sentences = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 20, 1).Select(s => s.Tokens).ToList();

            model.Save(dir);
            using var loaded = TaggerModel.Load(dir, "cpu");

            Assert.Equal(model.Config, loaded.Config);
            Assert.Equal(model.Labels.Labels, loaded.Labels.Labels);
            Assert.Equal(model.Flatten(), loaded.Flatten());
            Assert.Equal(model.Predict(sentences), loaded.Predict(sentences));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void Load_ModelSavedBeforeTheCrfExisted_LoadsWithLinearHead()
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var model = TaggerModel.Create(TaggerConfig.Tiny with { Crf = false, Layers = 2 }, Labels, 3);
            model.Save(dir);
            string metaPath = Path.Combine(dir, "model.json");
            var meta = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(metaPath))!;
            Assert.True(meta["config"]!.AsObject().Remove("crf"));
            File.WriteAllText(metaPath, meta.ToJsonString());

            using var loaded = TaggerModel.Load(dir, "cpu");

            Assert.False(loaded.Config.Crf);
            Assert.Equal(model.Flatten(), loaded.Flatten());
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void Load_MissingDirectory_ThrowsNamingPath()
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-none-" + Guid.NewGuid().ToString("N"));

        var ex = Assert.Throws<DirectoryNotFoundException>(() => TaggerModel.Load(dir));
        Assert.Contains(dir, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("truncated", "not valid JSON")]
    [InlineData("not json at all", "not valid JSON")]
    [InlineData("[1, 2]", "not a securefed-tagger model")]
    [InlineData("{\"format\": 3, \"version\": \"one\"}", "not a valid tagger model's metadata")]
    [InlineData("{\"format\": \"securefed-tagger\", \"version\": 1, \"config\": {\"hidden\": 0}, \"entity_types\": [\"Disease\"]}", "tagger config is invalid")]
    public void Load_DamagedMetadata_InvalidDataNamingTheFile(string metadata, string problem)
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 3))
            {
                model.Save(dir);
            }

            string metaPath = Path.Combine(dir, "model.json");
            File.WriteAllText(metaPath, metadata == "truncated" ? File.ReadAllText(metaPath)[..40] : metadata);

            var ex = Assert.Throws<InvalidDataException>(() => TaggerModel.Load(dir, "cpu"));

            Assert.StartsWith(metaPath + ": ", ex.Message, StringComparison.Ordinal);
            Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData("word_buckets", 2147483647L, "word_buckets is 2147483647; it must be from 2 to 4194304")]
    [InlineData("hidden", 1000000L, "hidden is 1000000; it must be from 1 to 4096")]
    [InlineData("word_dim", 4096L, "more than the 268435456 a tagger may have")]
    public void Load_HugeSizeInMetadata_InvalidDataNamingTheFileBeforeAllocating(string key, long value, string problem)
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 3))
            {
                model.Save(dir);
            }

            string metaPath = Path.Combine(dir, "model.json");
            var meta = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(metaPath))!;
            meta["config"]![key] = value;
            if (key == "word_dim")
            {
                meta["config"]!["word_buckets"] = TaggerConfig.MaxBuckets; // each size in range, the product not
            }

            File.WriteAllText(metaPath, meta.ToJsonString());

            var ex = Assert.Throws<InvalidDataException>(() => TaggerModel.Load(dir, "cpu"));

            Assert.StartsWith(metaPath + ": ", ex.Message, StringComparison.Ordinal);
            Assert.Contains(problem, ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("(Parameter", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>A diverged model's NaN or infinite weights tagged every token O, exit 0: refused at load, naming how many and the first.</summary>
    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Load_NonFiniteParameters_InvalidDataNamingTheFileTheCountAndTheFirstIndex(float bad)
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 3))
            {
                model.Save(dir);
            }

            string paramPath = Path.Combine(dir, "parameters.f32");
            byte[] bytes = File.ReadAllBytes(paramPath);
            foreach (int index in (int[])[7, 1234, (bytes.Length / sizeof(float)) - 1])
            {
                System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(index * sizeof(float)), bad);
            }

            File.WriteAllBytes(paramPath, bytes);

            var ex = Assert.Throws<InvalidDataException>(() => TaggerModel.Load(dir, "cpu"));

            Assert.StartsWith(paramPath + ": 3 of " + (bytes.Length / sizeof(float)).ToString(System.Globalization.CultureInfo.InvariantCulture) + " parameters are not finite", ex.Message, StringComparison.Ordinal);
            Assert.Contains("the first at index 7", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>
    /// CLI crash hunt (session 56): a model folder whose files are symbolic links to a saved model's loads as that model
    /// (parameters.f32 as a link was refused as "32 bytes": the link's own length was checked); a model.json that is a
    /// link to /dev/zero is refused naming what it is (it made the reader run out of memory and abort the process).
    /// </summary>
    [Fact]
    public void Load_FilesAreSymbolicLinks_LoadsTheLinkedModel_EndlessMetadataRefusedNamingTheSize()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // symbolic links need privileges there
        }

        string root = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            string saved = Path.Combine(root, "saved");
            string linked = Path.Combine(root, "linked");
            using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 4);
            model.Save(saved);
            Directory.CreateDirectory(linked);
            File.CreateSymbolicLink(Path.Combine(linked, "parameters.f32"), Path.Combine(saved, "parameters.f32"));
            File.CreateSymbolicLink(Path.Combine(linked, "model.json"), Path.Combine(saved, "model.json"));

            using (var loaded = TaggerModel.Load(linked, "cpu"))
            {
                Assert.Equal(model.Flatten(), loaded.Flatten());
            }

            if (File.Exists("/dev/zero"))
            {
                File.Delete(Path.Combine(linked, "model.json"));
                File.CreateSymbolicLink(Path.Combine(linked, "model.json"), "/dev/zero");
                var ex = Assert.Throws<InvalidDataException>(() => TaggerModel.Load(linked, "cpu"));
                // Refused by its type before it is opened (on Linux); elsewhere by the size read.
                Assert.Equal(
                    OperatingSystem.IsLinux()
                        ? $"{Path.Combine(linked, "model.json")} (a link to '/dev/zero') is a character device; a tagger model's model.json is a regular file (as 'securefed tagger train' writes it)"
                        : $"{Path.Combine(linked, "model.json")}: over {TaggerModel.MaxMetadataBytes} bytes; a tagger model's metadata is a few kilobytes, so the file is damaged or not a tagger model's model.json",
                    ex.Message);
            }
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    [Fact]
    public void Load_ConfigurationLargerThanTheWeightsFile_InvalidDataNamingBothFilesWithoutBuildingTheModel()
    {
        string dir = Path.Combine(Path.GetTempPath(), "securefed-tagger-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 3))
            {
                model.Save(dir);
            }

            string metaPath = Path.Combine(dir, "model.json");
            var meta = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(metaPath))!;
            meta["config"]!["word_buckets"] = TaggerConfig.MaxBuckets; // 67 M parameters, 256 MiB: in range, but not these weights
            File.WriteAllText(metaPath, meta.ToJsonString());

            var ex = Assert.Throws<InvalidDataException>(() => TaggerModel.Load(dir, "cpu"));

            // Checked before the model is built: the message of the check after building names only the weights file.
            Assert.StartsWith(Path.Combine(dir, "parameters.f32") + ": ", ex.Message, StringComparison.Ordinal);
            Assert.Contains(metaPath, ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void ConfigParameterCount_EveryShape_MatchesTheBuiltModel()
    {
        TaggerConfig[] configs =
        [
            TaggerConfig.Tiny,
            TaggerConfig.TinyCrf,
            TaggerConfig.Tiny with { Layers = 3, Hidden = 7 },
            TaggerConfig.Tiny with { CharCnnFilters = 5, CharBuckets = 33, CharEmbDim = 6, CharCnnWidth = 5, Crf = true },
            TaggerConfig.Default,
        ];
        foreach (TaggerConfig config in configs)
        {
            using var model = TaggerModel.Create(config, Labels, 1);

            Assert.Equal(model.ParameterCount, config.ParameterCount(Labels.Count));
        }
    }

    [Fact]
    public void Predict_BatchedAndSingle_GiveSameTagsAndValidIob2()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, 2);
        var sentences = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 30, 4).Select(s => s.Tokens).ToList();

        var batched = model.Predict(sentences);
        var single = sentences.Select(s => model.Predict([s])[0]).ToList();

        Assert.Equal(single, batched);
        foreach (var tags in batched)
        {
            for (int i = 0; i < tags.Count; i++)
            {
                if (tags[i].StartsWith("I-", StringComparison.Ordinal))
                {
                    Assert.True(i > 0 && tags[i - 1].EndsWith(tags[i][2..], StringComparison.Ordinal) && tags[i - 1] != "O", "I- must continue a chunk of its type");
                }
            }
        }
    }

    [Fact]
    public void TaggerConfig_Json_RoundTrips()
    {
        TaggerConfig custom = TaggerConfig.Tiny with { Hidden = 7, Dropout = 0.25 };

        Assert.Equal(custom, TaggerConfig.FromJson(custom.ToJson()));
        Assert.Equal(TaggerConfig.Default, TaggerConfig.FromJson(TaggerConfig.Default.ToJson()));
    }

    [Fact]
    public void TaggerConfig_InvalidJson_ThrowsInvalidData()
    {
        Assert.Throws<InvalidDataException>(() => TaggerConfig.FromJson("{\"hidden\": 0}"));
    }

    [Theory]
    [InlineData("{\"hidden\": 8, \"hiden_size\": 3}", "\"hiden_size\"")]
    [InlineData("{\"Hidden\": 8}", "\"Hidden\"")]
    [InlineData("{\"pooled_f1\": 0.7, \"arms\": []}", "\"pooled_f1\", \"arms\"")]
    [InlineData("{}", "empty JSON object")]
    [InlineData("[1, 2]", "must be a JSON object")]
    public void TaggerConfig_FromJson_NotAConfig_ThrowsNamingWhatIsWrong(string json, string expected)
    {
        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => TaggerConfig.FromJson(json));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    /// <summary>A value out of range is named by the JSON key the user wrote (max_ngram), not the C# property (MaxNgram).</summary>
    [Theory]
    [InlineData("{\"min_ngram\": 3, \"max_ngram\": 2}", "max_ngram is 2; it must be from 3 to 64", "MaxNgram")]
    [InlineData("{\"word_buckets\": 1}", "word_buckets is 1; it must be from 2", "WordBuckets")]
    [InlineData("{\"char_cnn_filters\": 8, \"char_cnn_width\": 4}", "char_cnn_width must be odd", "CharCnnWidth")]
    [InlineData("{\"word_dropout\": 1.5}", "word_dropout must be in [0, 1)", "WordDropout")]
    [InlineData("{\"encoder\": \"bert\"}", "encoder is \"bert\"", "Encoder")]
    public void TaggerConfig_FromJson_ValueOutOfRange_NamedByItsJsonKey(string json, string expected, string propertyName)
    {
        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => TaggerConfig.FromJson(json));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(propertyName, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TaggerConfig_Validate_InCode_StillNamesTheProperty()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => (TaggerConfig.Tiny with { MaxNgram = 1 }).Validate());

        Assert.Contains("MaxNgram is 1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TaggerConfig_Resolve_Folder_SaysItIsAFolderNotThatItIsMissing()
    {
        DirectoryInfo folder = Directory.CreateTempSubdirectory("securefed-config-");
        try
        {
            InvalidDataException ex = Assert.Throws<InvalidDataException>(() => TaggerConfig.Resolve(folder.FullName));

            Assert.StartsWith($"{folder.FullName} is a folder; give a JSON file", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("not found", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            folder.Delete();
        }
    }

    /// <summary>A model spec (securefed model spec) is not a tagger config: refused, naming the file, what it is and who takes it.</summary>
    [Fact]
    public void TaggerConfig_Resolve_ModelSpecFile_RefusedSayingWhatItIs()
    {
        string path = Path.Combine(Path.GetTempPath(), $"securefed-spec-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$"""{"config": {{TaggerConfig.Tiny.ToJson()}}, "entity_types": ["Disease"]}""");
        try
        {
            InvalidDataException ex = Assert.Throws<InvalidDataException>(() => TaggerConfig.Resolve(path));

            Assert.Contains(path, ex.Message, StringComparison.Ordinal);
            Assert.Contains("model specification", ex.Message, StringComparison.Ordinal);
            Assert.Contains("ModelSpec setting", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Configs shipped in the repository (docs/configs) and partial configs still load.</summary>
    [Fact]
    public void TaggerConfig_Resolve_ShippedAndPartialConfigsLoad()
    {
        DirectoryInfo? root = new(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "SecureFed.sln")))
        {
            root = root.Parent;
        }

        Assert.NotNull(root);
        string[] shipped = Directory.GetFiles(Path.Combine(root.FullName, "docs", "configs"), "*.json");
        Assert.NotEmpty(shipped);
        foreach (string file in shipped)
        {
            TaggerConfig config = TaggerConfig.Resolve(file);
            Assert.Equal(config, TaggerConfig.FromJson(config.ToJson()));
        }

        Assert.Equal(TaggerConfig.Default with { Hidden = 7 }, TaggerConfig.FromJson("{\"hidden\": 7}"));
    }

    [Fact]
    public void TaggerConfig_Resolve_NamesAndFiles()
    {
        string path = Path.Combine(Path.GetTempPath(), $"securefed-config-{Guid.NewGuid():N}.json");
        TaggerConfig tinyCrf = TaggerConfig.Tiny with { Crf = true };
        File.WriteAllText(path, tinyCrf.ToJson());
        try
        {
            Assert.Same(TaggerConfig.Tiny, TaggerConfig.Resolve(" Tiny "));
            Assert.Same(TaggerConfig.Default, TaggerConfig.Resolve("DEFAULT"));
            Assert.Same(TaggerConfig.TinyCrf, TaggerConfig.Resolve("tiny-crf"));
            Assert.Equal(TaggerConfig.Tiny with { Crf = true }, TaggerConfig.TinyCrf);
            Assert.Equal(tinyCrf, TaggerConfig.Resolve(path));

            File.WriteAllText(path, "{\"hidden\": 0}");
            InvalidDataException invalid = Assert.Throws<InvalidDataException>(() => TaggerConfig.Resolve(path));
            Assert.Contains(path, invalid.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }

        InvalidDataException missing = Assert.Throws<InvalidDataException>(() => TaggerConfig.Resolve(path));
        Assert.Contains("not found", missing.Message, StringComparison.Ordinal);
        Assert.Contains(path, missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FeatureHasher_Fnv1a_MatchesPublishedVector()
    {
        // FNV-1a 64-bit test vectors (Fowler/Noll/Vo): "" -> cbf29ce484222325, "a" -> af63dc4c8601ec8c, "foobar" -> 85944171f73967e8.
        const ulong offset = 14695981039346656037UL;

        Assert.Equal(0xcbf29ce484222325UL, FeatureHasher.Fnv1a(offset, string.Empty));
        Assert.Equal(0xaf63dc4c8601ec8cUL, FeatureHasher.Fnv1a(offset, "a"));
        Assert.Equal(0x85944171f73967e8UL, FeatureHasher.Fnv1a(offset, "foobar"));
    }

    [Fact]
    public void FeatureHasher_Bucket_InRangeAndCaseInsensitiveForWords()
    {
        var hasher = new FeatureHasher(TaggerConfig.Tiny);

        var (words, _, ngrams, _) = hasher.Encode(["Anaemia", "anaemia", "Metformin"]);

        Assert.Equal(words[0], words[1]);
        Assert.NotEqual(words[0], words[2]);
        Assert.All(words, w => Assert.InRange(w, 1, TaggerConfig.Tiny.WordBuckets - 1));
        Assert.All(ngrams, g => Assert.InRange(g, 0, TaggerConfig.Tiny.CharNgramBuckets - 1));
    }

    [Fact]
    public void LabelSet_Create_IsSortedWithOFirst()
    {
        var labels = LabelSet.Create(["Symptom", "Disease", "Disease"]);

        Assert.Equal(new[] { "O", "B-Disease", "I-Disease", "B-Symptom", "I-Symptom" }, labels.Labels);
        Assert.Equal(3, labels.IndexOf("B-Symptom"));
        Assert.Equal(-1, labels.IndexOf("B-Drug"));
    }
}
