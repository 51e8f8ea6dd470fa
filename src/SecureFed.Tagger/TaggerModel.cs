using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using SecureFed.Tagger.Internal;
using RegularFile = SecureFed.Federation.Internal.RegularFile;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger;

/// <summary>
/// The clinical token tagger: hashed word, word-shape and character n-gram embeddings (no vocabulary, see below),
/// an optional character CNN over hashed characters, a BiLSTM encoder, a linear head and (by default) a linear-chain
/// CRF, decoded with IOB2-constrained Viterbi.
/// </summary>
/// <remarks>
/// <para><b>No shared vocabulary.</b> Features are 64-bit FNV-1a hashes (stable across processes and machines,
/// keyed by a constant) of the lower-cased word, its shape, its character n-grams and its characters, reduced into
/// fixed bucket counts from <see cref="TaggerConfig"/>. Every site therefore builds the identical model shape from
/// the configuration alone; no word list built from a site's text is needed or ever leaves the site.</para>
/// <para><b>Flatten order.</b> <see cref="Flatten"/> concatenates the tensors in <c>named_parameters()</c> order,
/// each in row-major (C) order: <c>word_emb.weight</c> [WordBuckets, WordDim], <c>shape_emb.weight</c>
/// [ShapeBuckets, ShapeDim], <c>ngram_emb.weight</c> [CharNgramBuckets, CharDim], then with the character CNN
/// (<see cref="TaggerConfig.CharCnnFilters"/> &gt; 0) <c>char_emb.weight</c> [CharBuckets, CharEmbDim],
/// <c>char_cnn.weight</c> [CharCnnFilters, CharEmbDim, CharCnnWidth], <c>char_cnn.bias</c> [CharCnnFilters], the
/// LSTM tensors (<c>encoder.weight_ih_l0</c>, <c>encoder.weight_hh_l0</c>, <c>encoder.bias_ih_l0</c>,
/// <c>encoder.bias_hh_l0</c>, then the <c>_reverse</c> set, per layer), <c>head.weight</c> [Labels, 2*Hidden],
/// <c>head.bias</c> [Labels], then with the CRF (<see cref="TaggerConfig.Crf"/>) <c>crf.transitions</c>
/// [Labels, Labels] (indexed [from, to]), <c>crf.start</c> [Labels], <c>crf.end</c> [Labels].
/// <see cref="ParameterLayout"/> lists the exact names and shapes. This vector is what gets securely aggregated.</para>
/// </remarks>
public sealed class TaggerModel : IDisposable
{
    private const string MetadataFile = "model.json";
    private const string ParametersFile = "parameters.f32";
    private const int FormatVersion = 1;

    private readonly FeatureHasher _hasher;
    private readonly ConstrainedDecoder _decoder;
    private readonly PretrainedEncoder? _encoder;
    private readonly List<(string Name, Parameter Tensor)> _parameters;
    private bool _disposed;

    private TaggerModel(TaggerConfig config, LabelSet labels, Device device, PretrainedEncoder? encoder)
    {
        Config = config;
        Labels = labels;
        Device = device;
        Network = new TaggerNetwork(config, labels);
        Network.to(device);
        _parameters = [.. Network.named_parameters().Select(p => (p.name, p.parameter))];
        ParameterCount = _parameters.Sum(p => p.Tensor.numel());
        ParameterLayout = [.. _parameters.Select(p => new ParameterInfo(p.Name, p.Tensor.shape.ToArray()))];
        _hasher = new FeatureHasher(config);
        _decoder = new ConstrainedDecoder(labels);
        _encoder = encoder;
    }

    /// <summary>The model shape.</summary>
    public TaggerConfig Config { get; }

    /// <summary>The output labels.</summary>
    public LabelSet Labels { get; }

    /// <summary>Total number of scalar parameters (= length of <see cref="Flatten"/>).</summary>
    public long ParameterCount { get; }

    /// <summary>Names and shapes of the parameter tensors in flatten order.</summary>
    public IReadOnlyList<ParameterInfo> ParameterLayout { get; }

    /// <summary>The torch device the model lives on, e.g. <c>cpu</c> or <c>cuda</c>.</summary>
    public string DeviceName => Device.type == DeviceType.CUDA ? "cuda" : "cpu";

    internal Device Device { get; }

    internal TaggerNetwork Network { get; }

    internal IReadOnlyList<(string Name, Parameter Tensor)> Parameters => _parameters;

    /// <summary>Creates a freshly initialised model.</summary>
    /// <param name="config">Model shape (validated).</param>
    /// <param name="labels">Output labels.</param>
    /// <param name="seed">Seed for torch's initialisation (same seed, same weights).</param>
    /// <param name="device"><c>auto</c> (CUDA when available), <c>cpu</c> or <c>cuda</c>.</param>
    /// <returns>The model.</returns>
    public static TaggerModel Create(TaggerConfig config, LabelSet labels, int seed, string device = "auto")
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(labels);
        config.Validate();
        Device resolved = TorchDevices.Resolve(device);
        // Loaded (once per process, about 90 MB read and hashed) before any native tensor exists and outside the lock,
        // so a missing encoder leaks nothing and a first load does not hold up other models' creation.
        PretrainedEncoder? encoder = config.EncoderDim > 0 ? PretrainedEncoder.Get(config.Encoder) : null;
        lock (TorchRuntime.GlobalGeneratorLock)
        {
            torch.random.manual_seed(seed);
            return new TaggerModel(config, labels, resolved, encoder);
        }
    }

    /// <summary>All parameters as one vector (order documented on the type).</summary>
    /// <returns>A new array of <see cref="ParameterCount"/> floats.</returns>
    public float[] Flatten()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var result = new float[ParameterCount];
        long offset = 0;
        using var scope = torch.NewDisposeScope();
        foreach ((_, Parameter p) in _parameters)
        {
            Tensor cpu = p.detach().cpu().contiguous();
            int n = checked((int)cpu.numel());
            cpu.data<float>().CopyTo(result, (int)offset);
            offset += n;
        }

        return result;
    }

    /// <summary>Overwrites all parameters from one vector in flatten order.</summary>
    /// <param name="parameters">Exactly <see cref="ParameterCount"/> values.</param>
    /// <exception cref="ArgumentException">Wrong length.</exception>
    public void Unflatten(ReadOnlySpan<float> parameters)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (parameters.Length != ParameterCount)
        {
            throw new ArgumentException(
                $"parameter vector has {parameters.Length} values but the model has {ParameterCount}", nameof(parameters));
        }

        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        int offset = 0;
        foreach ((_, Parameter p) in _parameters)
        {
            int n = checked((int)p.numel());
            Tensor source = torch.tensor(parameters.Slice(offset, n).ToArray(), p.shape).to(p.device);
            p.copy_(source);
            offset += n;
        }
    }

    /// <summary>Saves <c>model.json</c> (format, config, labels, layout) and <c>parameters.f32</c> (the flatten vector, little endian).</summary>
    /// <param name="directory">Target directory (created if missing).</param>
    public void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Directory.CreateDirectory(directory);
        var meta = new JsonObject
        {
            ["format"] = "securefed-tagger",
            ["version"] = FormatVersion,
            ["config"] = JsonNode.Parse(Config.ToJson()),
            ["entity_types"] = new JsonArray([.. Labels.EntityTypes.Select(t => (JsonNode?)JsonValue.Create(t))]),
            ["parameter_count"] = ParameterCount,
            ["layout"] = new JsonArray([.. ParameterLayout.Select(p => (JsonNode?)new JsonObject
            {
                ["name"] = p.Name,
                ["shape"] = new JsonArray([.. p.Shape.Select(d => (JsonNode?)JsonValue.Create(d))]),
            })]),
        };
        File.WriteAllText(Path.Combine(directory, MetadataFile), meta.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        float[] flat = Flatten();
        var bytes = new byte[flat.Length * sizeof(float)];
        for (int i = 0; i < flat.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), flat[i]);
        }

        File.WriteAllBytes(Path.Combine(directory, ParametersFile), bytes);
    }

    /// <summary>Loads a model written by <see cref="Save"/>.</summary>
    /// <param name="directory">The model directory.</param>
    /// <param name="device"><c>auto</c>, <c>cpu</c> or <c>cuda</c>.</param>
    /// <returns>The model.</returns>
    /// <exception cref="DirectoryNotFoundException">The directory or its files are missing.</exception>
    /// <exception cref="InvalidDataException">The files are inconsistent, one of them is a folder, or a parameter is NaN or infinite.</exception>
    public static TaggerModel Load(string directory, string device = "auto")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string metaPath = Path.Combine(directory, MetadataFile);
        string paramPath = Path.Combine(directory, ParametersFile);
        foreach (string path in (ReadOnlySpan<string>)[metaPath, paramPath])
        {
            if (Directory.Exists(path))
            {
                // Not "no tagger model": the folder has the model's file name, which the user can see is there.
                throw new InvalidDataException($"{path} is a folder; a tagger model's {Path.GetFileName(path)} is a file (as 'securefed tagger train' writes it)");
            }

            if (RegularFile.NonRegularKind(path) is { } kind)
            {
                // Opening a named pipe waited for a writer forever; a link to /dev/zero had no end.
                throw new InvalidDataException($"{path}{RegularFile.LinkText(path)} is {kind}; a tagger model's {Path.GetFileName(path)} is a regular file (as 'securefed tagger train' writes it)");
            }
        }

        if (!File.Exists(metaPath) || !File.Exists(paramPath))
        {
            throw new DirectoryNotFoundException($"no tagger model in {directory} (expected {MetadataFile} and {ParametersFile})");
        }

        (TaggerConfig config, LabelSet labels) = ReadMetadata(metaPath);

        // Sizes first, from the configuration alone: a damaged model.json must not ask libtorch for the memory it names.
        // The length of the file itself, a symbolic link followed (FileInfo.Length is the link's own: a model whose
        // parameters.f32 was a link to the right file was refused as "32 bytes"; CLI crash hunt, session 56), read from
        // the same open file.
        long needed = config.ParameterCount(labels.Count) * sizeof(float);
        byte[] bytes;
        using (FileStream parameters = File.OpenRead(paramPath))
        {
            long length = parameters.Length;
            if (length != needed)
            {
                throw new InvalidDataException(
                    $"{paramPath}: {length} bytes but the configuration in {metaPath} needs {needed}; one of the two files is damaged or they come from different models");
            }

            bytes = new byte[needed];
            parameters.ReadExactly(bytes);
        }

        var model = Create(config, labels, 0, device);
        try
        {
            if (bytes.Length != model.ParameterCount * sizeof(float))
            {
                throw new InvalidDataException(
                    $"{paramPath}: {bytes.Length} bytes but the configuration needs {model.ParameterCount * sizeof(float)}");
            }

            var flat = new float[model.ParameterCount];
            int firstBad = -1;
            int badCount = 0;
            for (int i = 0; i < flat.Length; i++)
            {
                float value = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
                flat[i] = value;
                if (!float.IsFinite(value) && badCount++ == 0)
                {
                    firstBad = i;
                }
            }

            if (badCount > 0)
            {
                // Such a model tags every token O without a word of warning (NaN scores never win): refused instead.
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"{paramPath}: {badCount} of {flat.Length} parameters are not finite numbers (NaN or ±Infinity), the first at index {firstBad} ({flat[firstBad]}); the training that wrote it diverged or the file is damaged: train the model again"));
            }

            model.Unflatten(flat);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The most a model.json is read: a model's is under 4 KB (its configuration and labels).</summary>
    internal const int MaxMetadataBytes = 1 << 20;

    /// <summary>
    /// model.json as text, at most <see cref="MaxMetadataBytes"/>: a larger file, or one with no end (a link to /dev/zero
    /// made the reader run out of memory and abort, exit 134; CLI crash hunt, session 56), is refused naming its size.
    /// </summary>
    private static string ReadMetadataText(string metaPath)
    {
        using FileStream file = File.OpenRead(metaPath);
        byte[] buffer = new byte[MaxMetadataBytes + 1];
        int read = file.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        if (read > MaxMetadataBytes)
        {
            throw new InvalidDataException(
                $"{metaPath}: over {MaxMetadataBytes} bytes; a tagger model's metadata is a few kilobytes, so the file is damaged or not a tagger model's model.json");
        }

        return System.Text.Encoding.UTF8.GetString(buffer, 0, read).TrimStart('\uFEFF'); // as File.ReadAllText read it
    }

    /// <summary>
    /// Reads <c>model.json</c>. A file that is not JSON (truncated, say) or not a model's metadata is an
    /// <see cref="InvalidDataException"/> naming the file and the problem, never a JSON parser's exception.
    /// </summary>
    private static (TaggerConfig Config, LabelSet Labels) ReadMetadata(string metaPath)
    {
        JsonNode? meta;
        try
        {
            meta = JsonNode.Parse(ReadMetadataText(metaPath));
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{metaPath}: not valid JSON, the file is damaged or not a tagger model's metadata ({ex.Message})", ex);
        }

        try
        {
            if (meta is not JsonObject || (string?)meta["format"] != "securefed-tagger" || (int?)meta["version"] != FormatVersion)
            {
                throw new InvalidDataException($"{metaPath}: not a securefed-tagger model of format version {FormatVersion}");
            }

            JsonObject configNode = meta["config"] as JsonObject ?? throw new InvalidDataException($"{metaPath}: missing config");
            TaggerConfig config = TaggerConfig.FromJson(configNode.ToJsonString());
            if (!configNode.ContainsKey("crf"))
            {
                // Saved before the CRF head existed: those models had a linear head, whatever today's default is.
                config = config with { Crf = false };
            }

            var types = (meta["entity_types"] as JsonArray ?? throw new InvalidDataException($"{metaPath}: missing entity_types"))
                .Select(n => (string?)n ?? throw new InvalidDataException($"{metaPath}: null entity type"));
            return (config, LabelSet.Create(types));
        }
        catch (InvalidDataException ex) when (!ex.Message.StartsWith(metaPath, StringComparison.Ordinal))
        {
            // The configuration's own check (TaggerConfig.FromJson) does not know the file.
            throw new InvalidDataException($"{metaPath}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or ArgumentException)
        {
            // A field of the wrong kind ("version": "one", a number as an entity type, an entity type with a space).
            throw new InvalidDataException($"{metaPath}: not a valid tagger model's metadata ({ex.Message})", ex);
        }
    }

    /// <summary>Tags sentences (eval mode, no gradients, IOB2-constrained Viterbi).</summary>
    /// <param name="sentences">Tokenised sentences.</param>
    /// <param name="cancellationToken">Stops the pretrained encoder's features (<see cref="TaggerConfig.Encoder"/>) between sentences.</param>
    /// <returns>One IOB2 tag list per sentence, same lengths.</returns>
    public IReadOnlyList<IReadOnlyList<string>> Predict(IReadOnlyList<IReadOnlyList<string>> sentences, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ObjectDisposedException.ThrowIf(_disposed, this);
        PrepareFeatures(sentences, cancellationToken);
        var encoded = new EncodedSentence[sentences.Count];
        for (int i = 0; i < sentences.Count; i++)
        {
            encoded[i] = Encode(sentences[i], null);
        }

        int[][] ids = PredictIds(encoded);
        var result = new IReadOnlyList<string>[sentences.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            result[i] = [.. ids[i].Select(j => Labels.Labels[j])];
        }

        return result;
    }

    internal EncodedSentence Encode(Sentence sentence) => Encode(sentence.Tokens, sentence.Tags) with { OutsideAllowed = OutsideAllowed(sentence.AnnotatedTypes) };

    /// <summary>The labels an O token may carry when only <paramref name="annotatedTypes"/> were marked (null when every type was).</summary>
    internal bool[]? OutsideAllowed(IReadOnlyCollection<string>? annotatedTypes)
    {
        if (annotatedTypes is null)
        {
            return null;
        }

        var allowed = new bool[Labels.Count];
        allowed[0] = true;
        bool any = false;
        for (int i = 1; i < allowed.Length; i++)
        {
            allowed[i] = !annotatedTypes.Contains(Iob.Parse(Labels.Labels[i]).Type);
            any |= allowed[i];
        }

        return any ? allowed : null;
    }

    internal EncodedSentence Encode(IReadOnlyList<string> tokens, IReadOnlyList<string>? tags)
    {
        (long[] words, long[] shapes, long[] ngrams, long[] chars) = _hasher.Encode(tokens);
        long[]? labels = null;
        if (tags is not null)
        {
            labels = new long[tags.Count];
            for (int i = 0; i < tags.Count; i++)
            {
                int index = Labels.IndexOf(tags[i]);
                labels[i] = index < 0 ? 0 : index; // unknown types are trained as O
                if (index > 0 && (i == 0 || !_decoder.Allowed((int)labels[i - 1], index)))
                {
                    // An I-X that starts a chunk (IOB1 style, or after an unknown type mapped to O) is B-X, as in
                    // conlleval; this keeps every gold path valid under the IOB2 constraints of the CRF.
                    labels[i] = Labels.IndexOf("B-" + Iob.Parse(tags[i]).Type);
                }
            }
        }

        return new EncodedSentence(words, shapes, ngrams, chars, labels) { Features = _encoder?.Features(tokens) };
    }

    /// <summary>
    /// With a pretrained encoder (<see cref="TaggerConfig.Encoder"/>), computes the token vectors of every sentence not
    /// yet encoded, as many at a time as torch has threads; without one, nothing. <see cref="Encode(IReadOnlyList{string}, IReadOnlyList{string})"/>
    /// would compute them one by one; this is the same result, sooner. Cancelled, it stops between sentences and throws
    /// <see cref="OperationCanceledException"/> once no sentence is being encoded (<see cref="PretrainedEncoder.Precompute"/>).
    /// </summary>
    internal void PrepareFeatures(IEnumerable<IReadOnlyList<string>> sentences, CancellationToken cancellationToken = default) =>
        _encoder?.Precompute(sentences, torch.get_num_threads(), cancellationToken);

    /// <inheritdoc cref="PrepareFeatures(IEnumerable{IReadOnlyList{string}}, CancellationToken)"/>
    internal void PrepareFeatures(IEnumerable<Sentence> sentences, CancellationToken cancellationToken = default) =>
        PrepareFeatures(sentences.Select(s => s.Tokens), cancellationToken);

    internal int[][] PredictIds(IReadOnlyList<EncodedSentence> encoded, int batchSize = 64)
    {
        var result = new int[encoded.Count][];
        int[] order = [.. Enumerable.Range(0, encoded.Count).OrderBy(i => encoded[i].Length)];
        bool wasTraining = Network.training;
        Network.eval();
        try
        {
            using var noGrad = torch.no_grad();
            (float[] Transitions, float[] Start, float[] End)? crf = Network.Crf?.DecodingScores();
            for (int start = 0; start < order.Length; start += batchSize)
            {
                int[] idx = order[start..Math.Min(order.Length, start + batchSize)];
                var batch = idx.Select(i => encoded[i]).ToArray();
                if (batch.All(s => s.Length == 0))
                {
                    foreach (int i in idx)
                    {
                        result[i] = [];
                    }

                    continue;
                }

                using var scope = torch.NewDisposeScope();
                var tensors = BatchTensors.Create(batch, Config, Device, withLabels: false, 0, null);
                Tensor scores = Network.Forward(tensors);
                if (crf is null)
                {
                    scores = nn.functional.log_softmax(scores, -1);
                }

                scores = scores.cpu().contiguous();
                float[] all = scores.data<float>().ToArray();
                long t = scores.shape[1];
                int n = Labels.Count;
                for (int b = 0; b < idx.Length; b++)
                {
                    int length = batch[b].Length;
                    result[idx[b]] = _decoder.Decode(all.AsSpan((int)(b * t * n), length * n), length,
                        crf?.Transitions, crf?.Start, crf?.End);
                }
            }
        }
        finally
        {
            Network.train(wasTraining);
        }

        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            Network.Dispose();
        }
    }
}
