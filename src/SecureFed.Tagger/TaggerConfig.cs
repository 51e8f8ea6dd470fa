using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using RegularFile = SecureFed.Federation.Internal.RegularFile;

namespace SecureFed.Tagger;

/// <summary>
/// Shape of a <see cref="TaggerModel"/>. Every site in a federation must use the same configuration (and the same
/// <see cref="LabelSet"/>) so that their flattened parameter vectors line up. Round-trips through JSON.
/// </summary>
public sealed record TaggerConfig
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>The JSON property names a configuration has (those <see cref="ToJson"/> writes).</summary>
    private static readonly Lazy<string[]> PropertyNames = new(() =>
    {
        using JsonDocument document = JsonDocument.Parse(new TaggerConfig().ToJson());
        return [.. document.RootElement.EnumerateObject().Select(p => p.Name)];
    });

    /// <summary>Hash buckets for normalised words (lower-cased, digits mapped to 0).</summary>
    /// <value>The default value is 16384.</value>
    public int WordBuckets { get; init; } = 16384;

    /// <summary>Hash buckets for character n-grams.</summary>
    /// <value>The default value is 16384.</value>
    public int CharNgramBuckets { get; init; } = 16384;

    /// <summary>Hash buckets for word shapes (e.g. <c>Xxd</c>).</summary>
    /// <value>The default value is 512.</value>
    public int ShapeBuckets { get; init; } = 512;

    /// <summary>Word embedding width.</summary>
    /// <value>The default value is 64.</value>
    public int WordDim { get; init; } = 64;

    /// <summary>Character n-gram embedding width.</summary>
    /// <value>The default value is 48.</value>
    public int CharDim { get; init; } = 48;

    /// <summary>Word-shape embedding width.</summary>
    /// <value>The default value is 16.</value>
    public int ShapeDim { get; init; } = 16;

    /// <summary>Shortest character n-gram (the word is wrapped in <c>&lt;</c> <c>&gt;</c> markers).</summary>
    /// <value>The default value is 2.</value>
    public int MinNgram { get; init; } = 2;

    /// <summary>Longest character n-gram.</summary>
    /// <value>The default value is 5.</value>
    public int MaxNgram { get; init; } = 5;

    /// <summary>At most this many n-grams per token (whole word, prefixes and suffixes first).</summary>
    /// <value>The default value is 32.</value>
    public int MaxNgramsPerToken { get; init; } = 32;

    /// <summary>BiLSTM hidden size per direction.</summary>
    /// <value>The default value is 96.</value>
    public int Hidden { get; init; } = 96;

    /// <summary>BiLSTM layers (dropout <see cref="Dropout"/> between layers).</summary>
    /// <value>The default value is 2.</value>
    public int Layers { get; init; } = 2;

    /// <summary>Dropout on the embeddings and the encoder output during training.</summary>
    /// <value>The default value is 0.5.</value>
    public double Dropout { get; init; } = 0.5;

    /// <summary>Probability of replacing a word id by the unknown bucket during training (teaches the n-gram path).</summary>
    /// <value>The default value is 0.25.</value>
    public double WordDropout { get; init; } = 0.25;

    /// <summary>Character CNN filters (a convolution over hashed character ids, max-pooled per token); 0 disables the character CNN.</summary>
    /// <value>The default value is 0 (off: on NCBI-disease it trained slower and scored lower than without it, next to the n-grams).</value>
    public int CharCnnFilters { get; init; }

    /// <summary>Hash buckets for single characters (character CNN input).</summary>
    /// <value>The default value is 512.</value>
    public int CharBuckets { get; init; } = 512;

    /// <summary>Character embedding width (character CNN input).</summary>
    /// <value>The default value is 24.</value>
    public int CharEmbDim { get; init; } = 24;

    /// <summary>Character CNN window width (odd).</summary>
    /// <value>The default value is 3.</value>
    public int CharCnnWidth { get; init; } = 3;

    /// <summary>At most this many characters per token for the character CNN (with the <c>&lt;</c> <c>&gt;</c> markers; longer tokens keep their first and last halves).</summary>
    /// <value>The default value is 20.</value>
    public int MaxCharsPerToken { get; init; } = 20;

    /// <summary>Linear-chain CRF head (transition, start and end scores are model parameters); false uses a per-token softmax head.</summary>
    /// <value>The default value is true.</value>
    public bool Crf { get; init; } = true;

    /// <summary>
    /// A frozen public pretrained encoder whose per-token vectors are fed to the BiLSTM next to the hashed embeddings:
    /// <c>minilm-l6-v2</c> (all-MiniLM-L6-v2, 384 wide), or "" for none. It is not trained and adds no parameter to
    /// the federated vector, only 4 × Hidden × 384 input weights per direction to the BiLSTM; it comes with the build
    /// (docs/tagger.md "Pretrained encoder").
    /// </summary>
    /// <value>The default value is "" (none).</value>
    public string Encoder { get; init; } = "";

    /// <summary>Default: 2-layer BiLSTM-CRF, about 2.2 M parameters (9 MB as float32), trains on one CPU thread in about 10 minutes on NCBI-disease.</summary>
    public static TaggerConfig Default { get; } = new();

    /// <summary>Very small model for tests and demos (tens of thousands of parameters).</summary>
    public static TaggerConfig Tiny { get; } = new()
    {
        WordBuckets = 2048,
        CharNgramBuckets = 2048,
        ShapeBuckets = 64,
        WordDim = 16,
        CharDim = 16,
        ShapeDim = 4,
        MinNgram = 2,
        MaxNgram = 4,
        MaxNgramsPerToken = 24,
        Hidden = 24,
        Layers = 1,
        Dropout = 0.1,
        WordDropout = 0.05,
        CharCnnFilters = 0,
        Crf = false,
    };

    /// <summary>
    /// The tiny model with a linear-chain CRF head instead of the softmax (L² + 2L transition scores more for L labels:
    /// 15 for one entity type's three BIO labels): the model to train under DP-SGD after a public warm start
    /// (docs/utility.md "Sessions 11 and 12": +2 points at ε = 8, +1 without DP).
    /// </summary>
    public static TaggerConfig TinyCrf { get; } = Tiny with { Crf = true };

    /// <summary>
    /// The tiny model with the frozen public encoder's token vectors (<see cref="Encoder"/> = minilm-l6-v2) as a further
    /// input: public pretraining without a public annotated corpus (docs/utility.md "Session 35").
    /// </summary>
    public static TaggerConfig TinyEncoder { get; } = Tiny with { Encoder = Internal.PretrainedEncoder.MiniLmL6V2 };

    /// <summary>The tiny model with the CRF head and the frozen public encoder.</summary>
    public static TaggerConfig TinyCrfEncoder { get; } = TinyCrf with { Encoder = Internal.PretrainedEncoder.MiniLmL6V2 };

    /// <summary>
    /// The tiny model with the CRF head and the mean of the frozen public encoder's six layers (<c>minilm-l6-v2-mean</c>):
    /// better than the last layer alone, under DP most of all (docs/utility.md, "Session 38").
    /// </summary>
    public static TaggerConfig TinyCrfEncoderMean { get; } = TinyCrf with { Encoder = Internal.PretrainedEncoder.MiniLmL6V2Mean };

    /// <summary>
    /// The most scalar parameters a configuration may have: 2^28 (1 GiB as float32), over a hundred times the default's
    /// 2.2 M. A damaged or mistyped configuration (a bucket count of 2^31 - 1) is refused here, before libtorch is asked
    /// for the memory.
    /// </summary>
    public const long MaxParameterCount = 1L << 28;

    /// <summary>The most hash buckets of any kind: 2^22 (the default has 16384).</summary>
    public const int MaxBuckets = 1 << 22;

    /// <summary>The widest embedding, hidden size or character CNN (the default's widest is 96).</summary>
    public const int MaxWidth = 4096;

    /// <summary>Checks every value: each within its range (sizes at most <see cref="MaxBuckets"/> or <see cref="MaxWidth"/>) and the whole model at most <see cref="MaxParameterCount"/> parameters.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is out of range; the message names it by its C# property name (<c>MaxNgram</c>).</exception>
    public void Validate() => Validate(name => name);

    /// <summary>
    /// <see cref="Validate()"/> with each setting named as <paramref name="settingName"/> spells it: the JSON key
    /// (<c>max_ngram</c>) for a configuration read from JSON, so that the message names what the user wrote.
    /// </summary>
    private void Validate(Func<string, string> settingName)
    {
        Range(WordBuckets, 2, MaxBuckets, settingName(nameof(WordBuckets)));
        Range(CharNgramBuckets, 2, MaxBuckets, settingName(nameof(CharNgramBuckets)));
        Range(ShapeBuckets, 2, MaxBuckets, settingName(nameof(ShapeBuckets)));
        Range(WordDim, 1, MaxWidth, settingName(nameof(WordDim)));
        Range(CharDim, 1, MaxWidth, settingName(nameof(CharDim)));
        Range(ShapeDim, 1, MaxWidth, settingName(nameof(ShapeDim)));
        Range(MinNgram, 1, 64, settingName(nameof(MinNgram)));
        Range(MaxNgram, MinNgram, 64, settingName(nameof(MaxNgram)));
        Range(MaxNgramsPerToken, 1, 4096, settingName(nameof(MaxNgramsPerToken)));
        Range(Hidden, 1, MaxWidth, settingName(nameof(Hidden)));
        Range(Layers, 1, 64, settingName(nameof(Layers)));
        Range(CharCnnFilters, 0, MaxWidth, settingName(nameof(CharCnnFilters)));
        if (CharCnnFilters > 0)
        {
            Range(CharBuckets, 2, MaxBuckets, settingName(nameof(CharBuckets)));
            Range(CharEmbDim, 1, MaxWidth, settingName(nameof(CharEmbDim)));
            Range(CharCnnWidth, 1, 255, settingName(nameof(CharCnnWidth)));
            if (CharCnnWidth % 2 == 0)
            {
                throw new ArgumentOutOfRangeException(settingName(nameof(CharCnnWidth)), CharCnnWidth, $"{settingName(nameof(CharCnnWidth))} must be odd.");
            }

            Range(MaxCharsPerToken, 3, 4096, settingName(nameof(MaxCharsPerToken)));
        }

        if (Encoder is null || !(Encoder.Length == 0 || Internal.PretrainedEncoder.Names.Contains(Encoder)))
        {
            throw new ArgumentOutOfRangeException(settingName(nameof(Encoder)), Encoder,
                $"{settingName(nameof(Encoder))} is {(Encoder is null ? "null" : $"\"{Encoder}\"")}; it must be \"\" (none) or one of {string.Join(", ", Internal.PretrainedEncoder.Names)}.");
        }

        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ArgumentOutOfRangeException(settingName(nameof(Dropout)), Dropout, $"{settingName(nameof(Dropout))} must be in [0, 1).");
        }

        if (!(WordDropout >= 0 && WordDropout < 1))
        {
            throw new ArgumentOutOfRangeException(settingName(nameof(WordDropout)), WordDropout, $"{settingName(nameof(WordDropout))} must be in [0, 1).");
        }

        long count = ParameterCount(0);
        if (count > MaxParameterCount)
        {
            throw new ArgumentOutOfRangeException(settingName(nameof(WordBuckets)), count, string.Create(CultureInfo.InvariantCulture,
                $"the configuration has {count} parameters ({count * sizeof(float)} bytes as float32), more than the {MaxParameterCount} a tagger may have; the sizes (buckets, dims, hidden, layers) are damaged or far too large."));
        }
    }

    /// <summary>The JSON key of the property <paramref name="propertyName"/> (<c>MaxNgram</c> → <c>max_ngram</c>), as <see cref="ToJson"/> writes it.</summary>
    private static string JsonName(string propertyName) => JsonOptions.PropertyNamingPolicy!.ConvertName(propertyName);

    /// <summary>
    /// The number of scalar parameters of a model of this shape with <paramref name="labelCount"/> output labels (what
    /// <see cref="TaggerModel.ParameterCount"/> will be), computed without building the model. Sizes are not checked.
    /// </summary>
    /// <param name="labelCount">The number of output labels (<see cref="LabelSet.Count"/>).</param>
    /// <returns>The parameter count.</returns>
    public long ParameterCount(int labelCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(labelCount);
        long count = ((long)WordBuckets * WordDim) + ((long)ShapeBuckets * ShapeDim) + ((long)CharNgramBuckets * CharDim);
        if (CharCnnFilters > 0)
        {
            count += ((long)CharBuckets * CharEmbDim) + ((long)CharCnnFilters * CharEmbDim * CharCnnWidth) + CharCnnFilters;
        }

        long gates = 4L * Hidden;
        for (int layer = 0; layer < Layers; layer++)
        {
            long input = layer == 0 ? InputDim : 2L * Hidden;
            count += 2 * ((gates * input) + (gates * Hidden) + (2 * gates)); // both directions: weight_ih, weight_hh, bias_ih, bias_hh
        }

        count += (2L * Hidden * labelCount) + labelCount;
        if (Crf)
        {
            count += ((long)labelCount * labelCount) + (2L * labelCount);
        }

        return count;
    }

    private static void Range(int value, int min, int max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, string.Create(CultureInfo.InvariantCulture, $"{name} is {value}; it must be from {min} to {max}."));
        }
    }

    /// <summary>Serialises to indented snake_case JSON.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>The built-in configurations <see cref="Resolve"/> takes by name, as messages list them.</summary>
    private const string BuiltInNames = "default, tiny, tiny-crf, tiny-encoder, tiny-crf-encoder or tiny-crf-encoder-mean";

    /// <summary>
    /// Resolves a configuration given by name (<c>tiny</c>, <c>tiny-crf</c>, <c>tiny-encoder</c>, <c>tiny-crf-encoder</c>, <c>default</c>, any case) or as the path of a JSON file written by
    /// <see cref="ToJson"/>.
    /// </summary>
    /// <param name="nameOrPath">A configuration name or a JSON file's path.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="InvalidDataException">It is neither name nor an existing file (a folder is named as one), or the file is not a valid configuration (or another kind of file, such as a model specification); the message names the file and says which.</exception>
    public static TaggerConfig Resolve(string nameOrPath)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        switch (nameOrPath.Trim().ToUpperInvariant())
        {
            case "DEFAULT":
                return Default;
            case "TINY":
                return Tiny;
            case "TINY-CRF":
                return TinyCrf;
            case "TINY-ENCODER":
                return TinyEncoder;
            case "TINY-CRF-ENCODER":
                return TinyCrfEncoder;
            case "TINY-CRF-ENCODER-MEAN":
                return TinyCrfEncoderMean;
        }

        if (string.IsNullOrWhiteSpace(nameOrPath))
        {
            throw new InvalidDataException($"is blank; give {BuiltInNames.Replace(" or ", ", ", StringComparison.Ordinal)} or a JSON file of tagger settings");
        }

        if (Directory.Exists(nameOrPath))
        {
            throw new InvalidDataException($"{Path.GetFullPath(nameOrPath)} is a folder; give a JSON file of tagger settings (as TaggerConfig.ToJson writes it) or {BuiltInNames}");
        }

        if (!File.Exists(nameOrPath))
        {
            throw new InvalidDataException($"must be {BuiltInNames.Replace(" or ", ", ", StringComparison.Ordinal)} or an existing JSON file (not found: {Path.GetFullPath(nameOrPath)})");
        }

        // A named pipe "exists" too, and reading one waited for a writer forever; a device had no end.
        if (RegularFile.NonRegularKind(nameOrPath) is { } kind)
        {
            throw new InvalidDataException($"{Path.GetFullPath(nameOrPath)}{RegularFile.LinkText(nameOrPath)} is {kind}, not a regular file; give a JSON file of tagger settings (as TaggerConfig.ToJson writes it) or {BuiltInNames}");
        }

        try
        {
            return FromJson(File.ReadAllText(nameOrPath));
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException($"{nameOrPath}: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Parses JSON written by <see cref="ToJson"/> and validates it. Properties left out keep their defaults; a property
    /// a configuration does not have is an error naming it, and so is a JSON file of another kind (a model specification
    /// of <c>securefed model spec</c>, an empty object), rather than silently the default configuration.
    /// </summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="InvalidDataException">The JSON is not a valid configuration.</exception>
    public static TaggerConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        RequireConfigShape(json);
        TaggerConfig? config;
        try
        {
            config = JsonSerializer.Deserialize<TaggerConfig>(json, JsonOptions);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"tagger config is not valid JSON: {ex.Message}", ex);
        }

        if (config is null)
        {
            throw new InvalidDataException("tagger config JSON is null");
        }

        try
        {
            config.Validate(JsonName); // named as in the JSON the user wrote (max_ngram, not MaxNgram)
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new InvalidDataException($"tagger config is invalid: {ex.Message.Split(" (Parameter", 2)[0]}", ex);
        }

        return config;
    }

    /// <summary>Refuses JSON that is not a tagger configuration, saying what it is when that is known.</summary>
    private static void RequireConfigShape(string json)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"tagger config is not valid JSON: {ex.Message}", ex);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"tagger config must be a JSON object of settings ({string.Join(", ", PropertyNames.Value)}), not a JSON {root.ValueKind.ToString().ToLowerInvariant()}");
            }

            if (root.TryGetProperty("config", out JsonElement inner) && inner.ValueKind == JsonValueKind.Object && root.TryGetProperty("entity_types", out _))
            {
                throw new InvalidDataException(
                    "this is a model specification (written by 'securefed model spec': a tagger config under \"config\" plus \"entity_types\"), not a tagger config; " +
                    "the aggregator and agents take it as their ModelSpec setting (aggregator.json, agent.json). To train a tagger of that shape, " +
                    "pass its size name (default, tiny, tiny-crf) or save its \"config\" object as a file of its own");
            }

            string[] unknown = [.. root.EnumerateObject().Select(p => p.Name).Where(n => !PropertyNames.Value.Contains(n, StringComparer.Ordinal))];
            if (unknown.Length > 0)
            {
                throw new InvalidDataException(
                    $"tagger config has unknown propert{(unknown.Length == 1 ? "y" : "ies")} {string.Join(", ", unknown.Select(n => $"\"{n}\""))}; " +
                    $"a tagger config (as TaggerConfig.ToJson writes it) has only {string.Join(", ", PropertyNames.Value)}");
            }

            if (!root.EnumerateObject().Any())
            {
                throw new InvalidDataException($"tagger config is an empty JSON object; name at least one setting ({string.Join(", ", PropertyNames.Value)}) or use default, tiny or tiny-crf");
            }
        }
    }

    /// <summary>Total embedding width fed to the encoder.</summary>
    [JsonIgnore]
    public int InputDim => WordDim + CharDim + ShapeDim + CharCnnFilters + EncoderDim; // each at most MaxWidth: no overflow

    /// <summary>Width of the <see cref="Encoder"/>'s token vectors (0 without one).</summary>
    [JsonIgnore]
    public int EncoderDim => Encoder is { Length: > 0 } name && Internal.PretrainedEncoder.Names.Contains(name) ? Internal.PretrainedEncoder.DimOf(name) : 0;
}
