using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using SecureFed.Aggregator.Operations;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Aggregator;

/// <summary>
/// Runs the federation's rounds: gathers a cohort of connected sites, opens a round with fresh parameters, walks the
/// protocol stages with a deadline on each, and on success turns the secure sum into the next model version. It owns
/// no sockets: the gRPC service feeds it messages through <see cref="Current"/>.
/// </summary>
public sealed class RoundCoordinator : BackgroundService
{
    private readonly AggregatorOptions _options;
    private readonly AggregatorState _state;
    private readonly TimeProvider _time;
    private readonly ILogger<RoundCoordinator> _logger;
    private readonly AggregatorTelemetry? _telemetry;
    private readonly IRoundServerFactory _servers;
    private readonly ICoordinatorFence _fence;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<bool>> _waiting = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<string, int> _excluded = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (int Count, long Round)> _blamed = new(StringComparer.Ordinal);

    /// <summary>Serializes the changes of <see cref="_excluded"/> and <see cref="_blamed"/> with their writes to the round store.</summary>
    private readonly Lock _exclusionGate = new();
    private readonly EliminationSearch _outOfBound = new();
    private readonly EliminationSearch _unrebuiltSecret = new();
    private readonly EliminationSearch _unopenedEnvelope = new();

    /// <summary>The next attempt's <see cref="RoundSession.StragglerQuorumExtra"/> (set by <see cref="AbortRoundAsync"/>).</summary>
    private int _stragglerQuorumExtra;

    /// <summary>Sites the searches by elimination held out of the attempt being opened (set by <see cref="GatherCohortAsync"/>).</summary>
    private string[] _heldOut = [];
    private volatile RoundSession? _current;
    private readonly TaskCompletionSource _interruptedRecorded = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// True once the start-up recovery marked the rounds a previous process left open as aborted, charged them and
    /// committed that (on the cluster, to its database); false when the start-up ended before (then nothing is answered
    /// from the store: it may not hold what the recovery would have recorded).
    /// </summary>
    private readonly TaskCompletionSource<bool> _recovered = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates the coordinator.</summary>
    public RoundCoordinator(IOptions<AggregatorOptions> options, AggregatorState state, TimeProvider time, ILogger<RoundCoordinator> logger)
        : this(options, state, time, logger, telemetry: null)
    {
    }

    /// <summary>Creates the coordinator, reporting rounds and stages to <paramref name="telemetry"/>.</summary>
    public RoundCoordinator(IOptions<AggregatorOptions> options, AggregatorState state, TimeProvider time, ILogger<RoundCoordinator> logger, AggregatorTelemetry? telemetry)
        : this(options, state, time, logger, telemetry, LocalRoundServerFactory.Instance)
    {
    }

    /// <summary>
    /// Creates the coordinator with the server side of its rounds opened by <paramref name="servers"/> (the aggregator
    /// cluster's coordinator silo: docs/cluster.md §6); every check, refusal and audit event stays here.
    /// </summary>
    public RoundCoordinator(IOptions<AggregatorOptions> options, AggregatorState state, TimeProvider time, ILogger<RoundCoordinator> logger, AggregatorTelemetry? telemetry, IRoundServerFactory servers)
        : this(options, state, time, logger, telemetry, servers, CoordinatorFence.Always)
    {
    }

    /// <summary>
    /// As above, driving rounds only while <paramref name="fence"/> holds (the cluster's coordinator lease,
    /// docs/cluster.md §6): when it is lost the open round is aborted with that reason and the coordinator stops with
    /// <see cref="CoordinatorLeaseLostException"/> as its <see cref="Failure"/>; no round is opened or completed after.
    /// </summary>
    public RoundCoordinator(IOptions<AggregatorOptions> options, AggregatorState state, TimeProvider time, ILogger<RoundCoordinator> logger, AggregatorTelemetry? telemetry, IRoundServerFactory servers, ICoordinatorFence fence)
    {
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentNullException.ThrowIfNull(fence);
        _servers = servers;
        _fence = fence;
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Value;
        _state = state;
        _time = time;
        _logger = logger;
        _telemetry = telemetry;
    }

    /// <summary>Raised on every stage change (on the coordinator's thread; handlers must be quick).</summary>
    public event EventHandler<RoundProgress>? Progress;

    /// <summary>Completes when the configured number of rounds has run or the budget is exhausted.</summary>
    public Task Finished => _finished.Task;

    /// <summary>True once no further round will open.</summary>
    public bool IsFinished => _finished.Task.IsCompleted;

    /// <summary>
    /// The error that stopped the coordinator (e.g. a full disk under the audit log), or null when it finished its rounds
    /// or was shut down; set before <see cref="Finished"/> completes.
    /// </summary>
    public Exception? Failure { get; private set; }

    internal RoundSession? Current => _current;

    /// <summary>The clock of the rounds' deadlines and of the sites' progress reports.</summary>
    internal TimeProvider Time => _time;

    /// <summary>
    /// Long-poll of a site waiting for a round: returns the open round that includes it (and that it has not seen), or
    /// null when the federation has finished.
    /// </summary>
    internal async Task<RoundSession?> AwaitRoundAsync(string site, long lastRound, CancellationToken cancellationToken)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            RoundSession? current = _current;
            if (current is not null && current.Round > lastRound && current.IndexOf(site) > 0
                && current.Server.Stage == ProtocolStage.AdvertiseKeys)
            {
                return current;
            }

            if (IsFinished)
            {
                return null;
            }

            // One long-poll per site: a newer one (an agent that reconnected, or a site opening many) ends the older, so a
            // site cannot pile up waiting calls, each holding its request, on the aggregator.
            var waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            TaskCompletionSource<bool>? replaced = null;
            _waiting.AddOrUpdate(site, waiter, (_, older) =>
            {
                replaced = older;
                return waiter;
            });
            replaced?.TrySetException(new AwaitRoundSupersededException(site));
            using (cancellationToken.Register(() => waiter.TrySetCanceled(cancellationToken)))
            {
                try
                {
                    await Task.WhenAny(waiter.Task, _finished.Task).ConfigureAwait(false);
                    cancellationToken.ThrowIfCancellationRequested();
                    if (waiter.Task.Exception?.InnerException is AwaitRoundSupersededException superseded)
                    {
                        throw superseded;
                    }
                }
                finally
                {
                    _waiting.TryRemove(new KeyValuePair<string, TaskCompletionSource<bool>>(site, waiter));
                }
            }
        }
    }

    /// <summary>
    /// Leaves <paramref name="site"/>, found at fault, out of the next round attempts: <see cref="AggregatorOptions.BlameExclusionRounds"/>
    /// the first time, twice as many each further round attempt in which this aggregator blames it (at most <see cref="MaxExclusionRounds"/>),
    /// so a site that keeps attacking after each exclusion costs the federation fewer and fewer attempts
    /// (docs/PROTOCOL.md, "Blame"). The site's row in the round store (attempts left, blame count, round) is written first,
    /// and memory changes only once it is, so that a restart (<see cref="RestoreExclusions"/>) neither frees the site nor
    /// forgets the blame, and a failed write leaves both as they were. Returns the number of attempts.
    /// </summary>
    internal int Exclude(string site, long round)
    {
        lock (_exclusionGate)
        {
            // One round attempt counts once however many verdicts name the site in it (every holder of an invalid envelope
            // accuses its sender).
            (int blamed, long lastRound) = _blamed.TryGetValue(site, out var last)
                ? (last.Round == round ? last : (last.Count + 1, round))
                : (1, round);
            int rounds = ExclusionRounds(_options.BlameExclusionRounds, blamed);
            int left = rounds > 0 ? rounds : _excluded.GetValueOrDefault(site);
            _state.Store.SaveExclusions([new SiteExclusionRecord(site, left, blamed, lastRound)]);
            _blamed[site] = (blamed, lastRound);
            if (rounds > 0)
            {
                _excluded[site] = rounds;
            }

            return rounds;
        }
    }

    /// <summary>
    /// An attempt opened without the excluded sites: one fewer for each to sit out (a site with none left is no longer
    /// excluded; its row keeps its blame count), written to the round store in one transaction.
    /// </summary>
    private void SitOutOpenedAttempt()
    {
        lock (_exclusionGate)
        {
            var changed = new List<SiteExclusionRecord>();
            foreach (string excluded in _excluded.Keys)
            {
                int left = _excluded.AddOrUpdate(excluded, 0, (_, before) => before - 1);
                if (left <= 0)
                {
                    _excluded.TryRemove(new KeyValuePair<string, int>(excluded, left));
                }

                (int count, long round) = _blamed.GetValueOrDefault(excluded, (1, 1));
                changed.Add(new SiteExclusionRecord(excluded, Math.Max(left, 0), count, round));
            }

            _state.Store.SaveExclusions(changed);
        }
    }

    /// <summary>
    /// At start-up: the excluded sites and blame counts the round store keeps (written by <see cref="Exclude"/> and
    /// <see cref="SitOutOpenedAttempt"/> before a restart, or by the previous coordinator before a takeover), so that a
    /// site still sits out the attempts it had left and its next blame doubles as if there had been no restart. A row
    /// this coordinator cannot use (a site not in the federation's manifest, a count or round out of range) is ignored
    /// with a warning and left in the store as it is.
    /// </summary>
    private void RestoreExclusions()
    {
        lock (_exclusionGate)
        {
            int restored = 0;
            foreach (SiteExclusionRecord row in _state.Store.ListExclusions())
            {
                string? problem = !_state.Kit.Manifest.TryGetSite(row.Site, out _) ? "the site is not in the federation's manifest"
                    : row.AttemptsLeft is < 0 or > MaxExclusionRounds ? $"attempts left {row.AttemptsLeft} is not between 0 and {MaxExclusionRounds}"
                    : row.BlameCount is < 1 or > int.MaxValue ? $"blame count {row.BlameCount} is not between 1 and {int.MaxValue}"
                    : row.LastBlamedRound < 1 ? $"round {row.LastBlamedRound} of its last blame is not a round"
                    : null;
                if (problem is not null)
                {
                    Log.ExclusionIgnored(_logger, row.Site, _state.Store.Path, problem);
                    continue;
                }

                _blamed[row.Site] = ((int)row.BlameCount, row.LastBlamedRound);
                if (row.AttemptsLeft > 0 && _options.BlameExclusionRounds > 0) // BlameExclusionRounds 0: nobody is excluded
                {
                    _excluded[row.Site] = (int)row.AttemptsLeft;
                    restored++;
                }
                else
                {
                    _excluded.TryRemove(row.Site, out _);
                }
            }

            if (restored > 0)
            {
                Log.ExclusionsRestored(_logger, _state.Store.Path, string.Join(", ", _excluded.OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => $"{e.Key} ({e.Value})")));
            }
        }
    }

    /// <summary>The most attempts one blame excludes a site for, however often it was blamed.</summary>
    internal const int MaxExclusionRounds = 10_000;

    /// <summary>
    /// The attempts a site sits out after its <paramref name="blamed"/>-th blame (1 for the first): <paramref name="first"/>
    /// doubled for each earlier blame, at most <see cref="MaxExclusionRounds"/> (0 stays 0: exclusion off).
    /// </summary>
    internal static int ExclusionRounds(int first, int blamed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfLessThan(blamed, 1);
        return (int)Math.Min((long)first << Math.Min(blamed - 1, 20), Math.Max(first, MaxExclusionRounds));
    }

    /// <summary>Sites left out of the next round attempts, with the number of attempts still to skip.</summary>
    public IReadOnlyDictionary<string, int> ExcludedSites => new Dictionary<string, int>(_excluded, StringComparer.Ordinal);

    /// <summary>
    /// Completes when the rounds a previous coordinator left open, aborted at start-up, were recorded in the round
    /// servers' own ledger (the cluster's) or given up (logged); at once when there were none.
    /// </summary>
    internal Task InterruptedRecorded => _interruptedRecorded.Task;

    /// <summary>Sites currently waiting for a round.</summary>
    public IReadOnlyCollection<string> WaitingSites => [.. _waiting.Keys];

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var running = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, _fence.Lost);
        CancellationToken hostStopping = stoppingToken;
        stoppingToken = running.Token;
        bool recordingInterrupted = false;
        try
        {
            _fence.EnsureHeld();
            RestoreExclusions();
            Log.ServerRule(_logger, _state.ServerRule.Name, _state.ServerRule.Options.LearningRate, _state.ServerRule.History);

            // On the cluster (a lease epoch) the round left open may have been another silo's: say so, with both epochs.
            string? takeover = _fence.Epoch > 0 ? TakeoverReason(_fence.PreviousEpoch, _fence.Epoch) : null;
            RoundRecord[] open = [.. _state.Store.ListRounds().Where(r => r.Status == Persistence.RoundStatus.Running)];
            ChargeInterruptedRounds(open); // before they are marked aborted: a crash in between charges them at the next start
            RecoverUnloggedCompletion();
            RecoverConsoleRecord();
            int interrupted = _state.Store.AbortInterruptedRounds(takeover ?? "the aggregator restarted while the round was open");
            if (interrupted > 0)
            {
                Log.InterruptedRoundsAborted(_logger, interrupted);
                RecordInterruptedOnConsole(open, takeover ?? "the aggregator restarted while the round was open");
                _state.Audit.Append(AuditEvents.RoundAborted, f => f.Add("rounds", interrupted).Add("stage", "unknown").Add("reason", takeover ?? "aggregator restarted while the round was open"));
            }

            await _fence.CommitAsync(_state, stoppingToken).ConfigureAwait(false);
            // An outcome query for an interrupted round now reads its abort (RecordedOutcomeAsync), durable before anyone
            // hears of it: on the cluster a successor whose commit failed must not have told a site its own abort reason and
            // charge, which the next successor records differently (diff review).
            _recovered.TrySetResult(true);
            if (takeover is not null && open.Length > 0)
            {
                // The cluster's ledger gets those attempts too (an auditor sees every attempt there): in the background,
                // since its grain may be on the dead coordinator's silo until membership declares it dead.
                recordingInterrupted = true;
                _ = RecordInterruptedAsync(open, takeover, hostStopping);
            }
            else
            {
                _interruptedRecorded.TrySetResult();
            }

            int completed = _state.Store.ListRounds().Count(r => r.Status == Persistence.RoundStatus.Completed);
            int failedInARow = 0;
            WarnIfOneSiteCanAbortEveryRound();
            WarnIfTooFewSitesNotRevoked();
            bool fits = ARoundFits(out string? spentReason);
            if (!fits)
            {
                // Restarted with the budget spent: no cohort could open a round. Finish now (the agents hear it at their
                // next poll) instead of waiting, silently, for sites whose round would be refused.
                Log.BudgetExhausted(_logger, spentReason!);
            }

            while (fits && !stoppingToken.IsCancellationRequested && completed < _options.Rounds)
            {
                await PauseAfterFailuresAsync(failedInARow, stoppingToken).ConfigureAwait(false);
                IReadOnlyList<string> cohort = await GatherCohortAsync(stoppingToken).ConfigureAwait(false);
                (RoundSession? session, bool stop) = await OpenRoundAsync(cohort, stoppingToken).ConfigureAwait(false);
                if (stop)
                {
                    break; // budget exhausted
                }

                if (session is null)
                {
                    // The round's server could not be opened (recorded as an aborted round): try again shortly.
                    await Task.Delay(TimeSpan.FromSeconds(1), _time, stoppingToken).ConfigureAwait(false);
                    continue;
                }

                bool ok = await RunRoundAsync(session, stoppingToken).ConfigureAwait(false);
                if (ok)
                {
                    completed++;
                    failedInARow = 0;
                }
                else
                {
                    failedInARow++;
                }
            }

            Log.Finished(_logger, completed);
        }
        catch (Exception ex) when (_fence.Lost.IsCancellationRequested || ex is CoordinatorLeaseLostException)
        {
            // Fencing: another silo may already drive the federation. Record the open round as aborted here (this
            // silo's own records; the cluster's state refuses this silo's writes once its epoch is stale) and stop.
            var lost = ex as CoordinatorLeaseLostException ?? new CoordinatorLeaseLostException("this silo lost the coordinator lease (it could not renew it before it expired)", ex);
            Failure = lost;
            Log.LeaseLost(_logger, lost.Message);
            RoundSession? open = _current;
            if (open is not null && !open.IsFinished)
            {
                try
                {
                    await AbortRoundAsync(open, open.Server.Stage, "the coordinator lost its lease: " + lost.Message).ConfigureAwait(false);
                }
                catch (Exception abortFailure) when (abortFailure is not OperationCanceledException)
                {
                    // E.g. the round was already completed here when its save was refused: the successor decides from its state.
                    Log.LeaseLost(_logger, "the open round could not be recorded as aborted here: " + abortFailure.Message);
                }
            }

            throw lost;
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            RoundSession? open = _current;
            if (open is not null && !open.IsFinished)
            {
                await AbortRoundAsync(open, open.Server.Stage, "the aggregator is shutting down").ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Failure = ex;
            throw;
        }
        finally
        {
            if (!recordingInterrupted)
            {
                _interruptedRecorded.TrySetResult(); // nothing to record, or the start-up failed before
            }

            _recovered.TrySetResult(false); // the start-up failed (or stopped) before the recovery was committed

            _finished.TrySetResult();
            foreach (TaskCompletionSource<bool> w in _waiting.Values)
            {
                w.TrySetResult(false);
            }

            try
            {
                _state.Audit.Checkpoint();
            }
            catch (InvalidOperationException)
            {
                // nothing new to sign
            }
        }
    }

    /// <summary>
    /// The pause before the next attempt after <paramref name="failedInARow"/> consecutive attempts that did not complete:
    /// none for the first two (a dropout's retry opens at once), then 1, 2, 4 … s up to <paramref name="max"/> (0: never).
    /// </summary>
    internal static TimeSpan RetryPause(int failedInARow, int max)
        => failedInARow < 2 || max <= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(max, Math.Pow(2, Math.Min(failedInARow - 2, 30))));

    /// <summary>Waits <see cref="RetryPause"/> before the next attempt, saying so in the log.</summary>
    private async Task PauseAfterFailuresAsync(int failedInARow, CancellationToken cancellationToken)
    {
        TimeSpan pause = RetryPause(failedInARow, _options.MaxRetryPauseSeconds);
        if (pause > TimeSpan.Zero)
        {
            Log.RetryPause(_logger, failedInARow, pause.TotalSeconds);
            await Task.Delay(pause, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<IReadOnlyList<string>> GatherCohortAsync(CancellationToken cancellationToken)
    {
        DateTimeOffset deadline = _time.GetUtcNow().AddSeconds(_options.JoinTimeoutSeconds);
        DateTimeOffset? enoughSince = null;
        int reported = -1;
        while (true)
        {
            // Revoked sites never join; sites blamed by a verified accusation sit out their exclusion (PROTOCOL.md "Blame").
            var waiting = _waiting.Keys.Where(s => !_state.Kit.Manifest.IsRevoked(s) && !_excluded.ContainsKey(s)).Order(StringComparer.Ordinal).ToList();
            DateTimeOffset now = _time.GetUtcNow();
            if (waiting.Count >= _options.MinSites)
            {
                enoughSince ??= now;
                bool everyone = waiting.Count >= _state.Kit.Manifest.Sites.Count(s => !_state.Kit.Manifest.IsRevoked(s.Name) && !_excluded.ContainsKey(s.Name));
                if (everyone || now - enoughSince.Value >= TimeSpan.FromSeconds(_options.JoinGraceSeconds))
                {
                    // The searches by elimination hold suspects out of the sites that are here, as many as these can spare
                    // (never at the price of waiting for sites that are not).
                    _heldOut = DrawHoldOut(waiting);
                    return [.. waiting.Except(_heldOut, StringComparer.Ordinal)];
                }
            }
            else
            {
                enoughSince = null;
                if (waiting.Count != reported)
                {
                    Log.WaitingForSites(_logger, _options.MinSites, waiting.Count);
                    reported = waiting.Count;
                }

                if (now > deadline)
                {
                    deadline = now.AddSeconds(_options.JoinTimeoutSeconds);
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(50), _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The suspects the searches by elimination hold out of the attempt about to open (docs/PROTOCOL.md "Blame: by
    /// elimination"): while a search lasts, a fresh random half of its suspects among the <paramref name="waiting"/>
    /// sites every attempt, as many as those can spare (the rest must still open a round: <see cref="CanOpenWith"/>);
    /// empty when no search is under way.
    /// </summary>
    private string[] DrawHoldOut(IReadOnlyList<string> waiting)
    {
        if (_outOfBound.Suspects.Count == 0 && _unrebuiltSecret.Suspects.Count == 0 && _unopenedEnvelope.Suspects.Count == 0)
        {
            return [];
        }

        // No more than the suspects waiting can be held out: stop planning rounds there (each check plans a round).
        int suspects = waiting.Count(s => _outOfBound.IsSuspect(s) || _unrebuiltSecret.IsSuspect(s) || _unopenedEnvelope.IsSuspect(s));
        int spare = 0;
        while (spare < suspects && CanOpenWith(waiting.Count - spare - 1))
        {
            spare++;
        }

        List<string> held = [.. _outOfBound.DrawHoldOut(waiting, spare)];
        held.AddRange(_unrebuiltSecret.DrawHoldOut(waiting.Except(held, StringComparer.Ordinal), spare - held.Count));
        held.AddRange(_unopenedEnvelope.DrawHoldOut(waiting.Except(held, StringComparer.Ordinal), spare - held.Count));
        return [.. held.Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// The start-up checks of <see cref="ExecuteAsync"/>, for a caller that wants them before the service starts (the CLI,
    /// before the listener opens): a <see cref="AggregatorOptions.MinSites"/> larger than the federation, a
    /// <see cref="AggregatorOptions.ConsistencyColluders"/> or <see cref="AggregatorOptions.DpSgdNoiseShares"/> that the
    /// threshold of some cohort up to the federation's size cannot carry, updates that overflow secure aggregation's
    /// words, or a budget that allows not even the first round.
    /// </summary>
    /// <exception cref="InvalidOperationException">No round can ever open with these settings; the message names them.</exception>
    public void CheckStartable() => _ = ARoundFits(out _);

    /// <summary>
    /// <see cref="CheckStartable"/>; false (with the reason) when the federation has spent budget and what is left fits
    /// no round of any cohort size from <see cref="AggregatorOptions.MinSites"/> to the whole federation. Before anything
    /// is spent, a budget that allows not even one round (with the manifest's sites) is a start-up error naming the fix,
    /// not a federation that "finished after 0 rounds" while the sites wait.
    /// </summary>
    private bool ARoundFits(out string? spentReason)
    {
        spentReason = null;
        int all = _state.Kit.Manifest.Sites.Count;
        if (_options.MinSites > all)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"SecureFed:MinSites = {_options.MinSites} but the federation has {all} site(s): no round could ever open; lower SecureFed:MinSites or provision more sites (securefed provision)."));
        }

        int provisioned = SitesNotRevoked();
        if (_options.MinSites > provisioned)
        {
            return true; // sites revoked since: WarnIfTooFewSitesNotRevoked says so; no cohort to check yet
        }

        // Every cohort a round can open with, not only MinSites (t is not monotone in n): refused now, naming the cohort,
        // instead of the first larger round refused and the federation stopped.
        IReadOnlyList<string> cohortProblems = _options.CohortThresholdProblems(provisioned);
        if (cohortProblems.Count > 0)
        {
            throw new InvalidOperationException(string.Join(" ", cohortProblems));
        }

        int n = provisioned;
        int threshold = FederatedAveraging.Threshold(_options.PlanGraph(n), _options.Threshold);
        EnsureTheUpdatesFit(n, threshold);
        BudgetDecision decision = _state.Budget.Check(SiteRhoPerRound(n, threshold, _options.SiteNoiseMultiplier), _options.EpsilonBudget, _options.Delta);
        if (decision.Allowed)
        {
            return true;
        }

        if (_state.Budget.Spent(_options.Delta) == 0)
        {
            throw new InvalidOperationException(NoRoundFits(n, threshold, decision.Reason));
        }

        // A round's cost depends on its cohort (n and t): any size the aggregator could open a round with may still fit.
        // Past 512 sizes (a cohort in the thousands) the check is left to each round, as before.
        if (provisioned - _options.MinSites > 512)
        {
            return true;
        }

        for (int size = _options.MinSites; size < provisioned; size++)
        {
            int t = FederatedAveraging.Threshold(_options.PlanGraph(size), _options.Threshold);
            if (_state.Budget.Check(SiteRhoPerRound(size, t, _options.SiteNoiseMultiplier), _options.EpsilonBudget, _options.Delta).Allowed)
            {
                return true;
            }
        }

        spentReason = $"{decision.Reason} (no round of {_options.MinSites}-{provisioned} sites fits what is left; the federation is finished)";
        return false;
    }

    /// <summary>
    /// Before any site joins, also after a restart with budget spent: an update clip and site-level noise whose sum over
    /// the largest cohort overflows secure aggregation's 32-bit words (e.g. L2Clip 1e308) is a start-up error naming the
    /// settings. Before, a restart passed start-up and the aggregator died with a stack trace once the sites had joined.
    /// </summary>
    private void EnsureTheUpdatesFit(int n, int threshold)
    {
        try
        {
            _ = FederatedAveraging.PlanRound(_state.Model.ParameterCount, _options.L2Clip, n, threshold, _options.SiteNoiseMultiplier, _options.WeightCap, EvaluationLayoutOrNull());
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"SecureFed:L2Clip {_options.L2Clip:G4} with SecureFed:SiteNoiseMultiplier {_options.SiteNoiseMultiplier:G4} and SecureFed:WeightCap {_options.WeightCap} leaves secure aggregation no room for a round of {n} sites ({ex.Message})"), ex);
        }
    }

    /// <summary>The federation's sites that are not revoked: the largest cohort a round can open with.</summary>
    private int SitesNotRevoked() => _state.Kit.Manifest.Sites.Count(s => !_state.Kit.Manifest.IsRevoked(s.Name));

    /// <summary>
    /// Sites revoked since leave fewer than <see cref="AggregatorOptions.MinSites"/>: an operator's state, not a setting
    /// to refuse (the aggregator still serves, refuses the revoked sites, and opens rounds again once sites are
    /// provisioned). Said at start, once, instead of waiting silently.
    /// </summary>
    private void WarnIfTooFewSitesNotRevoked()
    {
        int provisioned = SitesNotRevoked();
        if (_options.MinSites > provisioned && _options.MinSites <= _state.Kit.Manifest.Sites.Count)
        {
            Log.TooFewSitesNotRevoked(_logger, _options.MinSites, provisioned);
        }
    }

    /// <summary>
    /// Warns at start-up when the threshold t equals the number of share holders of a site: the cohort size n with the
    /// complete masking graph, k + 1 with a sparse one (<see cref="OneSiteCanAbort"/>).
    /// Logged, not audited: the aggregator audits no start-up settings, and each <c>round.opened</c> line states the
    /// round's cohort and threshold.
    /// </summary>
    private void WarnIfOneSiteCanAbortEveryRound()
    {
        if (OneSiteCanAbort(_options, SitesNotRevoked()) is { } warning)
        {
            Log.OneSiteCanAbort(_logger, warning.Threshold, warning.Sites, warning.Which, warning.Holders, warning.Fix);
        }
    }

    /// <summary>
    /// Whether the threshold t equals the number of holders of a site's shares (n with the complete masking graph, its
    /// k neighbours and itself with a sparse one) for the whole federation (<paramref name="sites"/> not revoked; e.g. a
    /// federation of two sites) or, with a configured <see cref="AggregatorOptions.Threshold"/>, for the smallest cohort
    /// a round may open with (<see cref="AggregatorOptions.MinSites"/>). Then every holder must answer the unmasking
    /// request, so any one site can abort each such attempt by staying silent after the others charged their privacy
    /// budgets, and nobody is blamed (a silent site looks like a dropout; threat-model §7, docs/PROTOCOL.md §2 "A cohort
    /// of exactly t sites"). The fix named is one that works for that graph: with a sparse graph more sites or a larger
    /// MinSites keep the same k and t (from k + 2 sites under Graph = sparse, above 512 under complete), so only a
    /// smaller Threshold helps; with the complete graph more sites help unless a configured Threshold reaches the holders
    /// of the sparse graph the larger cohort would get.
    /// </summary>
    /// <returns>The warning's values, or null when no such cohort.</returns>
    internal static (int Threshold, int Sites, string Which, int Holders, string Fix)? OneSiteCanAbort(AggregatorOptions options, int sites)
    {
        ArgumentNullException.ThrowIfNull(options);
        foreach ((int n, string which) in new[] { (sites, "every site of the federation"), (options.MinSites, "the fewest sites a round opens with, SecureFed:MinSites") })
        {
            // The smallest cohort only with a configured threshold: the automatic one grows with n, and a round normally
            // opens with every site that waits, not with MinSites.
            if (n < 2 || n > sites || (n != sites && options.Threshold == 0))
            {
                continue;
            }

            GraphPlan plan;
            int threshold;
            try
            {
                plan = options.PlanGraph(n);
                threshold = FederatedAveraging.Threshold(plan, options.Threshold);
            }
            catch (ArgumentException)
            {
                continue; // the graph planner refuses this cohort size; each round checks its own
            }

            int holders = plan.Degree + 1;
            if (threshold < holders)
            {
                continue;
            }

            string graph = GraphPlanner.PolicyName(options.GraphPolicy);
            GraphPlan sparse = GraphPlanner.Plan(20_000, options.GraphPolicy);
            int sparseHolders = sparse.Degree + 1;
            int sparseFrom = options.GraphPolicy == GraphPolicy.Sparse ? sparseHolders + 1 : Math.Max(GraphPlanner.CompleteGraphLimit + 1, sparseHolders + 1);
            string fix;
            if (!plan.IsComplete)
            {
                fix = $"Adding sites or raising SecureFed:MinSites does not change this: from {sparseFrom} sites on SecureFed:Graph = {graph} uses a sparse masking graph " +
                    $"of {holders} share holders per site, whatever the cohort size. Lower SecureFed:Threshold below {holders} (0 = the planner's t = {plan.Threshold}) " +
                    $"so that t < {holders}";
            }
            else if (options.Threshold >= sparseHolders && !sparse.IsComplete)
            {
                fix = $"Lower SecureFed:Threshold so that t < n (adding sites or raising SecureFed:MinSites helps only below {sparseFrom} sites: from there on " +
                    $"SecureFed:Graph = {graph} uses a sparse masking graph of {sparseHolders} share holders per site, where SecureFed:Threshold = {options.Threshold} makes " +
                    $"t = {sparseHolders} again), or add sites so that t < n below {sparseFrom}";
            }
            else
            {
                fix = "Add sites, or raise SecureFed:MinSites / lower SecureFed:Threshold so that t < n";
            }

            return (threshold, n, which, holders, fix);
        }

        return null;
    }

    /// <summary>The federated-evaluation slots a round carries (the options' layout), or null when federated evaluation is off.</summary>
    private EvaluationLayout? EvaluationLayoutOrNull()
        => _options.FederatedEvaluation ? EvaluationLayout.Create(_options.EvaluationEntityTypes, _options.EvaluationCountCap) : null;

    /// <summary>The site-level ρ of one round of <paramref name="n"/> sites at threshold <paramref name="threshold"/> and noise multiplier <paramref name="z"/>, as <see cref="OpenRoundAsync"/> plans it.</summary>
    private double SiteRhoPerRound(int n, int threshold, double z)
    {
        (_, DistributedDpPlan plan) = FederatedAveraging.PlanRound(_state.Model.ParameterCount, _options.L2Clip, n, threshold, z, _options.WeightCap, EvaluationLayoutOrNull());
        return DistributedDp.RhoPerRound(plan, threshold);
    }

    /// <summary>
    /// Why the federation's budget allows not even its first round, with the smallest <c>SiteNoiseMultiplier</c> that fits
    /// all <see cref="AggregatorOptions.Rounds"/> into <see cref="AggregatorOptions.EpsilonBudget"/> (zCDP costs add up, so
    /// the check is one of the whole run's cost against the empty ledger; bisection on z).
    /// </summary>
    private string NoRoundFits(int n, int threshold, string reason)
    {
        bool Fits(double z) => _state.Budget.Check(SiteRhoPerRound(n, threshold, z) * _options.Rounds, _options.EpsilonBudget, _options.Delta).Allowed;

        string fix = "raise SecureFed:EpsilonBudget";
        double high = Math.Max(_options.SiteNoiseMultiplier, 1e-3);
        for (int i = 0; i < 40 && !Fits(high); i++)
        {
            high *= 2;
        }

        if (Fits(high))
        {
            double low = _options.SiteNoiseMultiplier;
            for (int i = 0; i < 50; i++)
            {
                double mid = (low + high) / 2;
                (low, high) = Fits(mid) ? (low, mid) : (mid, high);
            }

            fix = string.Create(CultureInfo.InvariantCulture, $"set SecureFed:SiteNoiseMultiplier to at least {Math.Ceiling(high * 100) / 100:0.00} to run all {_options.Rounds} rounds within ε {_options.EpsilonBudget:G4}, or raise SecureFed:EpsilonBudget (with few sites so much site-level noise swamps the updates: the patient-level DP-SGD budget each agent keeps is then the guarantee that matters, README \"For an aggregator operator\")");
        }

        return string.Create(CultureInfo.InvariantCulture, $"SecureFed:EpsilonBudget {_options.EpsilonBudget:G4} allows no round at all: {reason} (one round with {n} sites, threshold t = {threshold}, SiteNoiseMultiplier {_options.SiteNoiseMultiplier:G4}); {fix}.");
    }

    /// <summary>Opens the next round attempt; (null, true) when no round may open (budget), (null, false) when its server could not open.</summary>
    private async Task<(RoundSession? Session, bool Stop)> OpenRoundAsync(IReadOnlyList<string> cohort, CancellationToken cancellationToken)
    {
        int n = cohort.Count;
        GraphPlan plan = _options.PlanGraph(n);
        int threshold = FederatedAveraging.Threshold(plan, _options.Threshold);
        int d = _state.Model.ParameterCount;
        (long modelVersion, string modelSha256) = _state.Model.Current;
        EvaluationLayout? evaluation = EvaluationLayoutOrNull();
        (UpdateCodec codec, DistributedDpPlan dpPlan) = FederatedAveraging.PlanRound(d, _options.L2Clip, n, threshold, _options.SiteNoiseMultiplier, _options.WeightCap, evaluation);

        double rho = DistributedDp.RhoPerRound(dpPlan, threshold);
        BudgetDecision decision = _state.Budget.Check(rho, _options.EpsilonBudget, _options.Delta);
        if (!decision.Allowed)
        {
            Log.BudgetExhausted(_logger, decision.Reason);
            _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", _state.Store.ListRounds().Count + 1).Add("site", "aggregator").Add("reason", decision.Reason));
            return (null, true);
        }

        // The two checks below cannot fire for a cohort this aggregator gathers: the start-up check (ARoundFits) refused
        // settings that fail any cohort from MinSites to the sites not revoked, and the manifest is fixed while it runs.
        // Kept as the invariant's guard; should it fire, the same cohort would be refused again, so the federation stops.
        if (_options.DpSgdNoiseShares > threshold)
        {
            // Never announce more noise shares than t: a sum of t sites would carry less than the announced σ.
            string reason = $"SecureFed:DpSgdNoiseShares = {_options.DpSgdNoiseShares} exceeds this round's threshold t = {threshold} ({n} sites); the aggregator does not open a round whose sum of t sites would carry less than the announced DP-SGD noise";
            Log.NoRoundOpened(_logger, reason);
            _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", _state.Store.ListRounds().Count + 1).Add("site", "aggregator").Add("reason", reason));
            return (null, true);
        }

        if (_options.ConsistencyColluders >= threshold)
        {
            // A quorum cannot guard against t colluders: they rebuild any site's secrets from their own shares.
            string reason = $"SecureFed:ConsistencyColluders = {_options.ConsistencyColluders} is not below this round's threshold t = {threshold} ({n} sites); the aggregator does not open a round whose announced consistency quorum cannot hold";
            Log.NoRoundOpened(_logger, reason);
            _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", _state.Store.ListRounds().Count + 1).Add("site", "aggregator").Add("reason", reason));
            return (null, true);
        }

        byte[] sessionBytes = RandomNumberGenerator.GetBytes(16);
        var config = new
        {
            federation = _options.Federation,
            session = Convert.ToHexStringLower(sessionBytes),
            cohort,
            threshold,
            degree = plan.Degree,
            graph_policy = GraphPlanner.PolicyName(_options.GraphPolicy),
            consistency_colluders = _options.ConsistencyColluders,
            vector_length = codec.VectorLength,
            bit_width = codec.BitWidth,
            scale = codec.Scale,
            l2_clip = _options.L2Clip,
            site_noise_multiplier = _options.SiteNoiseMultiplier,
            sigma_site = dpPlan.SigmaSite,
            dp_plan = dpPlan, // what a restart charges the round with if it was interrupted after its unmasking request (ChargeInterruptedRounds)
            dp_sgd = new { _options.DpSgdNoiseMultiplier, _options.DpSgdMaxGradNorm, _options.DpSgdSampleRate, _options.LocalEpochs, _options.DpSgdMaxSteps, _options.DpSgdNoiseShares, layer_scales = _options.DpSgdLayerScales },
            model_version = modelVersion,
            evaluation = evaluation is null ? null : new { entity_types = evaluation.EntityTypes, count_cap = evaluation.CountCap, min_evaluators = threshold },
        };
        _fence.EnsureHeld();
        long round = _state.Store.BeginRound(JsonSerializer.Serialize(config));
        await _fence.CommitAsync(_state, cancellationToken).ConfigureAwait(false);
        var participants = cohort.Select((name, i) =>
        {
            _state.Kit.Manifest.TryGetSite(name, out Federation.PartyInfo info);
            return new Participant(i + 1, name, info.IdentityPublicKey);
        }).ToArray();
        var parameters = new RoundParameters(_options.Federation, round, Convert.ToHexStringLower(sessionBytes), participants,
            threshold, plan.Degree, codec.VectorLength, codec.BitWidth, evaluation, _options.DpSgdMaxSteps, _options.DpSgdNoiseShares, _options.DpSgdLayerScales,
            _options.ConsistencyColluders);

        DateTimeOffset opened = _time.GetUtcNow();
        DateTimeOffset deadline = opened.AddSeconds(_options.TrainingTimeoutSeconds);
        var announcement = new RoundAnnouncement
        {
            Header = new Header { FederationId = _options.Federation, Round = (ulong)round, SessionId = parameters.SessionId, Stage = Stage.Announce, Sender = "aggregator" },
            Threshold = (uint)threshold,
            GraphDegree = (uint)plan.Degree,
            VectorLength = (uint)codec.VectorLength,
            BitWidth = (uint)codec.BitWidth,
            QuantClip = codec.ClipBound,
            QuantScale = codec.Scale,
            WeightCap = (uint)codec.WeightCap,
            DpSgd = new DpSgdSettings { NoiseMultiplier = _options.DpSgdNoiseMultiplier, MaxGradNorm = _options.DpSgdMaxGradNorm, SampleRate = _options.DpSgdSampleRate, LocalEpochs = (uint)_options.LocalEpochs, MaxSteps = (uint)_options.DpSgdMaxSteps, NoiseShares = (uint)_options.DpSgdNoiseShares },
            SiteDp = new SiteDpSettings { L2Clip = _options.L2Clip, NoiseSigmaSite = dpPlan.SigmaSite, TargetNoiseMultiplier = _options.SiteNoiseMultiplier, Delta = _options.Delta },
            ModelVersion = (ulong)modelVersion,
            ModelSha256 = modelSha256,
            ParameterCount = (uint)d,
            ModelSpecSha256 = _options.ModelSpecSha256,
            StageDeadlineUnixMs = deadline.ToUnixTimeMilliseconds(),
            StageTimeoutSeconds = (uint)_options.StageTimeoutSeconds,
            ProgressIntervalSeconds = (uint)_options.ProgressIntervalSeconds,
            ProgressSilenceSeconds = _options.ProgressIntervalSeconds > 0 ? (uint)_options.ProgressSilenceSeconds : 0,
            ProtocolVersion = ProtocolLabels.ProtocolVersion,
            ConsistencyColluders = (uint)_options.ConsistencyColluders,
        };
        announcement.DpSgd.LayerScales.AddRange(_options.DpSgdLayerScales);
        if (evaluation is not null)
        {
            announcement.Evaluation = new EvaluationSettings { CountCap = (uint)evaluation.CountCap, MinEvaluators = (uint)threshold };
            announcement.Evaluation.EntityTypes.AddRange(evaluation.EntityTypes);
        }

        announcement.Participants.AddRange(participants.Select(p => new ParticipantInfo { Index = (uint)p.Index, Name = p.Name, IdentityPublicKey = Google.Protobuf.ByteString.CopyFrom(p.IdentityPublicKey) }));

        IRoundServer server;
        try
        {
            server = await _servers.OpenAsync(parameters, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!IsOwnStorageFault(ex) && ex is not OperationCanceledException and not CoordinatorLeaseLostException)
        {
            // E.g. the aggregator cluster could not open the round: the attempt is recorded as aborted, never silently lost.
            string message = ex.Message.Split('\n', 2)[0].TrimEnd('\r');
            string reason = $"the round could not be opened: {ex.GetType().Name}: {message}";
            _state.Store.AbortRound(round, reason);
            _state.Audit.Append(AuditEvents.RoundAborted, f => f.Add("round", round).Add("stage", StageName(ProtocolStage.AdvertiseKeys)).Add("reason", reason));
            Log.RoundAborted(_logger, round, StageName(ProtocolStage.AdvertiseKeys), reason);
            _telemetry?.RoundAborted(round, StageName(ProtocolStage.AdvertiseKeys), reason);
            await RecordOpenFailedAsync(parameters, reason, cancellationToken).ConfigureAwait(false);
            return (null, false);
        }

        var session = new RoundSession(parameters, server, announcement, codec, dpPlan, modelVersion, modelSha256)
        {
            StageDeadline = deadline, OpenedAt = opened, HeldOut = _heldOut, StragglerQuorumExtra = _stragglerQuorumExtra,
        };
        if (_stragglerQuorumExtra > 0 && _options.StragglerWaitFactor > 0)
        {
            Log.StragglerWaitLater(_logger, session.Round, StragglerQuorum(session), _stragglerQuorumExtra);
        }

        _stragglerQuorumExtra = 0; // set again only if this attempt, too, is shrunk by the wait and then aborts
        _heldOut = [];
        SitOutOpenedAttempt();

        _state.Audit.Append(AuditEvents.RoundOpened, f => WithConsistencyColluders(f
            .Add("round", round)
            .Add("session", parameters.SessionId)
            .Add("cohort", cohort)
            .Add("threshold", threshold)
            .Add("graph_degree", plan.Degree)
            .Add("graph_policy", GraphPlanner.PolicyName(_options.GraphPolicy)), parameters)
            .Add("bit_width", codec.BitWidth)
            .Add("vector_length", codec.VectorLength)
            .Add("model_version", modelVersion)
            .Add("federated_evaluation", evaluation is not null)
            .AddObject("dp", dp => dp
                .Add("l2_clip", _options.L2Clip)
                .Add("site_noise_multiplier", _options.SiteNoiseMultiplier)
                .Add("sigma_site_quantized", dpPlan.SigmaSite)
                .Add("scale", codec.Scale)
                .Add("delta", _options.Delta)
                .Add("dp_sgd_noise_multiplier", _options.DpSgdNoiseMultiplier)
                .Add("dp_sgd_max_grad_norm", _options.DpSgdMaxGradNorm)
                .Add("dp_sgd_sample_rate", _options.DpSgdSampleRate)
                .Add("local_epochs", _options.LocalEpochs)
                .Add("dp_sgd_max_steps", _options.DpSgdMaxSteps)
                .Add("dp_sgd_noise_shares", _options.DpSgdNoiseShares)
                .Add("dp_sgd_layer_scales", _options.DpSgdLayerScales.Length)
                .Add("dp_sgd_layer_scales_sha256", _options.DpSgdLayerScales.Length == 0 ? "" : RoundParameters.LayerScalesSha256(_options.DpSgdLayerScales))));
        Log.RoundOpened(_logger, round, n, threshold, plan.Degree, codec.VectorLength, codec.BitWidth);
        if (session.HeldOut.Count > 0)
        {
            // Left out of this cohort by a search by elimination: audited so an operator sees why they were not in it.
            Log.HeldOut(_logger, round, string.Join(", ", session.HeldOut));
            _state.Audit.Append(AuditEvents.SearchHeldOut, f => f.Add("round", round).Add("held_out", session.HeldOut));
        }
        _telemetry?.RoundOpened(round, cohort, threshold, modelVersion);
        _current = session;
        foreach (TaskCompletionSource<bool> w in _waiting.Values)
        {
            w.TrySetResult(true);
        }

        Report(session, "opened", [], $"t={threshold}, k={plan.Degree}");
        return (session, false);
    }

    /// <summary>
    /// Protocol version 4: a site whose masked input came by slices (most of them to other silos) has no whole-vector
    /// receipt; once the stage closed, its <c>masked_input.received</c> lists the SHA-256 of every slice as the cluster
    /// recorded them (what this coordinator knows of the input; it never had the other slices' words).
    /// </summary>
    private async Task AuditSlicedInputsAsync(RoundSession session, CancellationToken cancellationToken)
    {
        if (session.Server.SliceUploads is null)
        {
            return;
        }

        foreach (int u in session.Survivors ?? [])
        {
            string site = session.Parameters[u].Name;
            if (session.RecordedDigest(site, "masked_input") is not null)
            {
                continue; // sent whole (version 3): audited on receipt
            }

            IReadOnlyList<string> digests = await session.Server.SliceDigestsAsync(u, cancellationToken).ConfigureAwait(false);
            _state.Audit.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", session.Round).Add("site", site)
                .Add("bytes", 4L * session.Parameters.VectorLength).Add("slices_sha256", digests));
        }
    }

    private async Task<bool> RunRoundAsync(RoundSession session, CancellationToken cancellationToken)
    {
        IRoundServer server = session.Server;
        ProtocolStage stage = ProtocolStage.AdvertiseKeys;
        try
        {
            // Stage 0 has the training deadline; later stages the stage timeout.
            await WaitForStageAsync(session, stage, session.StageDeadline, cancellationToken).ConfigureAwait(false);
            await CloseStageAsync(session, stage, server.CloseAdvertiseKeysAsync, cancellationToken, closedWith: u1 => u1).ConfigureAwait(false);

            stage = ProtocolStage.ShareKeys;
            await WaitForStageAsync(session, stage, NextDeadline(session), cancellationToken).ConfigureAwait(false);
            IReadOnlyList<int> u2 = await CloseStageAsync(session, stage, server.CloseShareKeysAsync, cancellationToken, closedWith: u2 => u2).ConfigureAwait(false);
            foreach (int u in u2)
            {
                int count = (await server.SharesForAsync(u, cancellationToken).ConfigureAwait(false)).Count;
                _state.Audit.Append(AuditEvents.SharesRelayed, f => f.Add("round", session.Round).Add("site", session.Parameters[u].Name).Add("count", count));
            }

            stage = ProtocolStage.MaskedInputCollection;
            await WaitForStageAsync(session, stage, NextDeadline(session), cancellationToken).ConfigureAwait(false);
            await CloseStageAsync(session, stage, async ct => session.Survivors = await server.CloseMaskedInputAsync(ct).ConfigureAwait(false), cancellationToken, closedWith: u3 => u3).ConfigureAwait(false);
            await AuditSlicedInputsAsync(session, cancellationToken).ConfigureAwait(false);

            stage = ProtocolStage.ConsistencyCheck;
            await WaitForStageAsync(session, stage, NextDeadline(session), cancellationToken).ConfigureAwait(false);
            await CloseStageAsync(session, stage, async ct => session.UnmaskRequest = await server.CloseConsistencyAsync(ct).ConfigureAwait(false), cancellationToken,
                commitBeforeRelease: request => _state.Audit.Append(AuditEvents.UnmaskRequested, f => f
                    .Add("round", session.Round)
                    .Add("survivors", request.Survivors.Select(i => session.Parameters[i].Name))
                    .Add("dropped", request.Dropped.Select(i => session.Parameters[i].Name))),
                closedWith: request => request.Signatures.Select(s => s.Sender)).ConfigureAwait(false);

            stage = ProtocolStage.Unmasking;
            await WaitForStageAsync(session, stage, NextDeadline(session), cancellationToken).ConfigureAwait(false);
            SlicedRoundResult result = server is ISlicedRoundServer sliced
                ? await CloseStageAsync(session, stage, sliced.FinishBySliceAsync, cancellationToken).ConfigureAwait(false)
                : await CloseStageAsync(session, stage, async ct =>
                {
                    AggregationResult whole = await server.FinishAsync(ct).ConfigureAwait(false);
                    return new SlicedRoundResult(whole.Contributors, whole.RejectedShares, UnmaskedSum.Whole(whole.Sum));
                }, cancellationToken).ConfigureAwait(false);
            AuditRejectedShares(session, result.RejectedShares);
            await CompleteAsync(session, result, cancellationToken).ConfigureAwait(false);

            // An attempt with a complaint (which never aborts it: the complainer left) is no quiet
            // attempt for the search of unopened envelopes: CompleteAsync took that search's step.
            QuietAttempt(session, failed: session.EnvelopeComplaintSites().Length > 0 ? _unopenedEnvelope : null);
            return true;
        }
        catch (RoundAbortedException ex)
        {
            if (ex.AtFault is int atFault && atFault >= 1 && atFault <= session.Parameters.CohortSize)
            {
                BlameDealer(session, session.Parameters[atFault].Name, ex.Reason);
            }
            else if (session.OutOfBoundContributors is string[] contributors)
            {
                ChargeUnmaskedSum(session, contributors.Length);
                SearchByElimination(session, _outOfBound, AuditEvents.OutOfBoundSearch, "contributors", contributors,
                    "the decoded sum was out of its bound",
                    "its masked input was in every decoded sum outside the bound since the search began, and every other site was cleared by an out-of-bound sum without it (found by elimination: the aggregator sees only sums)");
            }
            else if (ex.Suspects.Count > 0 && ex.Suspects.All(i => i >= 1 && i <= session.Parameters.CohortSize))
            {
                SearchByElimination(session, _unrebuiltSecret, AuditEvents.UnrebuiltSecretSearch, "involved", [.. ex.Suspects.Select(i => session.Parameters[i].Name)],
                    "a secret could not be rebuilt from its revealed shares",
                    "it was the owner or a responder of every secret that could not be rebuilt from its revealed shares since the search began, and every other site was cleared by such a failure without it (found by elimination: shares dealt off every polynomial cannot be told from lying responders)");
            }

            // A complaint is a failure of the search of unopened envelopes however the attempt ended, and it does not take
            // the place of the abort's own step above (hostile-site review of the searches: it did, so one site that complained
            // falsely of an honest site and dealt its s-shares off every polynomial had each such attempt abort at
            // Unmasking, after the honest sites' charges, stepping only the envelope search with the same two sites. The
            // search of unrebuilt secrets, which took the hold-outs the cohort could spare, was never stepped and so never
            // narrowed, and the envelope search never held either of the two out: with four sites and MinSites 3 about two
            // attempts in three aborted, for good, and nobody was blamed; docs/PROTOCOL.md "Blame: by elimination").
            if (session.EnvelopeComplaintSites() is { Length: > 0 } complained)
            {
                SearchUnopenedEnvelopes(session, complained);
            }

            await AbortFailedAttemptAsync(session, ex.Stage, ex.Reason).ConfigureAwait(false);
            return false;
        }
        catch (Exception ex) when (!IsOwnStorageFault(ex) && ex is not OperationCanceledException)
        {
            // Whatever the sites sent, one round's failure is that round's: abort it with the reason and go on. Only a
            // failure of the aggregator's own storage (below) stops the coordinator.
            await AbortFailedAttemptAsync(session, stage, $"the round failed at {StageName(stage)}: {ex.GetType().Name}: {ex.Message}").ConfigureAwait(false);
            return false;
        }
    }

    /// <summary>
    /// Records the abort of an attempt that failed (<see cref="RunRoundAsync"/>'s catch blocks) without letting a failure
    /// to record it stop the coordinator, when going on is safe: the round server's part is already best effort
    /// (<see cref="AbortRoundAsync"/>), and anything else that is not the aggregator's own storage (a progress handler,
    /// the session's end) is logged and the coordinator opens the next attempt. A failure of its own storage (round
    /// store, audit log, privacy ledger: <see cref="IsOwnStorageFault"/>), a lost lease or a cancellation still
    /// propagates: the coordinator then stops with that error (fail closed) rather than run attempts it cannot record.
    /// </summary>
    private async Task AbortFailedAttemptAsync(RoundSession session, ProtocolStage stage, string reason)
    {
        try
        {
            await AbortRoundAsync(session, stage, reason).ConfigureAwait(false);
        }
        catch (Exception ex) when (!IsOwnStorageFault(ex) && ex is not OperationCanceledException and not CoordinatorLeaseLostException && !_fence.Lost.IsCancellationRequested)
        {
            Log.AbortNotRecorded(_logger, session.Round, reason, ex.GetType().Name, ex.Message);
            if (!session.IsFinished)
            {
                session.Finish(RoundOutcomes.Aborted(Header(session), reason, _state.Budget.Spent(_options.Delta)));
            }
        }
    }

    /// <summary>
    /// A new staging file for the next model in the aggregator's data directory (next to the round store that receives it,
    /// with the same access rights), deleted when it is closed; one a killed process left is deleted at the next start-up
    /// (<see cref="AggregatorState.NextModelFilePattern"/>).
    /// </summary>
    private FileStream NextModelFile() => new(
        Path.Combine(_state.DataDirectory, AggregatorState.NextModelFilePattern.Replace("*", Guid.NewGuid().ToString("N"), StringComparison.Ordinal)),
        FileMode.CreateNew,
        FileAccess.ReadWrite,
        FileShare.None,
        bufferSize: 1 << 16,
        FileOptions.DeleteOnClose);

    /// <summary>
    /// True for a failure of the aggregator's own storage (audit log, round store, privacy ledger, files): it must stop
    /// the coordinator loudly (fail closed) instead of running rounds it cannot record. Everything else that a round
    /// throws is treated as that round's failure.
    /// </summary>
    internal static bool IsOwnStorageFault(Exception ex)
    {
        if (ex is IOException or UnauthorizedAccessException or System.Data.Common.DbException or ObjectDisposedException)
        {
            return true;
        }

        System.Reflection.Assembly? thrower = ex.TargetSite?.DeclaringType?.Assembly;
        return thrower == typeof(AuditLog).Assembly || thrower == typeof(PrivacyLedger).Assembly
            || ex.TargetSite?.DeclaringType?.Namespace == typeof(Persistence.RoundStatus).Namespace;
    }

    /// <summary>
    /// Audits every revealed share that was wrong and left out of the reconstruction, naming who revealed it and whose
    /// secret it is. Such a share is off the polynomial of the verified secret, which the aggregator cannot pin on either
    /// side: the responder revealed another value than it received, or the dealer (the owner) dealt it a wrong one. So the
    /// line names both and nobody is excluded for it (docs/PROTOCOL.md, "Blame").
    /// </summary>
    private void AuditRejectedShares(RoundSession session, IReadOnlyList<RejectedShare> rejectedShares)
    {
        foreach (IGrouping<int, RejectedShare> responder in rejectedShares.GroupBy(r => r.Responder))
        {
            string site = session.Parameters[responder.Key].Name;
            string reason = "left out of the reconstruction, nobody excluded for it: " + string.Join("; ", responder.Select(r => r.Describe(session.Parameters)));
            Log.Refused(_logger, site, reason);
            _state.Audit.Append(AuditEvents.Refusal, f => f.Add("round", session.Round).Add("site", site).Add("reason", reason));
        }
    }

    /// <summary>
    /// Blames a site whose revealed shares determine another secret than the one it committed to (the round aborted at
    /// Unmasking with <see cref="RoundAbortedException.AtFault"/>): audits a <see cref="AuditEvents.Blame"/> line and
    /// leaves it out of the next attempts, as a verified share accusation does (docs/PROTOCOL.md, "Blame"), so the retry
    /// completes without it instead of aborting the same way again.
    /// </summary>
    private void BlameDealer(RoundSession session, string dealer, string reason)
    {
        int excluded = BlameAndExclude(session, dealer, reason);
        Log.DealerBlamed(_logger, session.Round, dealer, reason, excluded);
    }

    /// <summary>
    /// Excludes <paramref name="site"/>, found at fault with no accuser (the shares or the search are the evidence), and
    /// audits a <see cref="AuditEvents.Blame"/> line {round, accused = at_fault, reason, excluded_rounds}; returns the
    /// attempts it sits out.
    /// </summary>
    private int BlameAndExclude(RoundSession session, string site, string reason)
    {
        int excluded = Exclude(site, session.Round);
        _state.Audit.Append(AuditEvents.Blame, f => f
            .Add("round", session.Round)
            .Add("accused", site)
            .Add("at_fault", site)
            .Add("reason", reason)
            .Add("excluded_rounds", excluded));
        return excluded;
    }

    /// <summary>
    /// An abort that one attempt cannot pin on anybody (a sum out of its bound: the aggregator sees only the sum; a secret
    /// whose revealed shares cannot be rebuilt: a dealer off every polynomial looks like lying responders) names the
    /// sites involved: <paramref name="search"/> narrows the sites involved in every such failure (docs/PROTOCOL.md
    /// "Blame: by elimination"; the suspects held out of this attempt are cleared), audits its step as a
    /// <paramref name="auditEvent"/> line and, when one suspect is left, blames and excludes it like a dealer at fault.
    /// While the search lasts <see cref="DrawHoldOut"/> holds a random half of the suspects out of every attempt.
    /// </summary>
    private void SearchByElimination(RoundSession session, EliminationSearch search, string auditEvent, string involvedField, string[] involved, string failure, string reason)
    {
        // This search's suspects that sat the attempt out: not involved in its failure, so cleared by it.
        string[] cleared = [.. session.HeldOut.Intersect(search.Suspects, StringComparer.Ordinal)];
        EliminationStep step = search.Failed(involved);
        Log.EliminationStep(_logger, session.Round, failure, string.Join(", ", step.Suspects), string.Join(", ", cleared), step.Found ?? "");
        _state.Audit.Append(auditEvent, f => f
            .Add("round", session.Round)
            .Add(involvedField, involved)
            .Add("held_out", cleared)
            .Add("suspects", step.Suspects)
            .Add("restarted", step.Restarted));
        if (step.Found is string found)
        {
            int excluded = BlameAndExclude(session, found, reason);
            Log.FoundByElimination(_logger, session.Round, found, reason, excluded);
        }
    }

    /// <summary>
    /// A step of the search by elimination of unopened envelopes for an attempt with verified complaints (completed without
    /// the complainers, or aborted): <paramref name="complained"/> are every complainer and every site complained of in it.
    /// </summary>
    private void SearchUnopenedEnvelopes(RoundSession session, string[] complained)
    {
        // Once per attempt: a completed attempt steps it before its commit point (CompleteAsync), and should the attempt
        // abort after that, the abort's step (RunRoundAsync) must not count the same complaints again.
        if (session.EnvelopeSearchStepped)
        {
            return;
        }

        session.EnvelopeSearchStepped = true;
        SearchByElimination(session, _unopenedEnvelope, AuditEvents.EnvelopeSearch, "involved", complained,
            "a site could not open a share envelope relayed to it",
            "it complained of, or was complained of by, another site in every attempt with a complaint of a share envelope that did not open since the search began, and every other site was cleared by such an attempt without it (found by elimination: a complaint reveals no key, so an invalid envelope cannot be told from a false complaint)");
    }

    /// <summary>
    /// An attempt aborted after its sum was unmasked (the sum bound): the aggregator saw the sum of the
    /// <paramref name="contributors"/> sites' noisy inputs, so its site-level cost counts against the federation's budget
    /// as a completed round's does (<see cref="AuditEvents.PrivacySpent"/> with the note "sum unmasked, round aborted"),
    /// although no model is stored.
    /// </summary>
    private void ChargeUnmaskedSum(RoundSession session, int contributors)
    {
        double rho = DistributedDp.RhoPerRound(session.DpPlan, contributors);
        double epsilon = _state.Budget.Record(session.Round, rho, _options.Delta);
        AuditSiteSpend(session.Round, rho, epsilon, "sum unmasked, round aborted");
    }

    /// <summary>
    /// An attempt aborted after its unmasking request went out (a stage timeout, a secret that could not be rebuilt, the
    /// aggregator stopping): the survivors' shares may have reached the aggregator, so it may have unmasked the sum, and
    /// every site that answered charged its own ledger for it (PROTOCOL.md §6). Charged conservatively with the survivors
    /// of the request, as they did, unless already charged (a sum refused at its bound, <see cref="ChargeUnmaskedSum"/>).
    /// </summary>
    private void ChargeAbortedAfterUnmaskRequest(RoundSession session, string reason)
    {
        // The request is set by the consistency stage's close before its commit point; only once the stage is released
        // can any site have it (a commit that failed or was cancelled aborts the attempt before any site could charge).
        if (session.UnmaskRequest is not { } request || !session.IsStageClosed(ProtocolStage.ConsistencyCheck) || _state.Budget.Charged(session.Round))
        {
            return;
        }

        int survivors = request.Survivors.Count;
        ChargeWithoutModel(session.Round, DistributedDp.RhoPerRound(session.DpPlan, survivors), survivors,
            $"round aborted after its unmasking request ({reason}): charged conservatively, the sum may have been unmasked");
    }

    /// <summary>Charges <paramref name="round"/>, which produced no model, to the federation's ledger; audited and logged with <paramref name="note"/>.</summary>
    private void ChargeWithoutModel(long round, double rho, int survivors, string note)
    {
        double epsilon = _state.Budget.Record(round, rho, _options.Delta);
        AuditSiteSpend(round, rho, epsilon, note);
        Log.ChargedWithoutModel(_logger, round, rho, survivors, epsilon, note);
    }

    /// <summary>
    /// At start-up, for the rounds a killed aggregator left running (<paramref name="open"/>): one whose consistency stage
    /// was recorded had sent its unmasking request (agents get it only after the stage is recorded), so its survivors may
    /// have revealed their shares, the sum may have been unmasked, and each site that answered charged its own ledger for
    /// it. The federation's ledger is charged likewise (ρ for the survivors, the sites whose masked inputs the stage before
    /// recorded), audited as <see cref="AuditEvents.PrivacySpent"/> with the reason; a round already charged (a crash
    /// after its charge) is not charged twice.
    /// </summary>
    private void ChargeInterruptedRounds(IReadOnlyList<RoundRecord> open)
    {
        foreach (RoundRecord round in open)
        {
            if (!round.Stages.Any(s => s.Stage == StageName(ProtocolStage.ConsistencyCheck)))
            {
                continue;
            }

            if (_state.Budget.Charge(round.Round) is { } charged)
            {
                // Charged (an abort after the unmasking request, a sum refused at its bound) and then stopped before the
                // charge's privacy.spent line: the ledger is right, but the auditor would find the sites' charges uncovered.
                if (!_state.Audit.ReadEvents(AuditEvents.PrivacySpent).Any(e => e.Round == round.Round))
                {
                    AuditSiteSpend(round.Round, charged.Rho, charged.EpsilonAfter,
                        "logged when the aggregator restarted: it had stopped after charging this round, which did not complete, before logging the charge", charged.Delta);
                    Log.ChargeLoggedAtRestart(_logger, round.Round, charged.EpsilonAfter);
                }

                continue;
            }

            (DistributedDpPlan plan, string planSource) = InterruptedRoundPlan(round);
            StageRecord? inputs = round.Stages.LastOrDefault(s => s.Stage == StageName(ProtocolStage.MaskedInputCollection));
            // The survivors are the sites whose masked inputs were collected; without that record, t (the fewest, the largest ρ).
            int survivors = inputs is { Participants.Count: > 0 } ? Math.Min(inputs.Participants.Count, plan.CohortSize) : plan.MinSurvivors;
            ChargeWithoutModel(round.Round, DistributedDp.RhoPerRound(plan, survivors), survivors,
                $"interrupted during unmasking (the aggregator stopped after the round's unmasking request was sent): charged conservatively, the sum may have been unmasked{planSource}");
        }
    }

    /// <summary>
    /// At start-up: a completed round's model is stored first (<see cref="CompleteAsync"/>), then its cost charged
    /// to the federation's ledger, then <see cref="AuditEvents.AggregateProduced"/>, <see cref="AuditEvents.PrivacySpent"/>
    /// and <see cref="AuditEvents.RoundCompleted"/> logged. An aggregator killed in between left a model that the
    /// federation goes on from with its cost never charged (ε understated, the budget check too lenient) or never logged
    /// (an auditor finds the sites' charges for it uncovered). Only the newest round can be caught so (the next round opens
    /// after the completion returned), and only if this audit log opened it: its missing charge is recorded as the
    /// completion would have (ρ for its participants, the round's own noise plan), and its missing lines are logged with a
    /// note saying they were written at the restart.
    /// </summary>
    private void RecoverUnloggedCompletion()
    {
        // round.completed is the completion's last line, after the charge and every other line: with it, nothing is missing.
        if (_state.Store.ListRecentRounds(1).LastOrDefault() is not { Status: Persistence.RoundStatus.Completed } round
            || _state.Audit.ReadEvents(AuditEvents.RoundCompleted).Any(e => e.Round == round.Round)
            || !_state.Audit.ReadEvents(AuditEvents.RoundOpened).Any(e => e.Round == round.Round))
        {
            return;
        }

        bool produced = _state.Audit.ReadEvents(AuditEvents.AggregateProduced).Any(e => e.Round == round.Round);
        bool spent = _state.Audit.ReadEvents(AuditEvents.PrivacySpent).Any(e => e.Round == round.Round);
        (double Rho, double EpsilonAfter, double Delta)? charge = _state.Budget.Charge(round.Round);

        const string Note = "logged when the aggregator restarted: it had stopped after storing this round's model";
        if (!produced)
        {
            ModelRecord? model = _state.Store.LatestModel() is { } latest && latest.Round == round.Round ? latest : null;
            _state.Audit.Append(AuditEvents.AggregateProduced, f => f
                .Add("round", round.Round)
                .Add("model_version", model?.Version ?? 0)
                .Add("sha256", round.ModelSha256 ?? "")
                .Add("participants", round.Participants)
                .Add("note", Note));
        }

        // The versions the completion's transaction deleted, recorded in the same transaction, and the round's federated
        // evaluation, recorded before it: their lines come between aggregate.produced and privacy.spent, as in CompleteAsync.
        var recovered = new List<string>();
        if (!produced)
        {
            recovered.Add(AuditEvents.AggregateProduced);
        }

        if (!_state.Audit.ReadEvents(AuditEvents.ModelsPruned).Any(e => e.Round == round.Round)
            && _state.Store.ListLedger(AggregatorStore.ModelsPrunedKind).LastOrDefault(e => e.Round == round.Round) is { } prunedRecord)
        {
            using var pruned = JsonDocument.Parse(prunedRecord.PayloadJson);
            JsonElement kept = pruned.RootElement;
            long prunedWith = kept.GetProperty("model_version").GetInt64();
            long keep = kept.GetProperty("keep").GetInt64();
            (string Version, string Sha256)[] versions = [.. kept.GetProperty("pruned").EnumerateObject().Select(p => (p.Name, p.Value.GetString()!))];
            AuditPruned(round.Round, prunedWith, (int)keep, versions, Note);
            recovered.Add(AuditEvents.ModelsPruned);
        }

        if (!_state.Audit.ReadEvents(AuditEvents.FederatedEvaluation).Any(e => e.Round == round.Round))
        {
            if (_state.Store.ListLedger(AggregatorStore.FederatedEvaluationKind).LastOrDefault(e => e.Round == round.Round) is { } evaluationRecord)
            {
                (long scoredVersion, FederatedEvaluation? evaluation, string? withheld, string[] declaredScored) = ReadEvaluationRecord(evaluationRecord.PayloadJson);
                AuditEvaluation(round.Round, scoredVersion, evaluation, withheld, declaredScored, Note);
                recovered.Add(AuditEvents.FederatedEvaluation);
            }
            else if (_state.Audit.ReadEvents(AuditEvents.RoundOpened).LastOrDefault(e => e.Round == round.Round) is { } opened
                && opened.Fields.TryGetProperty("federated_evaluation", out JsonElement scoring) && scoring.ValueKind == JsonValueKind.True)
            {
                // Completed by an earlier version, which kept the summed counts in memory only: they are gone; say so.
                const string Lost = "not published: the aggregator stopped after storing this round's model and before publishing its federated evaluation, and the summed counts were not kept";
                long scoredVersion = opened.Fields.TryGetProperty("model_version", out JsonElement v) && v.TryGetInt64(out long n) ? n : 0;
                AuditEvaluation(round.Round, scoredVersion, null, Lost, [], Note);
                recovered.Add(AuditEvents.FederatedEvaluation);
            }
        }

        if (charge is not { } recorded)
        {
            (DistributedDpPlan plan, string planSource) = InterruptedRoundPlan(round);
            double rho = DistributedDp.RhoPerRound(plan, round.Participants.Count);
            recorded = (rho, _state.Budget.Record(round.Round, rho, _options.Delta), _options.Delta);
            Log.ChargedAtRestart(_logger, round.Round, rho, round.Participants.Count, recorded.EpsilonAfter);
            AuditSiteSpend(round.Round, recorded.Rho, recorded.EpsilonAfter, "charged when the aggregator restarted: it had stopped after storing this round's model, before charging it" + planSource);
            recovered.Add(AuditEvents.PrivacySpent);
        }
        else if (!spent)
        {
            AuditSiteSpend(round.Round, recorded.Rho, recorded.EpsilonAfter, Note, recorded.Delta);
            recovered.Add(AuditEvents.PrivacySpent);
        }

        _state.Audit.Append(AuditEvents.RoundCompleted, f => f.Add("round", round.Round).Add("note", Note));
        recovered.Add(AuditEvents.RoundCompleted);
        _state.Audit.Checkpoint();
        Log.CompletionRecovered(_logger, round.Round, _state.Store.LatestModel() is { } stored && stored.Round == round.Round ? stored.Version : 0,
            round.Participants.Count, recorded.EpsilonAfter, string.Join(", ", recovered));
    }

    /// <summary>
    /// At start-up: the operator console keeps a finished round's record (survivors, versions, the federation F1 of the
    /// version it scored) when the round ends, after its completion was committed (<see cref="CompleteAsync"/>). An
    /// aggregator stopped in between left the newest completed round without one, and the console's history showed it
    /// without its F1 (a "still missing" of session 54). Adds it from the store: the round's times and participants, the
    /// version it produced, and the F1 of its federated evaluation, kept with the round before its model
    /// (<see cref="AggregatorStore.FederatedEvaluationKind"/>).
    /// </summary>
    /// <summary>
    /// The operator console's records of the rounds a restart aborted (newest last, so the newest is "Now"): the cohort
    /// and the model version it started from as its stored configuration has them (else the latest stored version).
    /// </summary>
    private void RecordInterruptedOnConsole(RoundRecord[] open, string reason)
    {
        if (_telemetry is null)
        {
            return;
        }

        long latest = _state.Store.LatestModel()?.Version ?? 0;
        foreach (RoundRecord round in open.OrderBy(r => r.Round))
        {
            // A configuration this version cannot read: the record shows the round without its cohort.
            var config = StoredConfiguration(round.ConfigurationJson);
            _telemetry.RoundInterrupted(round.Round, round.StartedUtc, config?.BaseVersion ?? latest, config?.Cohort ?? [], reason);
        }
    }

    /// <summary>
    /// The session, cohort and base model version a round's stored configuration holds (each null when absent or of
    /// another type); null when it is not a JSON object this version can read.
    /// </summary>
    private static (string? Session, string[]? Cohort, long? BaseVersion)? StoredConfiguration(string configurationJson)
    {
        try
        {
            using var config = JsonDocument.Parse(configurationJson);
            JsonElement root = config.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            string? session = root.TryGetProperty("session", out JsonElement s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            string[]? cohort = root.TryGetProperty("cohort", out JsonElement c) && c.ValueKind == JsonValueKind.Array
                ? [.. c.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)]
                : null;
            long? baseVersion = root.TryGetProperty("model_version", out JsonElement v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long n) ? n : null;
            return (session, cohort, baseVersion);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private void RecoverConsoleRecord()
    {
        if (_telemetry is null || _state.Store.ListRecentRounds(1).LastOrDefault() is not { Status: Persistence.RoundStatus.Completed } round
            || _telemetry.HasRound(round.Round))
        {
            return;
        }

        long? produced = _state.Store.FindModelOfRound(round.Round)?.Version;
        long baseVersion = produced is long v ? v - 1 : 0;
        double? f1 = null;
        if (_state.Store.LastLedgerEntry(round.Round, AggregatorStore.FederatedEvaluationKind) is { } record)
        {
            (long scoredVersion, FederatedEvaluation? evaluation, _, _) = ReadEvaluationRecord(record.PayloadJson);
            baseVersion = scoredVersion;
            f1 = evaluation?.F1;
        }

        _telemetry.RoundRecovered(round.Round, round.StartedUtc, round.EndedUtc, baseVersion, round.Participants, produced, f1);
    }

    /// <summary>
    /// The noise plan an interrupted round was opened with: the one kept in its configuration, or for a round opened by an
    /// earlier version (none kept) the plan of its cohort size and threshold under the current settings, said in the note.
    /// </summary>
    private (DistributedDpPlan Plan, string Source) InterruptedRoundPlan(RoundRecord round)
    {
        using var config = JsonDocument.Parse(round.ConfigurationJson);
        JsonElement root = config.RootElement;
        if (root.TryGetProperty("dp_plan", out JsonElement kept) && kept.ValueKind == JsonValueKind.Object
            && kept.Deserialize<DistributedDpPlan>() is { } plan)
        {
            return (plan, string.Empty);
        }

        int n = root.GetProperty("cohort").GetArrayLength();
        int threshold = root.GetProperty("threshold").GetInt32();
        (_, DistributedDpPlan current) = FederatedAveraging.PlanRound(_state.Model.ParameterCount, _options.L2Clip, n, threshold, _options.SiteNoiseMultiplier, _options.WeightCap, EvaluationLayoutOrNull());
        return (current, " (noise plan recomputed from the current settings: the round was opened by an earlier version)");
    }

    /// <summary>Audits a round's site-level cost as <see cref="AuditEvents.PrivacySpent"/> (with <paramref name="note"/> when not null).</summary>
    /// <summary>
    /// Logs a site-level charge as <c>privacy.spent</c>; <paramref name="delta"/> is the δ <paramref name="epsilon"/> is at
    /// (a charge recovered at a restart keeps the δ it was computed at: logged with a changed <c>Delta</c>, the auditor's
    /// recomputed ε at that δ would call an honest log's ε understated; diff review of session 59).
    /// </summary>
    private void AuditSiteSpend(long round, double rho, double epsilon, string? note = null, double? delta = null) =>
        _state.Audit.Append(AuditEvents.PrivacySpent, f =>
        {
            f.Add("round", round)
                .Add("guarantee", "site")
                .Add("rho", rho)
                .Add("epsilon", epsilon)
                .Add("delta", delta ?? _options.Delta)
                .Add("budget", _options.EpsilonBudget);
            if (note is not null)
            {
                f.Add("note", note);
            }
        });

    /// <summary>
    /// A completed attempt: each search by elimination that has now seen its quiet window of completed attempts without a
    /// failure ends (its hold-outs cost the honest sites rounds), audited as <see cref="AuditEvents.SearchEnded"/>;
    /// <paramref name="failed"/>, a search this completed attempt was a failure of (a complaint that did not abort it),
    /// is not counted as quiet.
    /// </summary>
    private void QuietAttempt(RoundSession session, EliminationSearch? failed = null)
    {
        foreach ((EliminationSearch search, string name) in new[] { (_outOfBound, "out_of_bound"), (_unrebuiltSecret, "unrebuilt_secret"), (_unopenedEnvelope, "envelope") })
        {
            if (ReferenceEquals(search, failed))
            {
                continue;
            }

            int window = search.QuietWindow;
            if (search.Completed() is IReadOnlyList<string> suspects)
            {
                Log.SearchEnded(_logger, session.Round, name, window, string.Join(", ", suspects));
                _state.Audit.Append(AuditEvents.SearchEnded, f => f
                    .Add("round", session.Round)
                    .Add("search", name)
                    .Add("suspects", suspects)
                    .Add("quiet_attempts", window));
            }
        }
    }

    /// <summary>
    /// Whether an attempt with <paramref name="sites"/> sites could open: at least <see cref="AggregatorOptions.MinSites"/>,
    /// a threshold that carries every DP-SGD noise share, and a round the federation's budget allows.
    /// </summary>
    private bool CanOpenWith(int sites)
    {
        if (sites < _options.MinSites)
        {
            return false;
        }

        try
        {
            int threshold = FederatedAveraging.Threshold(_options.PlanGraph(sites), _options.Threshold);
            if (_options.DpSgdNoiseShares > threshold || _options.ConsistencyColluders >= threshold)
            {
                return false;
            }

            EvaluationLayout? evaluation = EvaluationLayoutOrNull();
            (_, DistributedDpPlan dpPlan) = FederatedAveraging.PlanRound(_state.Model.ParameterCount, _options.L2Clip, sites, threshold, _options.SiteNoiseMultiplier, _options.WeightCap, evaluation);
            return _state.Budget.Check(DistributedDp.RhoPerRound(dpPlan, threshold), _options.EpsilonBudget, _options.Delta).Allowed;
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private DateTimeOffset NextDeadline(RoundSession session)
    {
        DateTimeOffset now = _time.GetUtcNow();
        session.StageOpenedAt = now;
        session.StageQuorumAt = null;
        session.LastMemberAwaited = false;
        session.StageDeadline = now.AddSeconds(_options.StageTimeoutSeconds);
        return session.StageDeadline;
    }

    private async Task WaitForStageAsync(RoundSession session, ProtocolStage stage, DateTimeOffset deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (session.AbortRequested is string reason)
            {
                throw new RoundAbortedException(stage, reason);
            }

            RoundServerStatus status = await session.Server.StatusAsync(cancellationToken).ConfigureAwait(false);
            var declined = session.Declined.Select(session.IndexOf).ToHashSet();
            var expected = status.Expected.Where(i => !declined.Contains(i)).ToHashSet();
            if (expected.IsSubsetOf(status.Delivered))
            {
                return;
            }

            if (stage == ProtocolStage.MaskedInputCollection && expected.Union(status.Delivered).Count() < session.Parameters.Threshold)
            {
                // Declines (each share complaint is one: the complainer leaves) left fewer than t sites that have sent or can
                // still send an input: the attempt aborts now, below t, instead of waiting out the stage deadline. An abort
                // rather than a close: before a close, late uploads of declined sites could bring the count to t while a
                // member that had not declined was still uploading, and the close would leave it out (review of 7e9b788).
                string complained = session.EnvelopeComplaintSites().Length > 0 ? ", some of them complaining of a share envelope" : "";
                throw new RoundAbortedException(stage, string.Create(CultureInfo.InvariantCulture,
                    $"only {status.Delivered.Count} sites sent masked inputs; the threshold is {session.Parameters.Threshold}, and the other members declined{complained}"));
            }

            if (stage == ProtocolStage.AdvertiseKeys && OnlySilentLeft(session, expected, status.Delivered) is { } silent)
            {
                // Every member not yet heard from reported training progress and then fell silent (docs/PROTOCOL.md
                // "Training progress"): gone, not slow. The stage closes now; the close audits them as dropouts.
                Log.SilentWhileTraining(_logger, session.Round, string.Join(", ", silent), _options.ProgressSilenceSeconds);
                return;
            }

            // One reading of the clock for the whole decision: with a second one below, a thread preempted between the two
            // (a loaded machine) found the cutoff not yet passed, then no time left, and closed the stage without marking
            // the stragglers left out, so the next attempt's wait did not start later (a CI run saw the attack succeed
            // twice in a row).
            DateTimeOffset now = _time.GetUtcNow();
            DateTimeOffset until = deadline;
            if (stage == ProtocolStage.AdvertiseKeys && StragglerCutoff(session, status.Delivered.Count) is { } cutoff && cutoff < deadline)
            {
                if (now >= cutoff)
                {
                    List<string> waiting = [.. expected.Except(status.Delivered).Order().Select(i => session.Parameters[i].Name)];
                    Log.StragglersLeftOut(_logger, session.Round, string.Join(", ", waiting), (cutoff - session.QuorumAt!.Value).TotalSeconds,
                        status.Delivered.Count, expected.Count, (session.QuorumAt.Value - session.OpenedAt).TotalSeconds);
                    session.StragglersLeftOut = true;
                    return;
                }

                until = cutoff;
            }
            else if (stage != ProtocolStage.AdvertiseKeys && !session.LastMemberAwaited && LastMemberCutoff(session, expected, status.Delivered) is { } last && last < deadline)
            {
                if (now >= last)
                {
                    int missing = expected.Except(status.Delivered).Single();
                    if (stage == ProtocolStage.Unmasking && await UnmaskingShortfallAsync(session, missing, cancellationToken).ConfigureAwait(false) is { } shortfall)
                    {
                        // The answers in hand would not rebuild every secret (a responder revealed wrong values, or a dealer
                        // dealt them): cutting the last member would abort the attempt for want of its shares. Wait for it
                        // until the stage's deadline instead; with its answer the wrong shares are outvoted and audited
                        // (AuditRejectedShares). Hostile-site review, session 55.
                        Log.LastMemberAwaited(_logger, session.Round, session.Parameters[missing].Name, shortfall);
                        session.LastMemberAwaited = true;
                        continue;
                    }

                    Log.StageStragglerLeftOut(_logger, session.Round, session.Parameters[missing].Name, StageName(stage), (last - session.StageQuorumAt!.Value).TotalSeconds,
                        expected.Count - 1, expected.Count, (session.StageQuorumAt.Value - session.StageOpenedAt).TotalSeconds);

                    // As at the keys stage: should this attempt abort after all (a member of the t left drops out), the next
                    // one cuts a last member (and starts its keys wait) only with one answer more (review of 2280b08: a
                    // site that answered at once had the slow honest last member cut, then dropped, in every attempt).
                    session.StragglersLeftOut = true;
                    return;
                }

                until = last;
            }

            TimeSpan left = until - now;
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            await session.WaitForActivityAsync(left < TimeSpan.FromMilliseconds(250) ? left : TimeSpan.FromMilliseconds(250), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Why the unmasking answers in hand would not rebuild a secret that <paramref name="missing"/>'s answer could still
    /// help rebuild (<see cref="IRoundServer.UnmaskingShortfallAsync"/>), or null. A query that fails (a cluster's round
    /// grain out of reach) is logged and answered null: the stage then cuts its last member as it did before it asked,
    /// rather than the failed query aborting the attempt after the honest sites' charges (diff review of d7178c7).
    /// </summary>
    private async Task<string?> UnmaskingShortfallAsync(RoundSession session, int missing, CancellationToken cancellationToken)
    {
        try
        {
            return await session.Server.UnmaskingShortfallAsync(missing, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.UnmaskingShortfallUnknown(_logger, session.Round, session.Parameters[missing].Name, ex.Message);
            return null;
        }
    }

    /// <summary>
    /// When the keys stage stops waiting for the members still training (<see cref="AggregatorOptions.StragglerWaitFactor"/>):
    /// once <paramref name="advertised"/> reaches the threshold t (<see cref="StragglerQuorum"/>), <see cref="AggregatorOptions.StragglerWaitFactor"/> times
    /// the time from the opening to that moment later, and no earlier than <see cref="AggregatorOptions.StragglerMinWaitSeconds"/>
    /// after it; null while fewer than t advertised, or when the factor is 0. The moment t was reached is kept in the
    /// session, so the cutoff does not move as more keys arrive.
    /// </summary>
    private DateTimeOffset? StragglerCutoff(RoundSession session, int advertised)
    {
        if (_options.StragglerWaitFactor <= 0 || advertised < StragglerQuorum(session))
        {
            return null;
        }

        return WaitEnd(session.OpenedAt, session.QuorumAt ??= _time.GetUtcNow(), _options.StragglerMinWaitSeconds);
    }

    /// <summary>
    /// The end of a straggler wait that started at <paramref name="quorum"/>: <see cref="AggregatorOptions.StragglerWaitFactor"/>
    /// times the time from <paramref name="opened"/> to it later, and no earlier than <paramref name="minSeconds"/> after it.
    /// </summary>
    private DateTimeOffset WaitEnd(DateTimeOffset opened, DateTimeOffset quorum, int minSeconds)
        => quorum + TimeSpan.FromSeconds(Math.Max(minSeconds, _options.StragglerWaitFactor * Math.Max(0, (quorum - opened).TotalSeconds)));

    /// <summary>
    /// When a stage after the keys stops waiting for its last member (<see cref="AggregatorOptions.StageStragglerMinWaitSeconds"/>):
    /// once every member of <paramref name="expected"/> but one is among <paramref name="delivered"/> and at least t
    /// answered, <see cref="AggregatorOptions.StragglerWaitFactor"/> times the time from the stage's opening to that moment
    /// later, and no earlier than <see cref="AggregatorOptions.StageStragglerMinWaitSeconds"/> after it; null otherwise,
    /// or when the factor is 0. Only the last member: a hostile site that answers each stage just before its deadline
    /// held every round it was in for up to 4 × <see cref="AggregatorOptions.StageTimeoutSeconds"/> (threat model C8),
    /// while the honest members' answers after the keys take seconds; cutting more than one would leave honest sites out
    /// whenever two are slow together. The moment is kept per stage, so the cutoff does not move.
    /// Only answers of members that did not decline count towards t (plus one for each attempt in a row before it that
    /// cut a member or left stragglers out and then aborted, <see cref="StragglerQuorum"/>): a site that answered and then
    /// declined takes no further part, so counting it let a hostile site have the slow honest last member cut and then
    /// leave the attempt below t at the next stage, in every attempt (review of 2280b08).
    /// </summary>
    private DateTimeOffset? LastMemberCutoff(RoundSession session, HashSet<int> expected, IReadOnlyCollection<int> delivered)
    {
        int answered = delivered.Count(expected.Contains);
        if (_options.StragglerWaitFactor <= 0 || answered < StragglerQuorum(session) || expected.Count - answered != 1)
        {
            return null;
        }

        return WaitEnd(session.StageOpenedAt, session.StageQuorumAt ??= _time.GetUtcNow(), _options.StageStragglerMinWaitSeconds);
    }

    /// <summary>The announced consistency quorum's colluders in round.opened, only when announced (older logs keep their shape).</summary>
    private static AuditFields WithConsistencyColluders(AuditFields fields, RoundParameters parameters) =>
        parameters.ConsistencyColluders == 0 ? fields : fields.Add("consistency_colluders", parameters.ConsistencyColluders);

    /// <summary>
    /// The advertisements that start an attempt's straggler wait: t, plus one for each attempt in a row before it that the
    /// wait shrank and that then aborted (<see cref="RoundSession.StragglerQuorumExtra"/>), at most the cohort; at least the
    /// round's consistency quorum (<see cref="RoundParameters.QuorumColluders"/>: a sparse graph's, or the announced
    /// <see cref="AggregatorOptions.ConsistencyColluders"/>; t under the complete graph by default), since a round cut
    /// below it aborts at the consistency stage (diff review of session 58).
    /// </summary>
    private static int StragglerQuorum(RoundSession session) =>
        Math.Min(
            Math.Max(session.Parameters.Threshold + session.StragglerQuorumExtra, session.Parameters.SignatureQuorum(session.Parameters.QuorumColluders)),
            session.Parameters.CohortSize);

    /// <summary>
    /// The cohort members still expected in the keys stage when every one of them reported training progress in this
    /// attempt and has since been silent for <see cref="AggregatorOptions.ProgressSilenceSeconds"/>; null when any of
    /// them may still be at work (or reports are off).
    /// </summary>
    private List<string>? OnlySilentLeft(RoundSession session, HashSet<int> expected, IEnumerable<int> delivered)
    {
        if (_options.ProgressIntervalSeconds <= 0)
        {
            return null;
        }

        var silent = session.SilentSince(_time.GetUtcNow(), TimeSpan.FromSeconds(_options.ProgressSilenceSeconds)).ToHashSet(StringComparer.Ordinal);
        List<string> waiting = [.. expected.Except(delivered).Order().Select(i => session.Parameters[i].Name)];
        return waiting.Count > 0 && waiting.All(silent.Contains) ? waiting : null;
    }

    /// <summary>
    /// Closes <paramref name="stage"/>: runs <paramref name="close"/>, audits the sites that dropped out, records the stage in
    /// the round store and releases the sites waiting for it. The dropouts and the record are the expected members missing
    /// from the set the close fixed (<paramref name="closedWith"/> of its result); without it (the unmasking stage, whose
    /// close rebuilds the secrets from what arrived) from the round's status before the close, audited before it. With <paramref name="commitBeforeRelease"/> (the consistency
    /// stage, whose release sends the unmasking request) it is called with the close's result and the coordinator's state
    /// is committed before the release: a site that answers the request charges its ledger for the round, and on the
    /// aggregator cluster a coordinator that takes over charges the round too only if the round store it restores holds
    /// this stage (<see cref="ChargeInterruptedRounds"/>). Otherwise the stage's audit lines are saved after the release.
    /// </summary>
    private async Task<T> CloseStageAsync<T>(RoundSession session, ProtocolStage stage, Func<CancellationToken, Task<T>> close, CancellationToken cancellationToken, Action<T>? commitBeforeRelease = null, Func<T, IEnumerable<int>>? closedWith = null)
    {
        RoundServerStatus status = await session.Server.StatusAsync(cancellationToken).ConfigureAwait(false);
        var expected = status.Expected.ToHashSet();
        var delivered = status.Delivered.ToHashSet();
        string[] dropped = [];
        if (closedWith is null)
        {
            dropped = AuditDropouts(session, stage, expected, delivered);
            // Said before the close's work, as bench cluster expects: it samples each process's CPU at this line and at
            // the work's line below (after session 57 moved it past the work the unmasking CPU came out as -0.01 s).
            Log.StageClosed(_logger, session.Round, StageName(stage), delivered.Count, string.Join(", ", dropped));
        }

        // The close's own work, timed here (for the unmasking stage: reconstructing the seeds and removing every mask, in the
        // slice grains on the cluster; bench cluster reads it from this line, docs/benchmarks.md).
        long closing = _time.GetTimestamp();
        T result;
        try
        {
            result = await close(cancellationToken).ConfigureAwait(false);
        }
        catch when (closedWith is not null)
        {
            AuditDropouts(session, stage, expected, delivered); // the close failed: the dropouts as last seen
            throw;
        }

        Log.StageWork(_logger, session.Round, StageName(stage), _time.GetElapsedTime(closing).TotalSeconds);
        if (closedWith is not null)
        {
            // The set the close itself fixed: a message accepted after the status above (while its dropout line was being
            // made durable, say) is in the round, so it is no dropout and belongs to the stage's record.
            delivered = closedWith(result).ToHashSet();
            dropped = AuditDropouts(session, stage, expected, delivered);
            Log.StageClosed(_logger, session.Round, StageName(stage), delivered.Count, string.Join(", ", dropped));
        }

        string[] deliveredNames = [.. delivered.Order().Select(i => session.Parameters[i].Name)];
        _telemetry?.StageClosed(session.Round, StageName(stage), deliveredNames, dropped);
        _state.Store.RecordStage(session.Round, StageName(stage), deliveredNames);
        if (commitBeforeRelease is not null)
        {
            commitBeforeRelease(result);
            await _fence.CommitAsync(_state, cancellationToken).ConfigureAwait(false);
            session.CloseStage(stage);
        }
        else
        {
            session.CloseStage(stage);
            // The stage's audit lines (what each site sent, who dropped out) durable in the cluster before the next stage acts on them.
            await _fence.SaveAuditAsync(_state, cancellationToken).ConfigureAwait(false);
        }

        Report(session, StageName(stage), dropped, $"{delivered.Count} of {expected.Count} delivered", deliveredNames);
        return result;
    }

    /// <summary>Audits the members of <paramref name="expected"/> missing from <paramref name="delivered"/> as the stage's dropouts (no line when none) and returns their names.</summary>
    private string[] AuditDropouts(RoundSession session, ProtocolStage stage, HashSet<int> expected, HashSet<int> delivered)
    {
        string[] dropped = [.. expected.Except(delivered).Order().Select(i => session.Parameters[i].Name)];
        if (dropped.Length > 0)
        {
            _state.Audit.Append(AuditEvents.Dropout, f => f.Add("round", session.Round).Add("stage", StageName(stage)).Add("sites", dropped));
        }

        return dropped;
    }

    /// <summary>Each contributor's declared weight (null where it declared none), in contributor order.</summary>
    private static (string Site, long? Weight)[] DeclaredWeights(RoundSession session, IEnumerable<int> contributors)
        => [.. contributors.Select(i => session.Parameters[i].Name).Select(name => (name, session.WeightDeclaration(name)))];

    private async Task CompleteAsync(RoundSession session, SlicedRoundResult result, CancellationToken cancellationToken)
    {
        // W must lie in [contributors, contributors × weight cap] before the sum is used (PROTOCOL.md, the W bound). The sum's tail
        // (the weight slot, then any evaluation slots) is read first; the coordinates are then read once, in order, a run
        // at a time, and decoded a block at a time into the next model (SumFusion): on the cluster the whole sum is never
        // in this process, only one unmasked slice at a time.
        UpdateCodec codec = session.Codec;
        uint[] tail = await result.Sum.TailAsync(codec.ParameterCount, cancellationToken).ConfigureAwait(false);
        long decodedWeight = codec.DecodeTotalWeightFromTail(tail);
        // Then W against the weights the contributors declared outside the sum (AdvertiseKeysRequest.weight): a wrapped or
        // wrong slot would scale the average without breaking the sum bound where the noise dominates the sum.
        string? badWeight = codec.CheckTotalWeight(decodedWeight, result.Contributors.Count)
            ?? codec.CheckDeclaredWeights(decodedWeight, DeclaredWeights(session, result.Contributors));
        if (badWeight is not null)
        {
            session.OutOfBoundContributors = [.. result.Contributors.Select(i => session.Parameters[i].Name)];
            throw new RoundAbortedException(ProtocolStage.Unmasking, badWeight);
        }

        // Each site sent ω_u·Δ_u with ω_u = w_u / cap, so the weighted average is Σ ω_u Δ_u / Σ ω_u.
        // The update rule (FedAvg, or the momentum / adam moments that go with the base model version) is applied run by run,
        // a block at a time: the base model's block read from the round store, the next model's block written to a staging
        // file (deleted when closed) that the store copies in below; neither model is ever whole in memory.
        SumFusion fusion = _state.ServerRule.BeginFusion(session.BaseModelVersion, codec, decodedWeight, digest: result.Sum.RecordsDigest);
        using FileStream next = NextModelFile();
        string sha;
        string? sumSha256;
        using (Stream baseModel = _state.Store.OpenModel(session.BaseModelVersion))
        using (var streamed = new StoredModelFusion(fusion, baseModel, session.BaseModelSha256, $"model version {session.BaseModelVersion} in '{_state.Store.Path}'", next))
        {
            // The sum bound (PROTOCOL.md): the decoded coordinates' norm and largest value, measured as they pass, must be
            // within what the contributors' clipped updates and noise can give; else no site's edit reaches the model.
            var bound = new SumBound(codec);
            await result.Sum.ReadInOrderAsync((offset, words) =>
            {
                bound.Add(offset, words);
                streamed.Add(offset, words);
            }, cancellationToken).ConfigureAwait(false);
            if (bound.Check(decodedWeight, result.Contributors.Count, session.DpPlan.SigmaSite) is string outside)
            {
                session.OutOfBoundContributors = [.. result.Contributors.Select(i => session.Parameters[i].Name)];
                throw new RoundAbortedException(ProtocolStage.Unmasking, outside);
            }

            (sha, sumSha256) = streamed.Complete();
        }

        if (sumSha256 is not null)
        {
            await result.Sum.RecordAsync(sumSha256, cancellationToken).ConfigureAwait(false);
        }

        // Federated evaluation of the round's starting model: only the sum over the contributors, published when at
        // least t of them scored it and exactly as many declared so (ConsistencyRequest.scored); an impossible sum or a
        // flag that disagrees with the declarations withholds the score, never the model (PROTOCOL.md).
        string? evaluationNote = null;
        string[] contributors = [.. result.Contributors.Select(i => session.Parameters[i].Name)];
        ScoringDeclaration[] declarations = [.. contributors.Select(name => new ScoringDeclaration(name, session.ScoredDeclaration(name)))];
        FederatedEvaluation? evaluation = codec.Evaluation is null ? null
            : FederatedAveraging.EvaluateTail(codec, tail, declarations, session.Parameters.Threshold, out evaluationNote);

        long version = session.BaseModelVersion + 1;
        double rho = DistributedDp.RhoPerRound(session.DpPlan, result.Contributors.Count);
        _fence.EnsureHeld();
        string[] declaredScored = [.. declarations.Where(d => d.Scored == true).Select(d => d.Site)];
        if (evaluation is not null || evaluationNote is not null)
        {
            // The counts live in this process's memory only: kept with the round before its model is stored, so that a
            // restart after the model was stored but before the evaluation was audited can still audit it (RecoverUnloggedCompletion).
            // After the fence check, as every durable write of a round.
            _state.Store.AppendLedger(session.Round, AggregatorStore.FederatedEvaluationKind, EvaluationRecord(session.BaseModelVersion, evaluation, evaluationNote, declaredScored));
        }

        // The model version and the update rule's moments that produced it in one transaction (the model streamed from the
        // staging file and checked against its SHA-256 as it is copied; the optimizer's own memory): a restart never finds
        // one without the other.
        next.Position = 0;
        // Older versions beyond SecureFed:KeepModelVersions go in the same transaction (never the new one, nor the moments').
        IReadOnlyList<ModelRecord> pruned = _state.Store.CompleteRoundWithModel(
            session.Round, version, next, sha, contributors, _state.ServerRule.Moments, _options.KeepModelVersions);
        _state.ServerRule.Stored();
        double epsilon = _state.Budget.Record(session.Round, rho, _options.Delta);
        _state.Model.Update(version, sha);
        _state.Audit.Append(AuditEvents.AggregateProduced, f => f
            .Add("round", session.Round)
            .Add("model_version", version)
            .Add("sha256", sha)
            .Add("participants", contributors)
            .Add("total_weight", decodedWeight)
            .AddObject("server_update", rule => ServerRuleFields(rule, _state.ServerRule)));
        if (pruned.Count > 0)
        {
            AuditPruned(session.Round, version, _options.KeepModelVersions,
                [.. pruned.Select(m => (m.Version.ToString(CultureInfo.InvariantCulture), m.Sha256))], restartNote: null);
        }

        AuditEvaluation(session.Round, session.BaseModelVersion, evaluation, evaluationNote, declaredScored);
        AuditSiteSpend(session.Round, rho, epsilon);

        // A complaint does not abort the attempt (the complainer left it: AggregationService.JudgeAccusationAsync); it is
        // still a failure of the search of unopened envelopes, stepped
        // before the attempt's commit point so that a blame it ends in is saved with the attempt (docs/cluster.md §6).
        if (session.EnvelopeComplaintSites() is { Length: > 0 } complained)
        {
            SearchUnopenedEnvelopes(session, complained);
        }

        _state.Audit.Append(AuditEvents.RoundCompleted, f => f.Add("round", session.Round));
        _state.Audit.Checkpoint();
        await _fence.CommitAsync(_state, CancellationToken.None).ConfigureAwait(false); // durable in the cluster before anyone hears of it
        Log.RoundCompleted(_logger, session.Round, version, contributors.Length, epsilon);
        _telemetry?.RoundCompleted(session.Round, contributors, version);
        // Built as RecordedOutcomeAsync builds it from the round store for an agent that asks once the attempt is no longer
        // current (after a restart, say): the same values, recorded above, through the same builder.
        session.Finish(RoundOutcomes.Completed(Header(session), version, sha, contributors, session.Parameters.Participants.Select(p => p.Name),
            epsilon, evaluation, evaluationNote));
        string scored = evaluation is null ? "" : $", federated F1 of v{session.BaseModelVersion} {evaluation.F1.ToString("F3", CultureInfo.InvariantCulture)}";
        Report(session, "completed", [], $"model v{version}, site ε={epsilon.ToString("F3", CultureInfo.InvariantCulture)}{scored}", contributors, evaluation);
    }

    /// <summary>
    /// The update rule that turned the round's averaged update into the model (docs/PROTOCOL.md, "Server update rule"):
    /// {rule, learning_rate} and, for momentum and adam, beta1, beta2, tau, noise_variance, noise_floor and the step count.
    /// </summary>
    private static AuditFields ServerRuleFields(AuditFields fields, ServerUpdateRule rule)
    {
        fields.Add("rule", rule.Name).Add("learning_rate", rule.Options.LearningRate);
        if (rule.Options.Kind != ServerOptimizerKind.Average)
        {
            fields.Add("beta1", rule.Options.Beta1).Add("step", rule.Steps);
        }

        if (rule.Options.Kind == ServerOptimizerKind.Adam)
        {
            fields.Add("beta2", rule.Options.Beta2).Add("tau", rule.Options.Tau).Add("noise_variance", rule.Options.NoiseVariance).Add("noise_floor", rule.Options.NoiseFloor);
        }

        return fields;
    }

    /// <summary>The reason a round left open by the coordinator of <paramref name="previous"/> (0: unknown) is aborted by the one of <paramref name="epoch"/>.</summary>
    internal static string TakeoverReason(long previous, long epoch) => previous > 0
        ? string.Create(CultureInfo.InvariantCulture, $"coordinator takeover: the coordinator of lease epoch {previous} stopped while the round was open; this coordinator took over at lease epoch {epoch}")
        : string.Create(CultureInfo.InvariantCulture, $"coordinator takeover: the coordinator stopped while the round was open; this coordinator took over at lease epoch {epoch}");

    /// <summary>
    /// Records in the round servers' own ledger (the cluster's) each round of <paramref name="rounds"/>, aborted at
    /// start-up with <paramref name="reason"/>: retried for up to 60 s (the ledger grain may have lived on the dead
    /// coordinator's silo), then given up with a warning; a ledger that holds another outcome for the round (e.g. the
    /// previous coordinator recorded it completed but died before saving that) is logged, not overwritten.
    /// </summary>
    private async Task RecordInterruptedAsync(IReadOnlyList<RoundRecord> rounds, string reason, CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            foreach (RoundRecord round in rounds)
            {
                await RecordOneAsync(round).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // the coordinator stops
        }
        finally
        {
            _interruptedRecorded.TrySetResult();
        }

        async Task RecordOneAsync(RoundRecord round)
        {
            string session = SessionOf(round);
            DateTimeOffset deadline = _time.GetUtcNow().AddSeconds(60);
            while (true)
            {
                try
                {
                    await _servers.RecordInterruptedAsync(_options.Federation, round.Round, session, reason, cancellationToken).WaitAsync(TimeSpan.FromSeconds(10), _time, cancellationToken).ConfigureAwait(false);
                    return;
                }
                catch (InvalidOperationException ex)
                {
                    Log.InterruptedNotRecorded(_logger, round.Round, ex.Message); // another outcome is recorded: left as it is
                    return;
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    if (_time.GetUtcNow() >= deadline)
                    {
                        Log.InterruptedNotRecorded(_logger, round.Round, ex.Message.Split('\n', 2)[0].TrimEnd('\r'));
                        return;
                    }

                    await Task.Delay(TimeSpan.FromSeconds(1), _time, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        static string SessionOf(RoundRecord round)
        {
            try
            {
                using var config = JsonDocument.Parse(round.ConfigurationJson);
                return config.RootElement.TryGetProperty("session", out JsonElement session) && session.GetString() is { Length: > 0 } id
                    ? id
                    : "unknown (the round was opened by an earlier version)";
            }
            catch (JsonException)
            {
                return "unknown (the round's configuration is not JSON)";
            }
        }
    }

    /// <summary>
    /// Tells the round servers' own ledger (the cluster's) that the attempt could not be opened; best effort, at most
    /// 10 s: the round store and the audit log already say so, and the cause may keep that ledger out of reach too.
    /// </summary>
    private async Task RecordOpenFailedAsync(RoundParameters parameters, string reason, CancellationToken cancellationToken)
    {
        try
        {
            await _servers.RecordOpenFailedAsync(parameters, reason, cancellationToken).WaitAsync(TimeSpan.FromSeconds(10), _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.OpenFailureNotRecorded(_logger, parameters.Round, ex.Message.Split('\n', 2)[0].TrimEnd('\r'));
        }
    }

    /// <summary>
    /// After the commit that pruned model versions, outside its transaction: gives their pages back to the file system
    /// (a store created before incremental auto-vacuum reuses them only: <c>securefed aggregator compact</c>). The round
    /// is committed already; a failure here only leaves the space to be reused, and is logged as a warning.
    /// </summary>
    private void ReleasePrunedSpace(long round)
    {
        try
        {
            long released = _state.Store.ReleaseFreePages();
            if (released > 0)
            {
                Log.FreePagesReleased(_logger, round, released, _state.Store.Path);
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or InvalidDataException)
        {
            Log.FreePagesNotReleased(_logger, round, _state.Store.Path, ex.Message);
        }
    }

    /// <summary>
    /// Audits (and logs) the federation's score of the round's starting model, or why none was published; either line names
    /// the contributors that declared they scored it (ConsistencyRequest.scored), so an auditor can check the published
    /// evaluator count against the declarations, or see whose declaration was missing.
    /// </summary>
    private void AuditEvaluation(long round, long baseVersion, FederatedEvaluation? evaluation, string? note, IReadOnlyList<string> declaredScored, string? restartNote = null)
    {
        if (evaluation is not null)
        {
            Log.FederatedEvaluation(_logger, round, baseVersion, evaluation.Evaluators, evaluation.F1, evaluation.Overall.Precision, evaluation.Overall.Recall);
            if (evaluation.F1 is >= 0 and <= 1)
            {
                _telemetry?.ReportFederationF1(round, evaluation.F1); // the console's round history (federation level only)
            }

            _state.Audit.Append(AuditEvents.FederatedEvaluation, f =>
            {
                f.Add("round", round).Add("model_version", baseVersion).Add("evaluators", evaluation.Evaluators)
                    .Add("declared_scored", declaredScored);
                Counts(f, evaluation.Overall).Add("precision", evaluation.Overall.Precision).Add("recall", evaluation.Overall.Recall);
                f.AddObject("per_type", types =>
                {
                    foreach ((string type, EntityCounts counts) in evaluation.PerType)
                    {
                        types.AddObject(type, t => Counts(t, counts));
                    }
                });
                if (restartNote is not null)
                {
                    f.Add("note", restartNote);
                }
            });
        }
        else if (note is not null)
        {
            Log.EvaluationWithheld(_logger, round, note);
            _state.Audit.Append(AuditEvents.FederatedEvaluation, f =>
            {
                f.Add("round", round).Add("model_version", baseVersion).Add("declared_scored", declaredScored).Add("withheld", note);
                if (restartNote is not null)
                {
                    f.Add("note", restartNote);
                }
            });
        }

        static AuditFields Counts(AuditFields f, EntityCounts c) =>
            f.Add("tp", c.TruePositives).Add("fp", c.FalsePositives).Add("fn", c.FalseNegatives).Add("f1", c.F1);
    }

    /// <summary>
    /// Audits and logs the model versions a round's completion deleted (<c>KeepModelVersions</c>), each with its SHA-256,
    /// and releases their space: at the completion, and at a restart from the round store's record of the deletion (with
    /// <paramref name="restartNote"/>).
    /// </summary>
    private void AuditPruned(long round, long version, int keep, IReadOnlyList<(string Version, string Sha256)> pruned, string? restartNote)
    {
        _state.Audit.Append(AuditEvents.ModelsPruned, f =>
        {
            f.Add("round", round)
                .Add("model_version", version)
                .Add("keep", keep)
                .AddObject("pruned", p =>
                {
                    foreach ((string prunedVersion, string sha256) in pruned)
                    {
                        p.Add(prunedVersion, sha256);
                    }
                });
            if (restartNote is not null)
            {
                f.Add("note", restartNote);
            }
        });
        Log.ModelsPruned(_logger, round, version, keep, string.Join(", ", pruned.Select(m => $"v{m.Version} ({m.Sha256})")));
        ReleasePrunedSpace(round);
    }

    /// <summary>
    /// The round store's record of a round's federated evaluation (<see cref="AggregatorStore.FederatedEvaluationKind"/>):
    /// what <see cref="AuditEvaluation"/> logs, federation-level counts only, read back by <see cref="ReadEvaluationRecord"/>.
    /// </summary>
    private static string EvaluationRecord(long baseVersion, FederatedEvaluation? evaluation, string? note, IReadOnlyList<string> declaredScored)
    {
        var entry = new System.Text.Json.Nodes.JsonObject
        {
            ["model_version"] = baseVersion,
            ["declared_scored"] = new System.Text.Json.Nodes.JsonArray([.. declaredScored.Select(site => (System.Text.Json.Nodes.JsonNode?)site)]),
        };
        if (evaluation is not null)
        {
            entry["evaluators"] = evaluation.Evaluators;
            entry["overall"] = Counts(evaluation.Overall);
            var types = new System.Text.Json.Nodes.JsonObject();
            foreach ((string type, EntityCounts counts) in evaluation.PerType)
            {
                types[type] = Counts(counts);
            }

            entry["per_type"] = types;
        }
        else
        {
            entry["withheld"] = note;
        }

        return entry.ToJsonString();

        static System.Text.Json.Nodes.JsonObject Counts(EntityCounts c) => new() { ["tp"] = c.TruePositives, ["fp"] = c.FalsePositives, ["fn"] = c.FalseNegatives };
    }

    /// <summary>Reads an <see cref="EvaluationRecord"/> back: the scored version, the evaluation or the reason none was published, and the sites that declared they scored.</summary>
    private static (long BaseVersion, FederatedEvaluation? Evaluation, string? Withheld, string[] DeclaredScored) ReadEvaluationRecord(string payload)
    {
        using var json = JsonDocument.Parse(payload);
        JsonElement root = json.RootElement;
        string[] declared = [.. root.GetProperty("declared_scored").EnumerateArray().Select(e => e.GetString()!)];
        long baseVersion = root.GetProperty("model_version").GetInt64();
        if (!root.TryGetProperty("evaluators", out JsonElement evaluators))
        {
            return (baseVersion, null, root.GetProperty("withheld").GetString(), declared);
        }

        var perType = new Dictionary<string, EntityCounts>(StringComparer.Ordinal);
        foreach (JsonProperty type in root.GetProperty("per_type").EnumerateObject())
        {
            perType[type.Name] = Counts(type.Value);
        }

        return (baseVersion, new FederatedEvaluation(evaluators.GetInt32(), Counts(root.GetProperty("overall")), perType), null, declared);

        static EntityCounts Counts(JsonElement c) => new(c.GetProperty("tp").GetInt64(), c.GetProperty("fp").GetInt64(), c.GetProperty("fn").GetInt64());
    }

    private async Task AbortRoundAsync(RoundSession session, ProtocolStage stage, string reason)
    {
        // One hostile site can advertise at once without training, so that the straggler wait starts with only t - 1
        // honest sites in and leaves the slower honest ones out, then drop or decline: the attempt falls below t, and
        // so would every attempt after it, with no one blamed (review of session 46). The next attempt starts its wait
        // one advertisement later (t + 1, then t + 2 after another such abort, ...), so one site dropping after it
        // still leaves t, and the wait still bounds a site that reports progress but never advertises.
        _stragglerQuorumExtra = session.StragglersLeftOut ? session.StragglerQuorumExtra + 1 : 0;

        // Never cancelled: an abort is always recorded, also while shutting down (a cluster server bounds its own wait).
        // The round server's part is best effort: when it fails (a cluster's round grain out of reach) the attempt is still
        // recorded here, in the round store and the audit log, which are what the next attempt and an auditor read.
        try
        {
            await session.Server.AbortAsync(reason, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not CoordinatorLeaseLostException)
        {
            Log.RoundServerAbortFailed(_logger, session.Round, ex.GetType().Name, ex.Message);
        }

        ChargeAbortedAfterUnmaskRequest(session, reason);
        _state.Store.AbortRound(session.Round, reason);
        _state.Audit.Append(AuditEvents.RoundAborted, f => f.Add("round", session.Round).Add("stage", StageName(stage)).Add("reason", reason));
        try
        {
            _state.Audit.Checkpoint();
        }
        catch (InvalidOperationException)
        {
            // nothing new to sign
        }

        if (!_fence.Lost.IsCancellationRequested)
        {
            await _fence.CommitAsync(_state, CancellationToken.None).ConfigureAwait(false);
        }

        Log.RoundAborted(_logger, session.Round, StageName(stage), reason);
        _telemetry?.RoundAborted(session.Round, StageName(stage), reason);
        session.Finish(RoundOutcomes.Aborted(Header(session), reason, _state.Budget.Spent(_options.Delta)));
        Report(session, "aborted", [], reason);
    }

    private Header Header(RoundSession session) => RoundOutcomes.Header(_options.Federation, session.Round, session.SessionId);

    /// <summary>
    /// The outcome of attempt <paramref name="round"/> as the round store records it, for an agent whose
    /// <c>AwaitRoundOutcome</c> names an attempt that is no longer <see cref="Current"/>: the aggregator restarted (or a
    /// coordinator took over) after the agent sent its unmasking response, or a later attempt opened before the agent asked.
    /// Null when the store holds no such attempt under <paramref name="sessionId"/> (never opened, another session: a
    /// stale or replayed message), or holds it still running (an attempt being opened). Read once the start-up recovery is
    /// done, so that an attempt the previous process left open is read aborted with the recovery's reason ("the aggregator
    /// restarted while the round was open", or the takeover's) and charged, as is a completion the recovery finishes.
    /// </summary>
    /// <remarks>
    /// Completed: the model version the completion stored (the model row of the round, or, if that version was deleted
    /// since by <c>KeepModelVersions</c>, the version after the round's starting model, as <see cref="CompleteAsync"/>
    /// numbers it), the round's SHA-256 and contributors, the members of the cohort that are not contributors as dropped,
    /// ε after the round's charge, and the federated evaluation the coordinator records before it stores the model
    /// (<see cref="AggregatorStore.FederatedEvaluationKind"/>). Aborted: the recorded reason and ε after the charges up to
    /// the round. Both through <see cref="RoundOutcomes"/>, as the live outcome, so that the two answers are the same.
    /// The cohort comes from the round's configuration (as announced); an attempt recorded by an earlier version without it
    /// falls back to the sites the store names in its stages and as contributors (the members that took part).
    /// </remarks>
    internal async Task<RecordedRoundOutcome?> RecordedOutcomeAsync(long round, string sessionId, CancellationToken cancellationToken)
    {
        // After the start-up recovery (the host may serve calls before it ran): it aborts the rounds left open and charges
        // them, and completes the charge of a round whose model was stored just before the previous process stopped.
        if (!await _recovered.Task.WaitAsync(cancellationToken).ConfigureAwait(false))
        {
            return null; // refused as before: the store may lack the recovery's aborts and charges
        }

        RoundRecord? record = _state.Store.GetRound(round);
        if (record is null || record.Status == Persistence.RoundStatus.Running)
        {
            return null;
        }

        if (StoredConfiguration(record.ConfigurationJson) is not { } stored)
        {
            return null; // nothing to check the session against: refused as before
        }

        (string? recordedSession, string[]? cohort, long? baseVersion) = stored;

        if (string.IsNullOrEmpty(recordedSession) || !string.Equals(recordedSession, sessionId, StringComparison.Ordinal))
        {
            return null;
        }

        string[] members = cohort ?? [.. record.Stages.SelectMany(st => st.Participants).Concat(record.Participants).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        Header header = RoundOutcomes.Header(_options.Federation, round, recordedSession);
        if (record.Status != Persistence.RoundStatus.Completed)
        {
            string reason = record.AbortReason ?? "the round was aborted (no reason recorded)";
            return new RecordedRoundOutcome(RoundOutcomes.Aborted(header, reason, _state.Budget.SpentAfter(round)), members);
        }

        // The contributors in cohort order, as the live outcome lists them (the store keeps them sorted).
        var participants = record.Participants.ToHashSet(StringComparer.Ordinal);
        string[] contributors = [.. members.Where(participants.Contains), .. record.Participants.Where(p => !members.Contains(p, StringComparer.Ordinal))];
        long version = _state.Store.FindModelOfRound(round)?.Version ?? (baseVersion is long b ? b + 1 : 0);
        double epsilon = _state.Budget.Charge(round)?.EpsilonAfter ?? _state.Budget.SpentAfter(round);
        FederatedEvaluation? evaluation = null;
        string? evaluationNote = null;
        if (_state.Store.LastLedgerEntry(round, AggregatorStore.FederatedEvaluationKind) is { } evaluationRecord)
        {
            (_, evaluation, evaluationNote, _) = ReadEvaluationRecord(evaluationRecord.PayloadJson);
        }

        return new RecordedRoundOutcome(
            RoundOutcomes.Completed(header, version, record.ModelSha256 ?? "", contributors, members, epsilon, evaluation, evaluationNote), members);
    }

    private void Report(RoundSession session, string stage, IReadOnlyList<string> dropped, string detail, IReadOnlyList<string>? participants = null, FederatedEvaluation? evaluation = null)
    {
        IReadOnlyList<string> alive = participants ?? (session.Server.Stage switch
        {
            ProtocolStage.Aborted => [],
            ProtocolStage.Completed => [],
            _ => [.. session.Server.Expected.Select(i => session.Parameters[i].Name)],
        });
        Progress?.Invoke(this, new RoundProgress(session.Round, stage, alive, dropped, detail, _state.Budget.Spent(_options.Delta)) { Evaluation = evaluation });
    }

    internal static string StageName(ProtocolStage stage) => stage switch
    {
        ProtocolStage.AdvertiseKeys => "advertise_keys",
        ProtocolStage.ShareKeys => "share_keys",
        ProtocolStage.MaskedInputCollection => "masked_input",
        ProtocolStage.ConsistencyCheck => "consistency",
        ProtocolStage.Unmasking => "unmasking",
        ProtocolStage.Completed => "completed",
        _ => "aborted",
    };
}
