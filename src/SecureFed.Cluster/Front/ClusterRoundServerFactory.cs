using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Front;

/// <summary>
/// Opens each round attempt of the coordinator silo on the cluster: the round grain and its slices
/// (<see cref="ClusterRoundClient.OpenAsync"/>), cut into slices of <see cref="AggregatorClusterOptions.SliceSize"/> words.
/// </summary>
public sealed partial class ClusterRoundServerFactory : IRoundServerFactory
{
    private readonly IGrainFactory _grains;
    private readonly int _sliceSize;
    private readonly ILogger _logger;
    private readonly string? _localSilo;
    private readonly long _epoch;

    /// <summary>Creates the factory over <paramref name="grains"/> (the coordinator silo's own grain factory).</summary>
    public ClusterRoundServerFactory(IGrainFactory grains, int sliceSize, ILogger logger)
        : this(grains, sliceSize, logger, localSilo: null)
    {
    }

    /// <summary>
    /// As above, for the coordinator silo at <paramref name="localSilo"/> (<c>SiloAddress.ToParsableString()</c>): a slice
    /// upload (protocol version 4) of a slice hosted elsewhere is refused there before its words are read.
    /// </summary>
    public ClusterRoundServerFactory(IGrainFactory grains, int sliceSize, ILogger logger, string? localSilo)
        : this(grains, sliceSize, logger, localSilo, epoch: 0)
    {
    }

    /// <summary>
    /// As above, for the coordinator holding lease epoch <paramref name="epoch"/>: every round's ledger records carry it,
    /// so the ledger refuses a completed round from this coordinator once a later epoch has recorded (docs/cluster.md §6).
    /// </summary>
    public ClusterRoundServerFactory(IGrainFactory grains, int sliceSize, ILogger logger, string? localSilo, long epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        _epoch = epoch;
        _localSilo = localSilo;
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sliceSize);
        ArgumentNullException.ThrowIfNull(logger);
        _grains = grains;
        _sliceSize = sliceSize;
        _logger = logger;
    }

    /// <inheritdoc />
    public async Task<IRoundServer> OpenAsync(RoundParameters parameters, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var client = new ClusterRoundClient(_grains, parameters.FederationId, parameters.Round, _epoch);
        ClusterRoundSpec spec = ClusterRoundSpec.From(parameters, _sliceSize);
        await client.OpenAsync(spec, cancellationToken).ConfigureAwait(false);
        SliceLayout layout = spec.Layout;
        string[] endpoints = await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(k => client.Slice(k).EndpointAsync().WaitAsync(cancellationToken))).ConfigureAwait(false);
        SliceUploadLayout? uploads = UploadLayout(layout, endpoints);
        if (uploads is null && endpoints.All(e => e.Length > 0))
        {
            Log.TooManySliceHosts(_logger, parameters.Round, SliceUploadHosts.Count(endpoints), SliceUploadHosts.Max);
        }
        else if (uploads is null)
        {
            Log.WholeUploadsOnly(_logger, parameters.Round, string.Join(", ", Enumerable.Range(0, endpoints.Length).Where(k => endpoints[k].Length == 0)));
        }

        if (uploads is null)
        {
            // The silos' fronts still serve slice uploads: the round grain must refuse them (a site's input would otherwise
            // join the sum through a slice silo, with no masked_input.received line from this coordinator).
            await client.Round.WholeInputsOnlyAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return new ClusterRoundServer(client, parameters, _logger, uploads, _localSilo);
    }

    /// <inheritdoc />
    /// <remarks>The cluster's ledger grain gets the attempt as aborted with the reason, under this coordinator's lease epoch.</remarks>
    public Task RecordOpenFailedAsync(RoundParameters parameters, string reason, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        var client = new ClusterRoundClient(_grains, parameters.FederationId, parameters.Round, _epoch);
        return client.RecordAsync(parameters.SessionId, result: null, parameters.Participants, reason, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The cluster's ledger grain gets the round as aborted with the reason, under this coordinator's lease epoch; then the
    /// round's grain, if it still holds the round (its silo outlived the coordinator), is aborted too, so that its slices
    /// drop their sums and spills and the silos' fronts stop taking slice uploads for it (before, the attempt stayed open
    /// on the cluster for <see cref="Grains.RoundGrainOptions.KeptWhileOpen"/>, 30 hours, after every takeover).
    /// </remarks>
    public async Task<bool> RecordInterruptedAsync(string federation, long round, string sessionId, string reason, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(federation);
        ArgumentException.ThrowIfNullOrWhiteSpace(reason);
        var client = new ClusterRoundClient(_grains, federation, round, _epoch);
        bool recorded;
        try
        {
            recorded = await client.RecordAsync(sessionId, result: null, [], reason, cancellationToken).ConfigureAwait(false);
        }
        catch (ClusterProtocolException ex)
        {
            throw new InvalidOperationException(ex.Message, ex); // another outcome is recorded: not for a retry
        }

        // After the ledger entry (under this epoch): the grain's own record of the abort is then the same outcome, a no-op.
        // Best effort: a grain without the round (its silo died with the coordinator) or one whose sum was unmasked
        // refuses, and an unreachable one has lost the round anyway.
        try
        {
            // Awaited to the end (Orleans' own response timeout bounds it), not for a shorter while: the next attempt of the
            // round opens this same grain, and an abort still on its way could otherwise reach it after that open.
            await client.Round.AbortAsync(reason).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ClusterProtocolException ex)
        {
            Log.InterruptedGrainNotAborted(_logger, round, ClusterRoundServer.FirstLine(ex.Message));
            await EndUnreadSlicesAsync(client, round, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.InterruptedGrainNotAborted(_logger, round, ClusterRoundServer.FirstLine(ex.Message));
        }

        return recorded;
    }

    /// <summary>
    /// The round grain of an interrupted attempt refused the abort because its sum was unmasked: the dead coordinator
    /// was reading the sum, and ended each slice after reading it. Nobody reads the rest now (this coordinator aborted the
    /// attempt), so every slice is ended here, as the coordinator's own abort after an unmasking does
    /// (<see cref="ClusterRoundServer"/>): before, the slices it had not read kept their part of the unmasked sum in the
    /// silos' memory for <see cref="Grains.RoundGrainOptions.KeptWhileOpen"/> (30 hours) after such a takeover. Ending a
    /// slice already read and ended activates an empty grain that goes at once. Best effort: a grain that no longer holds
    /// the round says nothing of its slices, and an unreachable slice has lost its sum anyway.
    /// </summary>
    private async Task EndUnreadSlicesAsync(ClusterRoundClient client, long round, CancellationToken cancellationToken)
    {
        try
        {
            if ((await client.Round.StatusAsync().WaitAsync(cancellationToken).ConfigureAwait(false)).Stage != nameof(ProtocolStage.Completed))
            {
                return;
            }

            SliceLayout layout = await client.Round.LayoutAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            await Task.WhenAll(Enumerable.Range(0, layout.Count).Select(k => client.Slice(k).EndAsync())).WaitAsync(cancellationToken).ConfigureAwait(false);
            Log.InterruptedSlicesEnded(_logger, round, layout.Count);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.InterruptedSlicesNotEnded(_logger, round, ClusterRoundServer.FirstLine(ex.Message));
        }
    }

    /// <summary>
    /// The version-4 layout when every slice's silo serves agents (<paramref name="endpoints"/>[k] not empty) and the
    /// endpoints name at most <see cref="SliceUploadHosts.Max"/> hosts; otherwise null, and the round takes whole vectors
    /// only (version 3) — an agent could not upload a slice whose silo has no endpoint, and refuses a round whose slices
    /// name more hosts than its cap (every agent would decline every round of a cluster of more slice silos).
    /// </summary>
    internal static SliceUploadLayout? UploadLayout(SliceLayout layout, IReadOnlyList<string> endpoints)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.Count == layout.Count && endpoints.All(e => e.Length > 0) && SliceUploadHosts.Count(endpoints) <= SliceUploadHosts.Max
            ? new SliceUploadLayout(layout.VectorLength, layout.SliceSize, [.. endpoints])
            : null;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Cluster round {Round}: slices [{Slices}] are on silos that serve no agents; the round takes whole masked inputs only (protocol version 3)")]
        public static partial void WholeUploadsOnly(ILogger logger, long round, string slices);

        [LoggerMessage(2, LogLevel.Warning, "Cluster round {Round}: the slices are on {Hosts} silos serving agents, more than the {Max} hosts an agent uploads to at once; the round takes whole masked inputs only (protocol version 3)")]
        public static partial void TooManySliceHosts(ILogger logger, long round, int hosts, int max);

        [LoggerMessage(3, LogLevel.Debug, "Cluster round {Round}, interrupted by a takeover: its round grain was not aborted ({Reason}); it holds no round, or its sum was unmasked")]
        public static partial void InterruptedGrainNotAborted(ILogger logger, long round, string reason);

        [LoggerMessage(4, LogLevel.Information, "Cluster round {Round}, interrupted by a takeover after its sum was unmasked: its {Slices} slices were ended (nobody reads the rest of the sum now)")]
        public static partial void InterruptedSlicesEnded(ILogger logger, long round, int slices);

        [LoggerMessage(5, LogLevel.Warning, "Cluster round {Round}, interrupted by a takeover after its sum was unmasked: its slices could not be ended ({Reason}); those not read keep their part of the sum until the idle collector takes them")]
        public static partial void InterruptedSlicesNotEnded(ILogger logger, long round, string reason);
    }
}
