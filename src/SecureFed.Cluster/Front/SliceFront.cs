using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Cluster.Front;

/// <summary>
/// What a slice silo's gRPC service needs (docs/cluster.md §6): the federation, the aggregator's kit (its TLS
/// certificate, the CA and the manifest that maps a client certificate to a site), the silo's grain factory and address,
/// a bound on slices buffered at once (at most one per site: <see cref="UploadLimiter"/>, as the coordinator's), counters of
/// what it received, and the forwarder to the coordinator.
/// </summary>
public sealed class SliceFront : IDisposable
{
    private readonly UploadLimiter _uploads;
    private long _wordsReceived;
    private long _slicesAccepted;

    /// <summary>Creates the context.</summary>
    public SliceFront(string federation, PartyKit kit, IGrainFactory grains, string siloAddress, int maxConcurrentUploads)
    {
        ArgumentException.ThrowIfNullOrEmpty(federation);
        ArgumentNullException.ThrowIfNull(kit);
        ArgumentNullException.ThrowIfNull(grains);
        ArgumentException.ThrowIfNullOrEmpty(siloAddress);
        // One slot would let one site's stalled upload hold it for the whole stage (AggregatorOptions.MinConcurrentUploads).
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrentUploads, AggregatorOptions.MinConcurrentUploads);
        Federation = federation;
        Kit = kit;
        Grains = grains;
        SiloAddress = siloAddress;
        _uploads = new UploadLimiter(maxConcurrentUploads);
    }

    /// <summary>The slowest a slice upload may be once it holds a slot (the coordinator's MinUploadWordsPerSecond and UploadGraceSeconds).</summary>
    public UploadPace Pace { get; init; } = new(UploadPace.DefaultWordsPerSecond, UploadPace.DefaultGraceSeconds);

    /// <summary>The federation this silo serves.</summary>
    public string Federation { get; }

    /// <summary>The aggregator's kit.</summary>
    public PartyKit Kit { get; }

    /// <summary>The silo's grain factory (calls to a slice grain on this silo stay local).</summary>
    public IGrainFactory Grains { get; }

    /// <summary>This silo's address (<c>SiloAddress.ToParsableString()</c>).</summary>
    public string SiloAddress { get; }

    /// <summary>
    /// Forwards agents' control calls, model downloads and whole-vector uploads to the current coordinator (docs/cluster.md
    /// §6, "Every silo a front").
    /// <value>The default value is null: those calls answer Unimplemented and whole vectors are refused (slices only).</value>
    /// </summary>
    public CoordinatorForwarder? Coordinator { get; init; }

    /// <summary>
    /// The rounds whose slices this silo opened (the silo's <see cref="SiloRounds"/> singleton): a slice upload naming
    /// another round is refused before any grain is called, so a site cannot make the cluster activate round grains.
    /// <value>The default value is null: then only rounds below 1 are refused before the round grain is asked (a test
    /// front without a silo of its own).</value>
    /// </summary>
    public SiloRounds? Rounds { get; init; }

    /// <summary>
    /// How often an upload asks the round grain whether the masked-input stage is still open (the silo has no signal of its
    /// close); an upload still waiting or reading when it closed is refused and its slot freed.
    /// <value>The default value is 1 s.</value>
    /// </summary>
    public TimeSpan StageCheckInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// <c>ShareKeys</c> and <c>Unmask</c> calls one site may have in flight at this silo at once (taken here before they are
    /// forwarded, and again at the coordinator): a further one is refused with RESOURCE_EXHAUSTED before its body is read
    /// (<see cref="BulkCallGate"/>; <c>SecureFed:MaxBulkCallsPerSite</c>).
    /// <value>The default value is <see cref="BulkCallGate.DefaultLimitPerSite"/> (2).</value>
    /// </summary>
    public int MaxBulkCallsPerSite { get; init; } = BulkCallGate.DefaultLimitPerSite;

    /// <summary>
    /// gRPC calls of any method one site may have in flight at this silo at once (taken here before they are forwarded, and
    /// again at the coordinator against the site named): a further one is refused with RESOURCE_EXHAUSTED before its body is
    /// read (<see cref="BulkCallGate"/>; <c>SecureFed:MaxCallsPerSite</c>). At least <see cref="MaxBulkCallsPerSite"/>.
    /// <value>The default value is <see cref="BulkCallGate.DefaultCallLimitPerSite"/> (16).</value>
    /// </summary>
    public int MaxCallsPerSite { get; init; } = BulkCallGate.DefaultCallLimitPerSite;

    /// <summary>
    /// TLS connections one site may hold open to this silo's agent endpoint at once: a further one is closed right after its
    /// TLS handshake, before any HTTP/2 frame of it is read (<see cref="ConnectionGate"/>; <c>SecureFed:MaxConnectionsPerSite</c>).
    /// <value>The default value is <see cref="ConnectionGate.DefaultLimitPerSite"/> (8).</value>
    /// </summary>
    public int MaxConnectionsPerSite { get; init; } = ConnectionGate.DefaultLimitPerSite;

    /// <summary>
    /// The clock of <see cref="StageCheckInterval"/>.
    /// <value>The default value is <see cref="TimeProvider.System"/>.</value>
    /// </summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Masked-input words received in accepted and refused slice streams (4 bytes each).</summary>
    public long WordsReceived => Interlocked.Read(ref _wordsReceived);

    /// <summary>Slices accepted (fresh, not retries).</summary>
    public long SlicesAccepted => Interlocked.Read(ref _slicesAccepted);

    /// <summary>Slice uploads of <paramref name="site"/> here right now: reading (at most one) and waiting.</summary>
    public int UploadsOf(string site) => _uploads.UploadsOf(site);

    /// <summary>
    /// Waits for <paramref name="site"/>'s turn (one upload per site at a time), then for one of the upload slots (at most
    /// that many slices buffered at once). Returns null at once, without waiting, when the site already has one upload
    /// reading and <paramref name="maxWaiting"/> waiting here. Disposing the result gives both back.
    /// </summary>
    public async Task<IDisposable?> AcquireUploadAsync(string site, int maxWaiting, CancellationToken cancellationToken)
        => await _uploads.AcquireAsync(site, maxWaiting, cancellationToken).ConfigureAwait(false);

    internal void Received(int words) => Interlocked.Add(ref _wordsReceived, words);

    internal void Accepted() => Interlocked.Increment(ref _slicesAccepted);

    /// <summary>Releases the upload slots and the <see cref="Coordinator"/> forwarder (its channels).</summary>
    public void Dispose()
    {
        _uploads.Dispose();
        Coordinator?.Dispose();
    }
}
