using System.Security.Cryptography;
using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>
/// The next model from an unmasked sum read a run of words at a time, in order (<see cref="UnmaskedSum.ReadInOrderAsync"/>):
/// each run's coordinates go through <see cref="FederatedAveraging.ApplyAggregate(ReadOnlySpan{float}, UpdateCodec, ReadOnlySpan{uint}, long, double, Span{float})"/>
/// into their place in the next model, so the model is the whole-vector result bit for bit (the rule is per coordinate,
/// with the public W decoded from the tail first); optionally the runs are hashed in order into the whole sum's SHA-256.
/// With a <see cref="ServerOptimizer"/> (the aggregator's momentum or adam rule, <see cref="ServerUpdateRule"/>) each run
/// is decoded a block at a time into the averaged update exactly as <see cref="FederatedAveraging.AverageUpdate"/> does
/// (the summed coordinate divided by Σω = W / cap) and stepped by <see cref="ServerOptimizer.StepRun"/>, so the model and
/// the moments are <see cref="ServerOptimizer.Step"/>'s on the whole averaged update, bit for bit.
/// No I/O. Two ways to use it: with the base model in memory (<see cref="SumFusion(float[], UpdateCodec, long, double, bool, ServerOptimizer?)"/>,
/// <see cref="Add(int, ReadOnlySpan{uint})"/>, <see cref="Complete"/>), whose only whole-model allocation is the next
/// model; or run by run (<see cref="SumFusion(UpdateCodec, long, double, bool, ServerOptimizer?)"/>,
/// <see cref="Add(int, ReadOnlySpan{uint}, ReadOnlySpan{float}, Span{float})"/>, <see cref="CompleteRuns"/>), where the
/// caller hands in each run's base coordinates and receives its next coordinates, so that neither model need be whole in
/// memory (the aggregator reads the base from its round store and writes the next model out as it comes:
/// <see cref="Persistence.StoredModelFusion"/>). Both give the same model bit for bit.
/// </summary>
public sealed class SumFusion
{
    /// <summary>Coordinates decoded at a time for the optimizer (4 KiB of doubles on the stack).</summary>
    private const int DecodeBlock = 512;

    private readonly float[]? _baseModel;
    private readonly UpdateCodec _codec;
    private readonly long _totalWeight;
    private readonly double _serverLearningRate;
    private readonly IncrementalHash? _hash;
    private readonly float[]? _next;
    private readonly ServerOptimizer? _optimizer;
    private int _position;

    /// <summary>Starts the fusion of a sum whose total weight (from its tail) is <paramref name="totalWeight"/>.</summary>
    /// <exception cref="RoundAbortedException">The total weight is not positive.</exception>
    public SumFusion(float[] baseModel, UpdateCodec codec, long totalWeight, double serverLearningRate, bool digest)
        : this(baseModel, codec, totalWeight, serverLearningRate, digest, optimizer: null)
    {
    }

    /// <summary>
    /// As above, the next model given by <paramref name="optimizer"/>'s step on the averaged update (its own learning
    /// rate; <paramref name="serverLearningRate"/> is not used), or by FedAvg when it is null. The optimizer's moments are
    /// updated in place as the runs come; its step ends with <see cref="Complete"/>.
    /// </summary>
    /// <exception cref="RoundAbortedException">The total weight is not positive.</exception>
    public SumFusion(float[] baseModel, UpdateCodec codec, long totalWeight, double serverLearningRate, bool digest, ServerOptimizer? optimizer)
        : this(codec, totalWeight, serverLearningRate, digest, optimizer, baseModel ?? throw new ArgumentNullException(nameof(baseModel)))
    {
    }

    /// <summary>
    /// As <see cref="SumFusion(float[], UpdateCodec, long, double, bool, ServerOptimizer?)"/>, run by run: no model is
    /// held or allocated here; each run's base coordinates come with it and its next coordinates are written into the
    /// caller's span (<see cref="Add(int, ReadOnlySpan{uint}, ReadOnlySpan{float}, Span{float})"/>).
    /// </summary>
    /// <exception cref="RoundAbortedException">The total weight is not positive.</exception>
    public SumFusion(UpdateCodec codec, long totalWeight, double serverLearningRate, bool digest, ServerOptimizer? optimizer)
        : this(codec, totalWeight, serverLearningRate, digest, optimizer, baseModel: null)
    {
    }

    private SumFusion(UpdateCodec codec, long totalWeight, double serverLearningRate, bool digest, ServerOptimizer? optimizer, float[]? baseModel)
    {
        ArgumentNullException.ThrowIfNull(codec);
        if (baseModel is not null && baseModel.Length != codec.ParameterCount)
        {
            throw new ArgumentException($"The base model has {baseModel.Length} parameters; the codec expects {codec.ParameterCount}.", nameof(baseModel));
        }

        if (totalWeight <= 0)
        {
            throw new RoundAbortedException(ProtocolStage.Unmasking, $"the aggregated weight is {totalWeight}; nothing to average");
        }

        _baseModel = baseModel;
        _codec = codec;
        _totalWeight = totalWeight;
        _serverLearningRate = serverLearningRate;
        _hash = digest ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        _next = baseModel is null ? null : new float[baseModel.Length];
        _optimizer = optimizer;
        _optimizer?.BeginStep(codec.ParameterCount);
    }

    /// <summary>The model's parameter count.</summary>
    public int ParameterCount => _codec.ParameterCount;

    /// <summary>How many of a run's words, at word <paramref name="offset"/>, are coordinates of the model (the rest is the tail).</summary>
    public int CoordinatesIn(int offset, int length) => Math.Clamp(_codec.ParameterCount - offset, 0, length);

    /// <summary>Takes the next run of the sum: it must start where the previous one ended (word 0 first).</summary>
    /// <exception cref="InvalidOperationException">The run is out of order or too long, or this fusion was started run by run.</exception>
    public void Add(int offset, ReadOnlySpan<uint> words)
    {
        if (_baseModel is null)
        {
            throw new InvalidOperationException("This fusion was started without the base model: each run must come with its base coordinates and a place for the next ones.");
        }

        int coordinates = CheckRun(offset, words.Length);
        if (coordinates == 0)
        {
            AddCore(offset, words, [], []); // a run of the tail (offset may lie past the model's end)
            return;
        }

        AddCore(offset, words, _baseModel.AsSpan(offset, coordinates), _next!.AsSpan(offset, coordinates));
    }

    /// <summary>
    /// Takes the next run of the sum (it must start where the previous one ended, word 0 first) with the base model's
    /// coordinates of that run, <paramref name="baseCoordinates"/> (exactly <see cref="CoordinatesIn"/> of them: none for
    /// a run of the tail), and writes the next model's coordinates of that run into <paramref name="nextCoordinates"/>
    /// (as many). The two spans must not overlap.
    /// </summary>
    /// <exception cref="InvalidOperationException">The run is out of order or too long, or this fusion holds the base model itself.</exception>
    /// <exception cref="ArgumentException">A span's length is not the run's number of coordinates, or the spans overlap.</exception>
    public void Add(int offset, ReadOnlySpan<uint> words, ReadOnlySpan<float> baseCoordinates, Span<float> nextCoordinates)
    {
        if (_baseModel is not null)
        {
            throw new InvalidOperationException("This fusion holds the base model: add runs with Add(offset, words).");
        }

        int coordinates = CheckRun(offset, words.Length);
        if (baseCoordinates.Length != coordinates || nextCoordinates.Length != coordinates)
        {
            throw new ArgumentException(
                $"The run at word {offset} holds {coordinates} coordinates of the model; given {baseCoordinates.Length} base and {nextCoordinates.Length} next coordinates.",
                nameof(baseCoordinates));
        }

        if (baseCoordinates.Overlaps(nextCoordinates))
        {
            throw new ArgumentException("The base and next coordinates of a run must not overlap.", nameof(nextCoordinates));
        }

        AddCore(offset, words, baseCoordinates, nextCoordinates);
    }

    private int CheckRun(int offset, int length)
    {
        if (offset != _position)
        {
            throw new InvalidOperationException($"The sum's words must come in order: a run at word {offset}, expected word {_position}.");
        }

        if (length > _codec.VectorLength - _position)
        {
            throw new InvalidOperationException($"A run of {length} words at word {offset} goes past the sum's {_codec.VectorLength} words.");
        }

        return CoordinatesIn(offset, length);
    }

    private void AddCore(int offset, ReadOnlySpan<uint> words, ReadOnlySpan<float> baseCoordinates, Span<float> nextCoordinates)
    {
        int coordinates = baseCoordinates.Length;
        if (coordinates > 0 && _optimizer is not null)
        {
            StepOptimizer(offset, words[..coordinates], baseCoordinates, nextCoordinates);
        }
        else if (coordinates > 0)
        {
            FederatedAveraging.ApplyAggregate(baseCoordinates, _codec, words[..coordinates], _totalWeight, _serverLearningRate, nextCoordinates);
        }

        if (_hash is not null)
        {
            Hash(_hash, words);
        }

        _position += words.Length;
    }

    /// <summary>
    /// The next model, once every word of the sum came (<see cref="Add"/>), and the sum's SHA-256 (lower-case hex of the
    /// little-endian u32 words, as <see cref="WireEncoding.VectorDigest"/>) when asked for, else null.
    /// </summary>
    /// <exception cref="InvalidOperationException">Words are missing, or this fusion was started run by run (<see cref="CompleteRuns"/>).</exception>
    public (float[] Next, string? SumSha256) Complete()
    {
        if (_next is null)
        {
            throw new InvalidOperationException("This fusion was started without the base model: the next model is in the caller's runs; end it with CompleteRuns().");
        }

        return (_next, CompleteRuns());
    }

    /// <summary>
    /// Ends the fusion once every word of the sum came: the optimizer's step ends, and the sum's SHA-256 is returned when
    /// asked for, else null. The next model is what the runs received (run by run), or <see cref="Complete"/>'s.
    /// </summary>
    /// <exception cref="InvalidOperationException">Words are missing.</exception>
    public string? CompleteRuns()
    {
        if (_position != _codec.VectorLength)
        {
            throw new InvalidOperationException($"The sum was read up to word {_position} of {_codec.VectorLength}.");
        }

        _optimizer?.EndStep();
        string? sha = null;
        if (_hash is not null)
        {
            sha = Convert.ToHexStringLower(_hash.GetHashAndReset());
            _hash.Dispose();
        }

        return sha;
    }

    /// <summary>
    /// The optimizer's step on coordinates [<paramref name="offset"/>, offset + n): decoded a block at a time, each
    /// divided by Σω = W / cap as <see cref="FederatedAveraging.AverageUpdate"/> divides the whole decoded sum.
    /// </summary>
    private void StepOptimizer(int offset, ReadOnlySpan<uint> coordinates, ReadOnlySpan<float> baseCoordinates, Span<float> nextCoordinates)
    {
        double omegaSum = (double)_totalWeight / _codec.WeightCap;
        Span<double> block = stackalloc double[DecodeBlock];
        for (int done = 0; done < coordinates.Length; done += DecodeBlock)
        {
            int count = Math.Min(DecodeBlock, coordinates.Length - done);
            Span<double> averaged = block[..count];
            _codec.DecodeCoordinates(coordinates.Slice(done, count), averaged);
            for (int i = 0; i < count; i++)
            {
                averaged[i] /= omegaSum;
            }

            _optimizer!.StepRun(offset + done, baseCoordinates.Slice(done, count), averaged, nextCoordinates.Slice(done, count));
        }
    }

    private static void Hash(IncrementalHash hash, ReadOnlySpan<uint> words) => WireEncoding.AppendWords(hash, words);
}
