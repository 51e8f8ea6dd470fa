using SecureFed.Cluster.Placement;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// <see cref="ISliceGrain"/>: its sum in memory, each uncommitted chunk on local disk. A chunk is added into the running
/// sum while it arrives and spilled (<see cref="SliceSpill"/>) only so that it can be subtracted again if its sender is
/// not committed on every slice by the close of the stage; so the sum after the close holds exactly the committed senders'
/// chunks, as when chunks were held in memory until their commit. If its silo fails the activation's state is gone, every
/// later call says so, and the round grain aborts the round before anything is revealed; if a spill cannot be written or
/// read back, the slice says so on every later call and the round aborts as well.
/// </summary>
[SlicePlacement]
internal sealed class SliceGrain : Grain, ISliceGrain
{
    private readonly ILocalSiloDetails _silo;
    private readonly Front.SiloAgentEndpoint _endpoint;
    private readonly SliceSpillStore _spills;
    private readonly Front.SiloRounds _rounds;
    private readonly RoundGrainOptions _options;
    private readonly Dictionary<int, Upload> _uploads = [];
    private readonly Dictionary<int, Added> _added = [];
    private readonly SortedSet<int> _committed = [];
    private long _nextUpload;
    private long _wholeChunkBytes;
    private int _offset;
    private int _length = -1;
    private int _vectorLength;
    private int _bitWidth;
    private uint[]? _sum;
    private bool _closed;
    private bool _unmasked;
    private string? _failed;

    public SliceGrain(ILocalSiloDetails silo, Front.SiloAgentEndpoint endpoint, SliceSpillStore spills, Front.SiloRounds rounds, RoundGrainOptions options)
    {
        _options = options;
        _silo = silo;
        _endpoint = endpoint;
        _spills = spills;
        _rounds = rounds;
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

        // No call reaches an open slice between the round's opening and the first upload (the training, the keys, the
        // shares): it must not be collected as idle meanwhile (its state would go with it and the round abort at the first
        // upload). Its round's end deactivates it (DiscardAsync, ResultAsync, EndAsync).
        DelayDeactivation(_options.KeptWhileOpen);
        if (ClusterKeys.TryParseSlice(this.GetPrimaryKeyString(), out string federation, out long round))
        {
            // This silo's front takes uploads for this round from now on (and refuses rounds it never opened).
            _rounds.Opened(federation, round);
        }

        return Task.CompletedTask;
    }

    public async Task<bool> AddChunkAsync(int sender, Orleans.Concurrency.Immutable<uint[]> words)
    {
        uint[] chunk = words.Value;
        ArgumentNullException.ThrowIfNull(chunk, nameof(words));
        RequireInputStage(sender);
        if (chunk.Length != _length)
        {
            throw new ClusterProtocolException($"index {sender}: sent {chunk.Length} words for slice {this.GetPrimaryKeyString()}; the slice has {_length}");
        }

        string sha = Convert.ToHexStringLower(WireEncoding.VectorDigest(chunk));
        long upload = await BeginChunkAsync(sender, sha).ConfigureAwait(true);
        _wholeChunkBytes += 4L * chunk.Length;
        await AddPieceAsync(sender, upload, 0, words, chunk.Length).ConfigureAwait(true);
        return await EndChunkAsync(sender, upload).ConfigureAwait(true);
    }

    public async Task<long> BeginChunkAsync(int sender, string sha256)
    {
        ArgumentNullException.ThrowIfNull(sha256);
        RequireInputStage(sender);
        if (sha256.Length != 64)
        {
            throw new ClusterProtocolException($"index {sender}: the SHA-256 of a chunk of slice {this.GetPrimaryKeyString()} must be 64 hex digits");
        }

        string sha = sha256.ToLowerInvariant();
        bool retry = false;
        if (_added.TryGetValue(sender, out Added? added))
        {
            if (!string.Equals(added.Sha, sha, StringComparison.Ordinal))
            {
                throw new ClusterProtocolException($"index {sender}: already sent its masked input for slice {this.GetPrimaryKeyString()}");
            }

            retry = true; // its words are read and checked against the digest, and not added
        }

        if (_uploads.Remove(sender, out Upload? superseded))
        {
            // A new upload of the same chunk (the sender retried while its first attempt was still open): the first one's
            // words leave the sum and its later pieces are refused.
            await UndoAsync(superseded).ConfigureAwait(true);
        }

        SliceSpill? spill = null;
        if (!retry)
        {
            try
            {
                spill = _spills.Create(this.GetPrimaryKeyString(), sender);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw Fail(sender, _spills.Directory, ex);
            }
        }

        var upload = new Upload(++_nextUpload, sha, spill);
        _uploads[sender] = upload;
        return upload.Id;
    }

    public async Task AddPieceAsync(int sender, long upload, int offset, Orleans.Concurrency.Immutable<uint[]> words, int count)
    {
        uint[] piece = words.Value;
        ArgumentNullException.ThrowIfNull(piece, nameof(words));
        RequireInputStage(sender);
        Upload current = Current(sender, upload);
        if (offset != current.Received || count < 0 || count > piece.Length || count > _length - offset)
        {
            await DropAsync(sender, current).ConfigureAwait(true);
            throw new ClusterProtocolException($"index {sender}: words [{offset}, {(long)offset + count}) of slice {this.GetPrimaryKeyString()} arrived when {current.Received} of its {_length} words had been received");
        }

        ReadOnlyMemory<uint> words32 = piece.AsMemory(0, count);
        if (_bitWidth < 32)
        {
            uint limit = (1u << _bitWidth) - 1;
            ReadOnlySpan<uint> span = words32.Span;
            for (int i = 0; i < span.Length; i++)
            {
                if (span[i] > limit)
                {
                    await DropAsync(sender, current).ConfigureAwait(true);
                    throw new ClusterProtocolException($"index {sender}: word {_offset + offset + i} is not reduced modulo 2^{_bitWidth}");
                }
            }
        }

        WireEncoding.AppendWords(current.Hash, words32.Span);
        if (current.Spill is SliceSpill spill)
        {
            // Spilled first, then added: a word in the sum can always be subtracted again.
            try
            {
                await spill.AppendAsync(words32, CancellationToken.None).ConfigureAwait(true);
            }
            catch (IOException ex)
            {
                throw Fail(sender, spill.Path, ex);
            }

            ModularVector.Add(_sum.AsSpan(offset, count), words32.Span, _bitWidth);
        }

        current.Received += count;
    }

    public async Task<bool> EndChunkAsync(int sender, long upload)
    {
        RequireInputStage(sender);
        Upload current = Current(sender, upload);
        if (current.Received != _length)
        {
            await DropAsync(sender, current).ConfigureAwait(true);
            throw new ClusterProtocolException($"index {sender}: sent {current.Received} words for slice {this.GetPrimaryKeyString()}; the slice has {_length}");
        }

        string digest = Convert.ToHexStringLower(current.Hash.GetHashAndReset());
        if (!string.Equals(digest, current.Sha, StringComparison.Ordinal))
        {
            await DropAsync(sender, current).ConfigureAwait(true);
            throw new ClusterProtocolException($"index {sender}: the words of slice {this.GetPrimaryKeyString()} do not match the SHA-256 announced for them");
        }

        _uploads.Remove(sender);
        current.Hash.Dispose();
        if (current.Spill is null)
        {
            return false; // an identical retry
        }

        _added[sender] = new Added(current.Sha, current.Spill);
        return true;
    }

    public async Task AbandonChunkAsync(int sender, long upload)
    {
        if (_uploads.TryGetValue(sender, out Upload? current) && current.Id == upload && _failed is null)
        {
            await DropAsync(sender, current).ConfigureAwait(true);
        }
    }

    public Task CommitAsync(int sender)
    {
        RequireOpen();
        if (_committed.Contains(sender))
        {
            return Task.CompletedTask;
        }

        if (_failed is not null)
        {
            throw new ClusterRoundAbortedException(_failed);
        }

        if (_closed || !_added.TryGetValue(sender, out Added? added))
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} holds no masked input of index {sender} to commit");
        }

        // Its words stay in the sum for good: the spill is no longer needed.
        added.Spill?.Dispose();
        added.Spill = null;
        _committed.Add(sender);
        return Task.CompletedTask;
    }

    public async Task<int[]> CloseAsync()
    {
        RequireOpen();
        if (_failed is not null)
        {
            throw new ClusterRoundAbortedException(_failed);
        }

        if (!_closed)
        {
            _closed = true;

            // Every chunk not committed (its sender's other slices did not all arrive, an upload was cut) leaves the sum.
            foreach ((int sender, Upload upload) in _uploads.ToArray())
            {
                await DropAsync(sender, upload).ConfigureAwait(true);
            }

            foreach ((int sender, Added added) in _added.Where(a => !_committed.Contains(a.Key)).ToArray())
            {
                await SubtractAsync(sender, added.Spill).ConfigureAwait(true);
                _added.Remove(sender);
            }

            if (_failed is not null)
            {
                throw new ClusterRoundAbortedException(_failed);
            }

            // Chunks handed over whole (the coordinator's own uploads, AddChunkAsync) are garbage now: give them back
            // before the unmasking and the end of the round allocate.
            RoundMemory.Release(_wholeChunkBytes);
        }

        return [.. _committed];
    }

    public Task DiscardAsync()
    {
        _failed ??= $"slice {this.GetPrimaryKeyString()}: the round was aborted";
        DisposeSpills();
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        DisposeSpills();
        return base.OnDeactivateAsync(reason, cancellationToken);
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

    private void RequireInputStage(int sender)
    {
        RequireOpen();
        if (_failed is not null)
        {
            throw new ClusterRoundAbortedException(_failed);
        }

        if (_closed)
        {
            throw new ClusterProtocolException($"index {sender}: the masked-input stage of slice {this.GetPrimaryKeyString()} is closed");
        }
    }

    private Upload Current(int sender, long upload)
        => _uploads.TryGetValue(sender, out Upload? current) && current.Id == upload
            ? current
            : throw new ClusterProtocolException($"index {sender}: upload {upload} of slice {this.GetPrimaryKeyString()} is not open (it ended, or a newer upload of the same chunk replaced it)");

    /// <summary>Ends an upload that will not be completed: its words leave the sum.</summary>
    private async Task DropAsync(int sender, Upload upload)
    {
        _uploads.Remove(sender);
        await UndoAsync(upload).ConfigureAwait(true);
    }

    private async Task UndoAsync(Upload upload)
    {
        upload.Hash.Dispose();
        await SubtractAsync(-1, upload.Spill).ConfigureAwait(true);
    }

    private async Task SubtractAsync(int sender, SliceSpill? spill)
    {
        if (spill is null)
        {
            return;
        }

        try
        {
            if (_failed is null)
            {
                await spill.SubtractFromAsync(_sum.AsMemory(), _bitWidth, CancellationToken.None).ConfigureAwait(true);
            }
        }
        catch (IOException ex)
        {
            _ = Fail(sender, spill.Path, ex);
        }
        finally
        {
            spill.Dispose();
        }
    }

    /// <summary>
    /// The sum can no longer be made to hold exactly the committed chunks: every later call says why, and the round aborts
    /// (the close of its input stage fails at the latest) before anything is revealed.
    /// </summary>
    private ClusterRoundAbortedException Fail(int sender, string path, Exception ex)
    {
        _failed ??= $"slice {this.GetPrimaryKeyString()} could not spill the masked input of index {sender} to local disk ({path}: {ex.GetType().Name}: {ex.Message}); "
            + "its sum can no longer leave out a sender that is not committed, so the round must abort (is the disk full?)";
        DisposeSpills();
        return new ClusterRoundAbortedException(_failed);
    }

    private void DisposeSpills()
    {
        foreach (Upload upload in _uploads.Values)
        {
            upload.Hash.Dispose();
            upload.Spill?.Dispose();
        }

        foreach (Added added in _added.Values)
        {
            added.Spill?.Dispose();
            added.Spill = null;
        }

        _uploads.Clear();
    }

    private void RequireOpen()
    {
        if (_length < 0 || _sum is null)
        {
            throw new ClusterRoundAbortedException($"slice {this.GetPrimaryKeyString()} has no state (it was never opened, or its silo failed and it was reactivated elsewhere)");
        }
    }

    private sealed class Upload(long id, string sha, SliceSpill? spill)
    {
        public long Id { get; } = id;

        public string Sha { get; } = sha;

        /// <summary>Null for an identical retry of an added chunk: its words are checked, not added.</summary>
        public SliceSpill? Spill { get; } = spill;

        public System.Security.Cryptography.IncrementalHash Hash { get; } = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);

        public int Received { get; set; }
    }

    private sealed class Added(string sha, SliceSpill spill)
    {
        public string Sha { get; } = sha;

        /// <summary>Null once committed (or discarded).</summary>
        public SliceSpill? Spill { get; set; } = spill;
    }
}
