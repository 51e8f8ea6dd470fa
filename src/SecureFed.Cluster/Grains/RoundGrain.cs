using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Grains;

/// <summary>
/// <see cref="IRoundGrain"/>: hosts one sliced <see cref="ServerRound"/> (the protocol state machine is unchanged; the
/// grain only forwards). Its state is in memory: when its silo fails, the reactivated grain has no round and answers
/// every call with <see cref="ClusterRoundAbortedException"/>, and the driver (<see cref="ClusterRoundClient"/>) records
/// the round as aborted in the ledger. When the round ends (completed or aborted) the grain releases its
/// <see cref="ServerRound"/> (the keys, the n(n−1) encrypted shares, the signatures: tens of MiB at hundreds of sites) at
/// once and keeps only the outcome (and what it needs to tell an agent's retry from a late message), which it answers late calls with, for <see cref="RoundGrainOptions.KeptAfterEnd"/>;
/// then the activation is deactivated, however often it is called.
/// </summary>
internal sealed partial class RoundGrain : Grain, IRoundGrain
{
    private readonly ILogger<RoundGrain> _logger;
    private readonly TimeProvider _time;
    private readonly RoundGrainOptions _options;
    private ClusterRoundSpec? _spec;
    private ServerRound? _server;
    private Ended? _ended;
    private IGrainTimer? _endTimer;
    private SliceLayout? _layout;
    private Dictionary<int, HashSet<int>> _delivered = [];
    private Dictionary<int, string[]> _digests = [];
    private bool _wholeInputsOnly;

    public RoundGrain(ILogger<RoundGrain> logger, TimeProvider time, RoundGrainOptions options)
    {
        _logger = logger;
        _time = time;
        _options = options;
    }

    public async Task OpenAsync(ClusterRoundSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (_spec is not null)
        {
            if (_spec.Round != spec.Round || !string.Equals(_spec.SessionId, spec.SessionId, StringComparison.Ordinal))
            {
                throw new ClusterProtocolException($"round {this.GetPrimaryKeyString()} is already open with session {_spec.SessionId}");
            }

            return;
        }

        RoundParameters parameters = spec.ToParameters();
        if (!string.Equals(ClusterKeys.Round(parameters.FederationId, parameters.Round), this.GetPrimaryKeyString(), StringComparison.Ordinal))
        {
            throw new ClusterProtocolException($"the spec of round {parameters.Round} of '{parameters.FederationId}' was sent to grain {this.GetPrimaryKeyString()}");
        }

        SliceLayout layout = spec.Layout;
        try
        {
            await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(k =>
                Slice(k).OpenAsync(layout.Offset(k), layout.Length(k), parameters.VectorLength, parameters.BitWidth))).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            // The round is not opened (the coordinator records the attempt as failed): the slices that did open must not
            // stay open, each holding its sum and kept from the idle collector for KeptWhileOpen (30 hours). Waited for a
            // little (an unreachable slice has nothing to discard), then the open fails with its own reason.
            try
            {
                await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(k => Slice(k).DiscardAsync()))
                    .WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(true);
            }
            catch (Exception discard) when (discard is not OutOfMemoryException)
            {
                Log.DiscardAfterFailedOpen(_logger, this.GetPrimaryKeyString(), discard.GetType().Name);
            }

            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(ex);
            throw;
        }
        _server = ServerRound.ForSlicedInput(parameters);
        _layout = layout;
        _spec = spec;

        // Not collected while the round is open, however long a stage goes without a call (the end deactivates it).
        DelayDeactivation(_options.KeptWhileOpen);
        _delivered = [];
        _digests = [];
        _wholeInputsOnly = false;
        Log.Opened(_logger, this.GetPrimaryKeyString(), parameters.CohortSize, layout.Count, layout.SliceSize);
    }

    public Task<SliceLayout> LayoutAsync()
    {
        if (_ended is null)
        {
            Server();
        }

        return Task.FromResult(_layout!);
    }

    public Task<bool> AcceptAdvertisementAsync(KeyAdvertisement advertisement) => RunAsync(s => s.AcceptAdvertisement(advertisement));

    public Task<int[]> CloseAdvertiseKeysAsync() => RunAsync(s => s.CloseAdvertiseKeys().ToArray());

    public Task<KeyAdvertisement[]> AdvertisementsForAsync(int recipient) => RunAsync(s => s.AdvertisementsFor(recipient).ToArray());

    public Task<bool> AcceptSharesAsync(int sender, EncryptedShare[] shares) => RunAsync(s => s.AcceptShares(sender, shares));

    public Task<int[]> CloseShareKeysAsync() => RunAsync(s => s.CloseShareKeys().ToArray());

    public Task<EncryptedShare[]> SharesForAsync(int recipient) => RunAsync(s => s.SharesFor(recipient).ToArray());

    public Task<SliceAdmission> AdmitSliceAsync(long round, string sessionId, string site, long slice)
        => Task.FromResult(_server is not null
            ? SliceAdmission.Decide(_spec, _server.Stage, _server.Expected, _server.Delivered, round, sessionId, site, slice, _wholeInputsOnly)
            : _ended is not null
                ? SliceAdmission.Decide(_spec, _ended.Stage, _ended.Expected, _ended.Delivered, round, sessionId, site, slice, _wholeInputsOnly)
                : SliceAdmission.Decide(null, ProtocolStage.Aborted, [], [], round, sessionId, site, slice));

    public Task WholeInputsOnlyAsync()
    {
        Server(); // an open round only
        _wholeInputsOnly = true;
        return Task.CompletedTask;
    }

    public Task<string[]> SliceDigestsAsync(int sender)
    {
        if (_ended is not null)
        {
            return Task.FromResult<string[]>([]); // released with the round (the coordinator read them when the stage closed)
        }

        Server();
        string[] digests = _digests.GetValueOrDefault(sender) ?? [];
        return Task.FromResult(digests.Any(string.IsNullOrEmpty) ? [] : digests);
    }

    public async Task<bool> SliceDeliveredAsync(int sender, int slice, string sha256)
    {
        ArgumentNullException.ThrowIfNull(sha256);
        ServerRound server = Server();
        if (server.Stage != ProtocolStage.MaskedInputCollection)
        {
            throw new ClusterProtocolException($"index {sender}: the round is at stage {server.Stage}, not collecting masked inputs");
        }

        if (slice < 0 || slice >= _layout!.Count)
        {
            throw new ClusterProtocolException($"index {sender}: slice {slice} does not exist; the round has {_layout!.Count}");
        }

        if (server.Delivered.Contains(sender))
        {
            return false;
        }

        if (!_delivered.TryGetValue(sender, out HashSet<int>? slices))
        {
            slices = [];
            _delivered[sender] = slices;
        }

        slices.Add(slice);
        if (!_digests.TryGetValue(sender, out string[]? digests))
        {
            digests = new string[_layout.Count];
            _digests[sender] = digests;
        }

        digests[slice] ??= sha256;
        if (slices.Count < _layout.Count)
        {
            return false;
        }

        // Every slice holds the sender's chunk: commit it everywhere, then count it in U3. A slice that cannot commit
        // (its silo failed) makes the sums inconsistent, so the round aborts before anything is revealed.
        try
        {
            await Task.WhenAll(Enumerable.Range(0, _layout.Count).Select(k => Slice(k).CommitAsync(sender))).ConfigureAwait(true);
        }
        catch (Exception ex) when (ex is not ClusterProtocolException)
        {
            throw Abort(ProtocolStage.MaskedInputCollection, $"a slice could not add the masked input of index {sender}: {ex.Message}");
        }

        _delivered.Remove(sender);
        Run(s =>
        {
            s.RecordSlicedMaskedInput(sender);
            return true;
        });
        return true;
    }

    public async Task<int[]> CloseMaskedInputAsync()
    {
        ServerRound server = Server();
        int[] survivors = Run(s => s.CloseMaskedInput().ToArray());
        int[][] committed;
        try
        {
            committed = await Task.WhenAll(Enumerable.Range(0, _layout!.Count).Select(k => Slice(k).CloseAsync())).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            throw Abort(ProtocolStage.MaskedInputCollection, $"a slice could not close its input stage: {ex.Message}");
        }

        for (int k = 0; k < committed.Length; k++)
        {
            if (!committed[k].AsSpan().SequenceEqual(survivors))
            {
                throw Abort(ProtocolStage.MaskedInputCollection,
                    $"slice {k} holds the masked inputs of [{string.Join(", ", committed[k])}], not of the survivors [{string.Join(", ", survivors)}] (its silo failed during the stage)");
            }
        }

        _ = server;
        return survivors;
    }

    public Task<bool> AcceptConsistencySignatureAsync(ConsistencySignature signature)
        => _server is null && _ended is not null && _ended.Accepted.IsRetry(signature)
            ? Task.FromResult(false) // an agent's retry after the release (its reply was lost): a duplicate, as ServerRound answers it
            : RunAsync(s => s.AcceptConsistencySignature(signature));

    public Task<UnmaskRequest> CloseConsistencyAsync() => RunAsync(s =>
    {
        UnmaskRequest request = s.CloseConsistency();
        return new UnmaskRequest([.. request.Survivors], [.. request.Dropped], [.. request.Signatures]);
    });

    public Task<bool> AcceptUnmaskResponseAsync(UnmaskResponse response)
        => _server is null && _ended is not null && _ended.Accepted.IsRetry(response)
            ? Task.FromResult(false) // an agent's retry after the release (its reply was lost): a duplicate, as ServerRound answers it
            : RunAsync(s => s.AcceptUnmaskResponse(response));

    public Task<string?> UnmaskingShortfallAsync(int awaited) => RunAsync(s => s.UnmaskingShortfall(awaited));

    public async Task<ClusterRoundResult> FinishAsync()
    {
        ServerRound server = Server();
        using SlicedUnmasking unmasking = Run(s => s.FinishSliced());
        try
        {
            // Each slice gets its own copy of the seeds (it wipes them after use); the originals are wiped on dispose.
            await Task.WhenAll(Enumerable.Range(0, _layout!.Count).Select(k =>
                Slice(k).UnmaskAsync([.. unmasking.Removals.Select(r => r with { Seed = (byte[])r.Seed.Clone() })]))).ConfigureAwait(true);
        }
        catch (Exception ex)
        {
            throw Abort(ProtocolStage.Unmasking, $"a slice could not be unmasked: {ex.Message}");
        }

        Log.Finished(_logger, this.GetPrimaryKeyString(), unmasking.Contributors.Count, unmasking.Removals.Count);
        _ = server;
        var result = new ClusterRoundResult(_layout, [.. unmasking.Contributors], [.. unmasking.DroppedBeforeShares], [.. unmasking.DroppedBeforeInput],
            [.. unmasking.DroppedAfterInput], [.. unmasking.RejectedShares]);
        Release();
        return result;
    }

    public async Task AbortAsync(string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(reason);

        // A grain without its round (its silo failed, it was reactivated here) cannot record the abort: it knows neither
        // the round's federation nor its session. It says so, as every other call does, and the driver records the abort
        // in the ledger itself (ClusterRoundServer.AbortAsync); returning quietly would lose the attempt from the ledger.
        if (_ended is { Stage: ProtocolStage.Completed })
        {
            // The sum is unmasked in the slices: nothing here may discard them or record an abort over the round now (a
            // late slice upload whose slice grain had ended asks for an abort, ClusterRoundClient.AbortIfSliceFailedAsync).
            // Refused as a grain without the round refuses, so a driver that gives the round up after the unmasking (the
            // coordinator's out-of-bound sum or failed fusion) records its abort in the ledger itself, as it does then.
            throw new ClusterProtocolException($"round {this.GetPrimaryKeyString()} is over (completed: its sum was unmasked); it is not aborted now ({reason})");
        }

        if (_ended is null)
        {
            ServerRound server = Server();
            server.Abort(reason);
            Release(reason);
        }

        DiscardSlices();
        await Ledger().RecordAsync(AbortEntry(reason)).ConfigureAwait(true);
    }

    public Task<ClusterRoundProgress> ProgressAsync()
        => Task.FromResult(_server is not null
            ? new ClusterRoundProgress(_server.Stage.ToString(), [.. _server.Expected.Order()], [.. _server.Delivered.Order()], _server.AbortReason)
            : _ended is not null
                ? new ClusterRoundProgress(_ended.Stage.ToString(), [.. _ended.Expected], [.. _ended.Delivered], _ended.AbortReason)
                : new ClusterRoundProgress("Lost", [], [], "the round grain holds no round (never opened, it ended a while ago, or its silo failed)"));

    public Task<ClusterRoundStatus> StatusAsync()
        => Task.FromResult(_server is not null
            ? new ClusterRoundStatus(_server.Stage.ToString(), _server.AbortReason)
            : _ended is not null
                ? new ClusterRoundStatus(_ended.Stage.ToString(), _ended.AbortReason)
                : new ClusterRoundStatus("Lost", "the round grain holds no round (never opened, it ended a while ago, or its silo failed)"));

    /// <summary>The round's state machine; a round that ended, or that this activation never held, refuses with the reason.</summary>
    private ServerRound Server()
    {
        if (_server is not null)
        {
            return _server;
        }

        // A late message to a round that ended is refused as its ServerRound refused it ("out of order"), naming the outcome.
        if (_ended is { Stage: ProtocolStage.Completed })
        {
            throw new ClusterProtocolException($"round {this.GetPrimaryKeyString()} is over (completed); its state was released and late messages are refused as out of order");
        }

        if (_ended is not null)
        {
            throw new ClusterProtocolException($"round {this.GetPrimaryKeyString()} was aborted ({_ended.AbortReason}); its state was released and late messages are refused as out of order");
        }

        throw new ClusterRoundAbortedException($"round {this.GetPrimaryKeyString()} has no state: it was never opened, it ended a while ago, or the silo that hosted it failed");
    }

    /// <summary>
    /// The round ended (completed, or aborted): drops the <see cref="ServerRound"/> and the per-site slice records, keeps the
    /// outcome (stage, reason, the accepted survivor signatures and unmasking senders: O(n)) to
    /// answer late calls (an agent's retry of an accepted signature or unmasking response is a duplicate, as in the
    /// <see cref="ServerRound"/>; any other message is refused as out of order), and deactivates the grain after
    /// <see cref="RoundGrainOptions.KeptAfterEnd"/> (a timer that calls do not hold back: late calls cannot keep it alive).
    /// </summary>
    /// <param name="abortReason">The round was aborted with this reason (also when its state machine had completed: the slices failed to unmask).</param>
    private void Release(string? abortReason = null)
    {
        if (_server is null)
        {
            return;
        }

        bool aborted = abortReason is not null || _server.Stage == ProtocolStage.Aborted;
        _ended = new Ended(aborted ? ProtocolStage.Aborted : _server.Stage, aborted ? _server.AbortReason ?? abortReason : null,
            [.. _server.Expected.Order()], [.. _server.Delivered.Order()], _server.AcceptedSoFar());
        _server = null;
        _delivered = [];
        _digests = [];
        _endTimer ??= this.RegisterGrainTimer(() =>
        {
            DeactivateOnIdle();
            return Task.CompletedTask;
        }, _options.KeptAfterEnd, Timeout.InfiniteTimeSpan);
        Log.Released(_logger, this.GetPrimaryKeyString(), _ended.Stage.ToString(), _options.KeptAfterEnd.TotalSeconds);
    }

    private T Run<T>(Func<ServerRound, T> call)
    {
        ServerRound server = Server();
        try
        {
            return call(server);
        }
        catch (ProtocolViolationException ex)
        {
            throw new ClusterProtocolException(ex.Message);
        }
        catch (RoundAbortedException ex)
        {
            Release(ex.Reason);
            DiscardSlices();
            _ = Ledger().RecordAsync(AbortEntry(ex.Reason));
            throw new ClusterRoundAbortedException(ex.Message);
        }
    }

    private Task<T> RunAsync<T>(Func<ServerRound, T> call) => Task.FromResult(Run(call));

    private ClusterRoundAbortedException Abort(ProtocolStage stage, string reason)
    {
        _server?.Abort(reason);
        Release(reason);
        DiscardSlices();
        Log.Aborted(_logger, this.GetPrimaryKeyString(), stage.ToString(), reason);
        _ = Ledger().RecordAsync(AbortEntry(reason));
        return new ClusterRoundAbortedException($"round aborted at {stage}: {reason}");
    }

    private LedgerEntry AbortEntry(string reason) => new(_spec!.Round, _spec.SessionId, Completed: false, SumSha256: null, [], reason, _time.GetUtcNow());

    private ILedgerGrain Ledger() => GrainFactory.GetGrain<ILedgerGrain>(_spec!.Federation);

    /// <summary>
    /// Tells every slice the round was aborted (their spills are deleted at once), without waiting: a slice that cannot be
    /// reached has lost its state anyway, and a slice busy with a call to this grain must not be waited for.
    /// </summary>
    private void DiscardSlices()
    {
        if (_layout is null)
        {
            return;
        }

        for (int k = 0; k < _layout.Count; k++)
        {
            Slice(k).DiscardAsync().Ignore();
        }
    }

    private ISliceGrain Slice(int k) => GrainFactory.GetGrain<ISliceGrain>(ClusterKeys.Slice(this.GetPrimaryKeyString(), k));

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Cluster round {Round} opened: {Sites} sites, {Slices} slices of {SliceSize} words")]
        public static partial void Opened(ILogger logger, string round, int sites, int slices, int sliceSize);

        [LoggerMessage(2, LogLevel.Information, "Cluster round {Round} unmasked: {Contributors} inputs in the sum, {Removals} masks removed per slice")]
        public static partial void Finished(ILogger logger, string round, int contributors, int removals);

        [LoggerMessage(3, LogLevel.Warning, "Cluster round {Round} aborted at {Stage}: {Reason}")]
        public static partial void Aborted(ILogger logger, string round, string stage, string reason);

        [LoggerMessage(5, LogLevel.Debug, "Cluster round {Round} could not be opened; not every slice that opened could be told to discard its state ({Error})")]
        public static partial void DiscardAfterFailedOpen(ILogger logger, string round, string error);

        [LoggerMessage(4, LogLevel.Debug, "Cluster round {Round} ended ({Stage}): its state is released; the grain answers with the outcome for {Seconds} s, then deactivates")]
        public static partial void Released(ILogger logger, string round, string stage, double seconds);
    }

    /// <summary>
    /// What a round grain keeps of a round that ended: its stage (Completed or Aborted), why it aborted, the last stage's
    /// expected and delivered sets, and the accepted survivor signatures and unmasking senders (to answer retries).
    /// </summary>
    private sealed record Ended(ProtocolStage Stage, string? AbortReason, int[] Expected, int[] Delivered, AcceptedLateMessages Accepted);
}
