using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The per-site bound on open connections to the agent endpoint (<see cref="ConnectionGate"/>), in process: its counting
/// (limit, release, independence of sites, many threads), the rate limit of its log lines, whom a connection counts against
/// (<see cref="AgentListener.CountedAs"/>), and the setting. Over real mutual TLS: <see cref="HostileConnectionTests"/>.
/// </summary>
public sealed class ConnectionGateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-conngate-").FullName;

    [Fact]
    public void Constructor_LimitBelowOne_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConnectionGate(0));
        Assert.Equal(8, ConnectionGate.DefaultLimitPerSite);
        Assert.Equal(ConnectionGate.DefaultLimitPerSite, new AggregatorOptions().MaxConnectionsPerSite);
    }

    [Fact]
    public void TryAcquire_UpToTheLimit_ThenRefusedUntilOneIsReleased()
    {
        var gate = new ConnectionGate(3);

        Assert.True(gate.TryAcquire("site-x"));
        Assert.True(gate.TryAcquire("site-x"));
        Assert.True(gate.TryAcquire("site-x"));
        Assert.False(gate.TryAcquire("site-x"));
        Assert.False(gate.TryAcquire("site-x"));
        Assert.Equal(3, gate.Open("site-x"));

        Assert.True(gate.Release("site-x"));
        Assert.Equal(2, gate.Open("site-x"));
        Assert.True(gate.TryAcquire("site-x"));
        Assert.False(gate.TryAcquire("site-x"));
        Assert.Equal(3, gate.Open("site-x"));
    }

    [Fact]
    public void Release_NothingHeld_FalseAndNeverNegative()
    {
        var gate = new ConnectionGate(2);

        Assert.False(gate.Release("site-x"));
        Assert.Equal(0, gate.Open("site-x"));
        Assert.True(gate.TryAcquire("site-x"));
        Assert.True(gate.Release("site-x"));
        Assert.False(gate.Release("site-x"));
        Assert.Equal(0, gate.Open("site-x"));

        // A stray release does not lend the site an extra place.
        Assert.True(gate.TryAcquire("site-x"));
        Assert.True(gate.TryAcquire("site-x"));
        Assert.False(gate.TryAcquire("site-x"));
    }

    [Fact]
    public void TryAcquire_SitesIndependent_OneAtItsLimitDoesNotTakeAnothersPlaces()
    {
        var gate = new ConnectionGate(2);
        Assert.True(gate.TryAcquire("site-x"));
        Assert.True(gate.TryAcquire("site-x"));
        Assert.False(gate.TryAcquire("site-x"));

        Assert.True(gate.TryAcquire("site-a"));
        Assert.True(gate.TryAcquire("site-a"));
        Assert.False(gate.TryAcquire("site-a"));
        Assert.True(gate.TryAcquire(ConnectionGate.Unidentified));
        Assert.Equal(2, gate.Open("site-x"));
        Assert.Equal(2, gate.Open("site-a"));
        Assert.Equal(1, gate.Open(ConnectionGate.Unidentified));
        Assert.Equal(0, gate.Open("site-b"));

        Assert.True(gate.Release("site-a"));
        Assert.False(gate.TryAcquire("site-x"));
    }

    [Fact]
    public async Task TryAcquireRelease_ManyThreadsAtOnce_NeverAboveTheLimitNorNegative()
    {
        const int limit = 5;
        const int threads = 16;
        const int iterations = 20_000;
        var gate = new ConnectionGate(limit);
        string[] sites = ["site-a", "site-b"];
        var held = new int[sites.Length];
        var maxHeld = new int[sites.Length];
        int violations = 0;
        using var start = new Barrier(threads);

        Task[] workers = [.. Enumerable.Range(0, threads).Select(t => Task.Factory.StartNew(() =>
        {
            var random = new Random(t);
            int s = t % sites.Length;
            start.SignalAndWait();
            for (int i = 0; i < iterations; i++)
            {
                if (!gate.TryAcquire(sites[s]))
                {
                    continue;
                }

                int now = Interlocked.Increment(ref held[s]);
                if (now > limit || gate.Open(sites[s]) > limit || gate.Open(sites[s]) < 0)
                {
                    Interlocked.Increment(ref violations);
                }

                int seen = Volatile.Read(ref maxHeld[s]);
                while (now > seen && Interlocked.CompareExchange(ref maxHeld[s], now, seen) != seen)
                {
                    seen = Volatile.Read(ref maxHeld[s]);
                }

                Thread.SpinWait(random.Next(50));
                Interlocked.Decrement(ref held[s]);
                gate.Release(sites[s]);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default))];
        await Task.WhenAll(workers).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, violations);
        Assert.All(maxHeld, m => Assert.InRange(m, 1, limit));
        foreach (string site in sites)
        {
            Assert.InRange(gate.Open(site), 0, limit);
        }
    }

    [Fact]
    public void TryAcquireRelease_StrayReleasesFromManyThreads_CountEndsAtZeroNotBelow()
    {
        var gate = new ConnectionGate(4);
        for (int i = 0; i < 4; i++)
        {
            Assert.True(gate.TryAcquire("site-x"));
        }

        int released = 0;
        Parallel.For(0, 1_000, _ =>
        {
            if (gate.Release("site-x"))
            {
                Interlocked.Increment(ref released);
            }
        });

        Assert.Equal(4, released);
        Assert.Equal(0, gate.Open("site-x"));
        for (int i = 0; i < 4; i++)
        {
            Assert.True(gate.TryAcquire("site-x"));
        }

        Assert.False(gate.TryAcquire("site-x"));
    }

    [Fact]
    public void RefusalToLog_ManyRefusals_OneLinePerSitePerIntervalWithTheCountSinceTheLast()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 7, 0, 0, TimeSpan.Zero));
        var gate = new ConnectionGate(1, time);

        Assert.True(gate.RefusalToLog("site-x", out long first));
        Assert.Equal(1, first);
        for (int i = 0; i < 999; i++)
        {
            Assert.False(gate.RefusalToLog("site-x", out _));
            time.Advance(TimeSpan.FromMilliseconds(9));
        }

        // Another site's first refusal is logged at once: the interval is per site.
        Assert.True(gate.RefusalToLog("site-y", out long other));
        Assert.Equal(1, other);

        time.Advance(ConnectionGate.LogInterval - TimeSpan.FromMilliseconds(9 * 999));
        Assert.True(gate.RefusalToLog("site-x", out long next));
        Assert.Equal(1_000, next);
        Assert.False(gate.RefusalToLog("site-x", out _));
        time.Advance(ConnectionGate.LogInterval);
        Assert.True(gate.RefusalToLog("site-x", out long last));
        Assert.Equal(2, last);
    }

    [Fact]
    public void CountedAs_SiteAggregatorAndOtherCertificates_SiteNotCountedOrTheSharedBucket()
    {
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "conngate", ["site-a", "site-x"], "127.0.0.1"));
        using PartyKit aggregator = PartyKit.Load(provisioned.AggregatorKitDirectory);
        using PartyKit siteA = PartyKit.Load(provisioned.SiteKitDirectories["site-a"]);
        using PartyKit siteX = PartyKit.Load(provisioned.SiteKitDirectories["site-x"]);
        ProvisionResult stranger = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "other"), "conngate", ["site-a"], "127.0.0.1"));
        using PartyKit foreign = PartyKit.Load(stranger.SiteKitDirectories["site-a"]);

        Assert.Equal("site-a", AgentListener.CountedAs(siteA.TlsCertificate, aggregator.Manifest));
        Assert.Equal("site-x", AgentListener.CountedAs(siteX.TlsCertificate, aggregator.Manifest));
        Assert.Null(AgentListener.CountedAs(aggregator.TlsCertificate, aggregator.Manifest));
        Assert.Equal(ConnectionGate.Unidentified, AgentListener.CountedAs(foreign.TlsCertificate, aggregator.Manifest));
        Assert.Equal(ConnectionGate.Unidentified, AgentListener.CountedAs(null, aggregator.Manifest));
    }

    [Theory]
    [InlineData(null, 8, null)]
    [InlineData("1", 1, null)]
    [InlineData("1024", 1024, null)]
    [InlineData("0", 0, "SecureFed:MaxConnectionsPerSite must be between 1 and 1024, got 0.")]
    [InlineData("1025", 1025, "SecureFed:MaxConnectionsPerSite must be between 1 and 1024, got 1025.")]
    public void AggregatorOptions_MaxConnectionsPerSite_BoundDefaultedAndValidated(string? configured, int bound, string? error)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = "fed",
            ["SecureFed:KitDirectory"] = "kit",
            ["SecureFed:ModelSpecSha256"] = new string('a', 64),
        };
        if (configured is not null)
        {
            settings["SecureFed:MaxConnectionsPerSite"] = configured;
        }

        var options = new AggregatorOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AggregatorOptions.Section).Bind(options);

        Assert.Equal(bound, options.MaxConnectionsPerSite);
        Assert.Equal(error is null ? [] : [error], options.Validate());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
