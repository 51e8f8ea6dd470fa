using Grpc.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Cluster.Front;
using SecureFed.Cluster.Lease;
using SecureFed.Federation;
using SecureFed.Testing;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A front's forwarder (<see cref="CoordinatorForwarder"/>, called directly, the clock a <see cref="FakeTimeProvider"/>)
/// while the coordinator cannot be located or reached: every call is answered Unavailable, and the warning lines are
/// bounded per site as the front's refusal lines are (<see cref="FrontRefusalLog"/>), the rest counted in a summary line.
/// </summary>
public sealed class CoordinatorForwarderLogTests : IDisposable
{
    private const string Federation = "forwarder-log";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
    private readonly CapturingLogger _logger = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-forwarder-log-").FullName;
    private readonly PartyKit _kit;

    public CoordinatorForwarderLogTests()
    {
        ProvisionResult federation = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-x", "site-y"], "127.0.0.1"));
        _kit = PartyKit.Load(federation.AggregatorKitDirectory);
    }

    [Fact]
    public async Task UnaryAsync_ThousandCallsOfOneSiteWithNoCoordinatorLease_BurstLoggedThenOneSummaryOtherSiteStillLogged()
    {
        var forwarder = new CoordinatorForwarder(Federation, _kit, "S-front", new FixedLocator(null), _logger, _time);

        for (int i = 0; i < 1_000; i++)
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => StatusAsync(forwarder, "site-x"));
            Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
        }

        await Assert.ThrowsAsync<RpcException>(() => StatusAsync(forwarder, "site-y"));

        Assert.Equal(32, Lines("Forwarding a call of site-x to the coordinator failed: no silo has taken the coordinator lease").Count);
        Assert.Single(Lines("Forwarding a call of site-y to the coordinator failed"));
        Assert.Empty(Lines("calls of site-x answered Unavailable"));
        forwarder.Dispose(); // logs the pending summary
        string summary = Assert.Single(Lines("calls of site-x answered Unavailable"));
        Assert.StartsWith("968 calls of site-x answered Unavailable (the coordinator could not be located or reached) were not logged one by one", summary, StringComparison.Ordinal);
        Assert.EndsWith(": Unavailable 968", summary, StringComparison.Ordinal);
        Assert.Empty(Lines("refusals of")); // the site was refused nothing
        Assert.Equal(34, _logger.Lines.Count(l => l.Level == LogLevel.Warning)); // 32 + site-y's line + the summary, for 1,001 calls
    }

    [Fact]
    public async Task UnaryAsync_CoordinatorUnreachableForMinutes_AtMostOneLinePerTenSecondsAfterTheBurst()
    {
        var lease = new CoordinatorLeaseRecord(Federation, "S-gone", 3, _time.GetUtcNow().AddMinutes(1), $"https://127.0.0.1:{SiloProcess.FreePort()}");
        using var forwarder = new CoordinatorForwarder(Federation, _kit, "S-front", new FixedLocator(lease), _logger, _time);

        for (int i = 0; i < 100; i++)
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => StatusAsync(forwarder, "site-x"));
            Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        // 100 s: the burst of 32, then one line (or a summary, at once) per 10 s.
        List<string> lines = Lines("Forwarding a call of site-x to the coordinator failed: silo S-front could not reach the coordinator S-gone");
        Assert.InRange(lines.Count, 32, 32 + 10);
        Assert.InRange(_logger.Lines.Count(l => l.Level == LogLevel.Warning), 32, 32 + 20);
    }

    [Fact]
    public async Task UnaryAsync_LeaseEndpointNoChannelCanBeOpenedTo_UnavailableNamingItEveryTime()
    {
        // The channel's creation threw out of the front as an unhandled exception (the agent heard "Exception was thrown
        // by handler"), and the Lazy holding it kept that exception for good.
        var lease = new CoordinatorLeaseRecord(Federation, "S-odd", 3, _time.GetUtcNow().AddMinutes(1), "ftp://127.0.0.1:1");
        using var forwarder = new CoordinatorForwarder(Federation, _kit, "S-front", new FixedLocator(lease), _logger, _time);

        for (int i = 0; i < 2; i++)
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => StatusAsync(forwarder, "site-x"));
            Assert.Equal(StatusCode.Unavailable, ex.StatusCode);
            Assert.Contains("silo S-front could not open a channel to the coordinator S-odd", ex.Status.Detail, StringComparison.Ordinal);
            Assert.Contains("ftp://127.0.0.1:1", ex.Status.Detail, StringComparison.Ordinal);
        }
    }

    public void Dispose()
    {
        _kit.Dispose();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static Task<FederationStatus> StatusAsync(CoordinatorForwarder forwarder, string site)
    {
        var request = new StatusRequest();
        return forwarder.UnaryAsync(site, new CallContext(), request, (client, options) => client.GetStatusAsync(request, options));
    }

    private List<string> Lines(string containing) => [.. _logger.Lines.Select(l => l.Message).Where(m => m.Contains(containing, StringComparison.Ordinal))];

    private sealed class FixedLocator(CoordinatorLeaseRecord? record) : ICoordinatorLocator
    {
        public Task<CoordinatorLeaseRecord?> LocateAsync(CancellationToken cancellationToken) => Task.FromResult(record);

        public void Forget(CoordinatorLeaseRecord stale)
        {
        }
    }

    /// <summary>The server side of an agent's call as the forwarder reads it: method, deadline (none) and cancellation (none).</summary>
    private sealed class CallContext : ServerCallContext
    {
        protected override string MethodCore => "/securefed.v1.Aggregation/GetStatus";

        protected override string HostCore => "127.0.0.1";

        protected override string PeerCore => "ipv4:127.0.0.1:50000";

        protected override DateTime DeadlineCore => DateTime.MaxValue;

        protected override Metadata RequestHeadersCore { get; } = [];

        protected override CancellationToken CancellationTokenCore => CancellationToken.None;

        protected override Metadata ResponseTrailersCore { get; } = [];

        protected override Status StatusCore { get; set; }

        protected override WriteOptions? WriteOptionsCore { get; set; }

        protected override AuthContext AuthContextCore => new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Metadata responseHeaders) => Task.CompletedTask;
    }
}
