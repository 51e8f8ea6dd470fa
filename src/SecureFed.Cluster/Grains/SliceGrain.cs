using SecureFed.Cluster.Placement;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// <see cref="ISliceGrain"/>: in memory only. If its silo fails the activation's state is gone, every later call says
/// so, and the round grain aborts the round before anything is revealed.
/// </summary>
[SlicePlacement]
internal sealed class SliceGrain : Grain, ISliceGrain
{
    private readonly ILocalSiloDetails _silo;
    private readonly Front.SiloAgentEndpoint _endpoint;
    private readonly Dictionary<int, uint[]> _held = [];
    private readonly SortedSet<int> _committed = [];
    private int _offset;
    private int _length = -1;
    private int _vectorLength;
    private int _bitWidth;
    private uint[]? _sum;
    private bool _closed;
    private bool _unmasked;

    public SliceGrain(ILocalSiloDetails silo, Front.SiloAgentEndpoint endpoint)
    {
        _silo = silo;
        _endpoint = endpoint;
    }

    public Task OpenAsync(int offset, int length, int vectorLength, int bitWidth)
    {
        if (_length >= 0)
        {
            if (offset != _offset || length != _length || vectorLength != _vectorLength || bitWidth != _bitWidth)
            {
                throw new ClusterProtocolException($"slice {this.GetPrimaryKeyString()} is already open with a different layout");
            }

            return Task.CompletedTask;
        }

        _offset = offset;
        _length = length;
        _vectorLength = vectorLength;
        _bitWidth = bitWidth;
        _sum = new uint[length];
        return Task.CompletedTask;
    }

    public Task<bool> AddChunkAsync(int sender, Orleans.Concurrency.Immutable<uint[]> words)
    {
        uint[] chunk = words.Value;
        ArgumentNullException.ThrowIfNull(chunk, nameof(words));
        RequireOpen();
        if (_closed)
        {
            throw new ClusterProtocolException($"index {sender}: the masked-input stage of slice {this.GetPrimaryKeyString()} is closed");
        }

        if (chunk.Length != _length)
        {
            throw new ClusterProtocolException($"index {sender}: sent {chunk.Length} words for slice {this.GetPrimaryKeyString()}; the slice has {_length}");
        }

        if (_bitWidth < 32)
        {
            uint limit = (1u << _bitWidth) - 1;
            for (int i = 0; i < chunk.Length; i++)
            {
                if (chunk[i] > limit)
                {
                    throw new ClusterProtocolException($"index {sender}: word {_offset + i} is not reduced modulo 2^{_bitWidth}");
                }
            }
        }

        if (_committed.Contains(sender) || _held.TryGetValue(sender, out uint[]? held))
        {
            held = _held.GetValueOrDefault(sender);
            if (held is not null && held.AsSpan().SequenceEqual(chunk))
            {
                return Task.FromResult(false); // an identical retry
            }

            throw new ClusterProtocolException($"index {sender}: already sent its masked input for slice {this.GetPrimaryKeyString()}");
        }

        _held[sender] = chunk;
        return Task.FromResult(true);
    }

    public Task CommitAsync(int sender)
    {
        RequireOpen();
        if (_committed.Contains(sender))
        {
            return Task.CompletedTask;
        }

        if (_closed || !_held.Remove(sender, out uint[]? chunk))
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} holds no masked input of index {sender} to commit");
        }

        ModularVector.Add(_sum!, chunk, _bitWidth);
        _committed.Add(sender);
        return Task.CompletedTask;
    }

    public Task<int[]> CloseAsync()
    {
        RequireOpen();
        bool first = !_closed;
        _closed = true;
        int dropped = _held.Count;
        _held.Clear();
        if (first)
        {
            // Every chunk this slice held is now in its sum or dropped: garbage the size of n slices. Give it back before
            // the unmasking and the end of the round allocate (the slice sent to the coordinator, the coordinator's next model).
            RoundMemory.Release(4L * _length * (_committed.Count + dropped));
        }

        return Task.FromResult(_committed.ToArray());
    }

    public Task UnmaskAsync(MaskRemoval[] removals)
    {
        ArgumentNullException.ThrowIfNull(removals);
        RequireOpen();
        if (!_closed)
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} was asked to unmask before its input stage closed");
        }

        if (!_unmasked)
        {
            foreach (MaskRemoval removal in removals)
            {
                if (removal.Add)
                {
                    MaskPrgWindow.AddTo(removal.Seed, removal.Domain, _bitWidth, _vectorLength, _offset, _sum);
                }
                else
                {
                    MaskPrgWindow.SubtractFrom(removal.Seed, removal.Domain, _bitWidth, _vectorLength, _offset, _sum);
                }

                System.Security.Cryptography.CryptographicOperations.ZeroMemory(removal.Seed);
            }

            _unmasked = true;
        }

        return Task.CompletedTask;
    }

    public Task<Orleans.Concurrency.Immutable<uint[]>> ResultAsync()
    {
        RequireOpen();
        if (!_unmasked)
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} is not unmasked");
        }

        // The slice is the round's output: the activation may go now.
        DeactivateOnIdle();
        return Task.FromResult(new Orleans.Concurrency.Immutable<uint[]>(_sum!));
    }

    public Task<uint[]> WordsAsync(int from, int count)
    {
        RequireOpen();
        if (!_unmasked)
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} is not unmasked");
        }

        if (from < 0 || count < 0 || count > _length - from)
        {
            throw new ClusterProtocolException($"slice {this.GetPrimaryKeyString()}: words [{from}, {(long)from + count}) are not within its {_length} words");
        }

        return Task.FromResult(_sum.AsSpan(from, count).ToArray());
    }

    public Task EndAsync()
    {
        // The slice is the round's output and was read: the activation may go now.
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    public Task<string> SiloAsync() => Task.FromResult(_silo.SiloAddress.ToParsableString());

    public Task<string> EndpointAsync() => Task.FromResult(_endpoint.Url);

    private void RequireOpen()
    {
        if (_length < 0 || _sum is null)
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} has no state (it was never opened, or its silo failed and it was reactivated elsewhere)");
        }
    }
}
