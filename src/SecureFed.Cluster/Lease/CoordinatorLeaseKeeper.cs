using System.Globalization;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// Holds the coordinator lease for one silo: <see cref="AcquireAsync"/> waits until the lease is free and takes it, then
/// a background loop renews it (<see cref="LeaseRules.Next"/>). <see cref="ClusterCoordinatorFence"/> builds the coordinator's fence on it:
/// <see cref="Lost"/> is cancelled, and <see cref="EnsureHeld"/> throws, as soon as a renewal is refused or the lease's
/// local validity runs out without one (a database that does not answer counts as lost: the silo cannot prove it still
/// holds the lease). A lost lease is never taken back by this keeper: the silo stops driving rounds.
/// </summary>
public sealed partial class CoordinatorLeaseKeeper : IAsyncDisposable
{
    private readonly PostgresCoordinatorLease _lease;
    private readonly LeaseTerms _terms;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop = new();
    private long _grantSent;
    private long _epoch;
    private string? _lostReason;
    private Task? _renewing;

    /// <summary>A keeper for <paramref name="holder"/> (unique per silo process: its Orleans address with generation).</summary>
    public CoordinatorLeaseKeeper(PostgresCoordinatorLease lease, string holder, LeaseTerms terms, TimeProvider time, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentException.ThrowIfNullOrWhiteSpace(holder);
        ArgumentNullException.ThrowIfNull(terms);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        IReadOnlyList<string> problems = terms.Validate("SecureFed:Cluster:");
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(terms));
        }

        _lease = lease;
        Holder = holder;
        _terms = terms;
        _time = time;
        _logger = logger;
    }

    /// <summary>This silo's name in the lease table.</summary>
    public string Holder { get; }

    /// <summary>
    /// The https:// URL where this silo serves agents once it holds the lease, recorded in the lease row when it acquires
    /// it (the other silos forward agents' control calls there, docs/cluster.md §6).
    /// <value>The default value is empty (no endpoint recorded).</value>
    /// </summary>
    public string AgentEndpoint { get; init; } = "";

    /// <summary>Cancelled when the lease is lost.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>The epoch (fencing token) this keeper holds; 0 before it acquired the lease.</summary>
    public long Epoch => Interlocked.Read(ref _epoch);

    /// <summary>Why the lease was lost, or null while held (or before it was taken).</summary>
    public string? LostReason => Volatile.Read(ref _lostReason);

    /// <summary>
    /// Waits until this silo holds the lease (trying every <see cref="LeaseTerms.RenewInterval"/>), then starts renewing
    /// it; returns the epoch.
    /// </summary>
    public async Task<long> AcquireAsync(CancellationToken cancellationToken)
    {
        if (_renewing is not null)
        {
            throw new InvalidOperationException("the lease was already acquired by this keeper; a lost lease is not taken again");
        }

        string? reported = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long sent = _time.GetTimestamp();
            try
            {
                if (await _lease.TryAcquireAsync(Holder, _terms.Duration, AgentEndpoint, cancellationToken).ConfigureAwait(false) is long epoch)
                {
                    Interlocked.Exchange(ref _grantSent, sent);
                    Interlocked.Exchange(ref _epoch, epoch);
                    Log.Acquired(_logger, _lease.Federation, epoch, Holder);
                    _renewing = Task.Run(() => RenewLoopAsync(_stop.Token), CancellationToken.None);
                    return epoch;
                }

                (CoordinatorLeaseRecord? current, _) = await _lease.ReadAsync(cancellationToken).ConfigureAwait(false);
                string holder = current is null ? "nobody" : string.Create(CultureInfo.InvariantCulture, $"{current.Holder} (epoch {current.Epoch}, until {current.ExpiresUtc:O})");
                if (holder != reported)
                {
                    Log.Waiting(_logger, _lease.Federation, holder);
                    reported = holder;
                }
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
            {
                Log.DatabaseError(_logger, "acquire", ex.Message);
            }

            await Task.Delay(_terms.RenewInterval, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Throws when this silo may no longer drive rounds.</summary>
    /// <exception cref="CoordinatorLeaseLostException">Not acquired, lost, or past its local validity without a renewal.</exception>
    public void EnsureHeld()
    {
        if (_renewing is null)
        {
            throw new CoordinatorLeaseLostException("this silo has not acquired the coordinator lease");
        }

        if (LeaseRules.Next(_terms, _time.GetElapsedTime(Interlocked.Read(ref _grantSent))) == LeaseStep.Lost)
        {
            MarkLost(string.Create(CultureInfo.InvariantCulture, $"no renewal of epoch {Epoch} succeeded within {_terms.LocalValidity.TotalSeconds:0.#} s"));
        }

        if (LostReason is string reason)
        {
            throw new CoordinatorLeaseLostException($"this silo lost the coordinator lease: {reason}");
        }
    }

    /// <summary>Stops renewing and, if the lease is still held, releases it so another silo may take it at once.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_renewing is not null)
        {
            try
            {
                await _renewing.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // stopped
            }

            if (LostReason is null)
            {
                try
                {
                    using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                    if (await _lease.ReleaseAsync(Holder, Epoch, timeout.Token).ConfigureAwait(false))
                    {
                        Log.Released(_logger, _lease.Federation, Epoch);
                    }
                }
                catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException or OperationCanceledException)
                {
                    Log.DatabaseError(_logger, "release", ex.Message); // it expires on its own
                }
            }

            // Stopping is not a loss to report: the coordinator was stopped before this.
            if (Interlocked.CompareExchange(ref _lostReason, "the silo stopped and released the lease", null) is null)
            {
                await _lost.CancelAsync().ConfigureAwait(false);
            }
        }

        _stop.Dispose();
        _lost.Dispose();
    }

    private async Task RenewLoopAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested && LostReason is null)
        {
            TimeSpan age = _time.GetElapsedTime(Interlocked.Read(ref _grantSent));
            switch (LeaseRules.Next(_terms, age))
            {
                case LeaseStep.Lost:
                    MarkLost(string.Create(CultureInfo.InvariantCulture, $"no renewal of epoch {Epoch} succeeded within {_terms.LocalValidity.TotalSeconds:0.#} s"));
                    return;
                case LeaseStep.Hold:
                    await DelayAsync(_terms.RenewInterval - age, stopping).ConfigureAwait(false);
                    continue;
                case LeaseStep.Renew:
                    break;
            }

            TimeSpan remaining = LeaseRules.Remaining(_terms, age);
            long sent = _time.GetTimestamp();
            try
            {
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                deadline.CancelAfter(remaining);
                if (await _lease.RenewAsync(Holder, Epoch, _terms.Duration, deadline.Token).ConfigureAwait(false))
                {
                    Interlocked.Exchange(ref _grantSent, sent);
                    continue;
                }

                MarkLost($"the database refused to renew epoch {Epoch} (it expired or another silo took it)");
                return;
            }
            catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
            {
                Log.DatabaseError(_logger, "renew", "no answer before the lease's local validity ended");
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or TimeoutException)
            {
                Log.DatabaseError(_logger, "renew", ex.Message);
                await DelayAsync(TimeSpan.FromMilliseconds(500), stopping).ConfigureAwait(false);
            }
        }
    }

    private async Task DelayAsync(TimeSpan delay, CancellationToken stopping)
    {
        if (delay > TimeSpan.Zero)
        {
            await Task.Delay(delay, _time, stopping).ConfigureAwait(false);
        }
    }

    private void MarkLost(string reason)
    {
        if (Interlocked.CompareExchange(ref _lostReason, reason, null) is null)
        {
            Log.Lost(_logger, _lease.Federation, Epoch, reason);
            _lost.Cancel();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Coordinator lease of federation {Federation} acquired: epoch {Epoch}, holder {Holder}")]
        public static partial void Acquired(ILogger logger, string federation, long epoch, string holder);

        [LoggerMessage(2, LogLevel.Information, "Waiting for the coordinator lease of federation {Federation}, held by {Holder}")]
        public static partial void Waiting(ILogger logger, string federation, string holder);

        [LoggerMessage(3, LogLevel.Error, "Coordinator lease of federation {Federation} lost at epoch {Epoch}: {Reason}")]
        public static partial void Lost(ILogger logger, string federation, long epoch, string reason);

        [LoggerMessage(4, LogLevel.Warning, "Coordinator lease: {Operation} failed: {Reason}")]
        public static partial void DatabaseError(ILogger logger, string operation, string reason);

        [LoggerMessage(5, LogLevel.Information, "Coordinator lease of federation {Federation} released at epoch {Epoch}")]
        public static partial void Released(ILogger logger, string federation, long epoch);
    }
}
