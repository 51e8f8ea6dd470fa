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
/// No I/O; the only whole-model allocation is the next model.
/// </summary>
public sealed class SumFusion
{
    /// <summary>Coordinates decoded at a time for the optimizer (4 KiB of doubles on the stack).</summary>
    private const int DecodeBlock = 512;

    private readonly float[] _baseModel;
    private readonly UpdateCodec _codec;
    private readonly long _totalWeight;
    private readonly double _serverLearningRate;
    private readonly IncrementalHash? _hash;
    private readonly float[] _next;
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
    {
        ArgumentNullException.ThrowIfNull(baseModel);
        ArgumentNullException.ThrowIfNull(codec);
        if (baseModel.Length != codec.ParameterCount)
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
        _next = new float[baseModel.Length];
        _optimizer = optimizer;
        _optimizer?.BeginStep(baseModel.Length);
    }

    /// <summary>Takes the next run of the sum: it must start where the previous one ended (word 0 first).</summary>
    public void Add(int offset, ReadOnlySpan<uint> words)
    {
        if (offset != _position)
        {
            throw new InvalidOperationException($"The sum's words must come in order: a run at word {offset}, expected word {_position}.");
        }

        if (words.Length > _codec.VectorLength - _position)
        {
            throw new InvalidOperationException($"A run of {words.Length} words at word {offset} goes past the sum's {_codec.VectorLength} words.");
        }

        int d = _codec.ParameterCount;
        int coordinates = Math.Clamp(d - offset, 0, words.Length);
        if (coordinates > 0 && _optimizer is not null)
        {
            StepOptimizer(offset, words[..coordinates]);
        }
        else if (coordinates > 0)
        {
            FederatedAveraging.ApplyAggregate(_baseModel.AsSpan(offset, coordinates), _codec, words[..coordinates], _totalWeight, _serverLearningRate, _next.AsSpan(offset, coordinates));
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
    public (float[] Next, string? SumSha256) Complete()
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

        return (_next, sha);
    }

    /// <summary>
    /// The optimizer's step on coordinates [<paramref name="offset"/>, offset + n): decoded a block at a time, each
    /// divided by Σω = W / cap as <see cref="FederatedAveraging.AverageUpdate"/> divides the whole decoded sum.
    /// </summary>
    private void StepOptimizer(int offset, ReadOnlySpan<uint> coordinates)
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

            _optimizer!.StepRun(offset + done, _baseModel.AsSpan(offset + done, count), averaged, _next.AsSpan(offset + done, count));
        }
    }

    private static void Hash(IncrementalHash hash, ReadOnlySpan<uint> words) => WireEncoding.AppendWords(hash, words);
}
