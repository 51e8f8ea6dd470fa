using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Orleans.Configuration;
using SecureFed.Federation;
using SecureFed.Protocol;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Mutual TLS on the cluster's own ports (<see cref="ClusterTls"/>): silo processes with the aggregator's kit run a round
/// whose slices cross silo-to-silo links; gateway clients with a site's certificate, another federation's aggregator
/// certificate or no TLS at all are refused during the handshake, and the silos log why.
/// </summary>
public sealed class ClusterTlsTests : IClassFixture<PostgresServer>, IDisposable
{
    private const string Federation = "cluster-tls";
    private static readonly TimeSpan RefusedStart = TimeSpan.FromSeconds(15);
    private readonly PostgresServer _postgres;
    private readonly ITestOutputHelper _output;
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cluster-tls-").FullName;
    private readonly Lazy<ProvisionResult> _federation;
    private readonly Lazy<ProvisionResult> _other;

    public ClusterTlsTests(PostgresServer postgres, ITestOutputHelper output)
    {
        _postgres = postgres;
        _output = output;
        _federation = new(() => FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), Federation, ["site-a", "site-b"], "127.0.0.1")));
        _other = new(() => FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "other"), Federation, ["site-a"], "127.0.0.1")));
    }

    [Fact]
    public void IsAggregatorPeer_OnlyThisFederationsAggregatorCertificate()
    {
        using PartyKit aggregator = PartyKit.Load(_federation.Value.AggregatorKitDirectory);
        using PartyKit site = PartyKit.Load(_federation.Value.SiteKitDirectories["site-a"]);
        using PartyKit otherAggregator = PartyKit.Load(_other.Value.AggregatorKitDirectory);

        Assert.True(ClusterTls.IsAggregatorPeer(aggregator.TlsCertificate, aggregator.Manifest, out string? none), none);
        Assert.Null(none);

        Assert.False(ClusterTls.IsAggregatorPeer(site.TlsCertificate, aggregator.Manifest, out string? siteError));
        Assert.Contains("is not the aggregator certificate", siteError, StringComparison.Ordinal);
        Assert.Contains(FederationManifest.Thumbprint(site.TlsCertificate), siteError, StringComparison.Ordinal);

        // Same federation name, another CA: refused before the thumbprint is compared.
        Assert.False(ClusterTls.IsAggregatorPeer(otherAggregator.TlsCertificate, aggregator.Manifest, out string? otherError));
        Assert.Equal(PeerTrust.NotIssuedByFederationCa, otherError);
    }

    [Fact]
    public void Configure_SiteKit_RefusedNamingIt()
    {
        using PartyKit site = PartyKit.Load(_federation.Value.SiteKitDirectories["site-b"]);
        var ex = Assert.Throws<ArgumentException>(() => ClusterTls.Configure(new Orleans.Connections.Security.TlsOptions(), site));
        Assert.Contains("not the kit of site 'site-b'", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Silos_MutualTls_RoundAcrossSilosCompletes_ClientsWithoutTheAggregatorCertificateRefused()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        string kit = _federation.Value.AggregatorKitDirectory;
        string connection = await CreateDatabaseAsync("cluster_tls");
        var silos = new List<SiloProcess>();
        try
        {
            // Two slice-only silos with the aggregator's kit: the default Cluster:Tls, mutual.
            silos.Add(await SiloProcess.StartAsync(_dir, Federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connection, null, null, kit, null, null));
            silos.Add(await SiloProcess.StartAsync(_dir, Federation, SiloProcess.FreePort(), SiloProcess.FreePort(), connection, null, null, kit, null, null));
            Assert.All(silos, s => Assert.Contains("mutual TLS with the aggregator's certificate", s.Output, StringComparison.Ordinal));

            using (PartyKit aggregator = PartyKit.Load(kit))
            using (IHost client = await StartClientAsync(silos, aggregator, TimeSpan.FromSeconds(60)))
            {
                IClusterClient grains = client.Services.GetRequiredService<IClusterClient>();
                await WaitForActiveSilosAsync(grains, 2);

                // Three slices on two silos: masked slices, unmasking seeds and the unmasked sum cross the TLS links.
                const int M = 3_001;
                using var script = new RoundScript(6, seed: 41, round: 1, M, bitWidth: 32, degree: 4, federation: Federation);
                var round = new ClusterRoundClient(grains, Federation, 1);
                var spec = ClusterRoundSpec.From(script.Parameters, 1_024);
                await round.OpenAsync(spec, CancellationToken.None).WaitAsync(RoundScript.Timeout);
                await script.ThroughShareKeysAsync(round, []);
                await script.SendMaskedInputsAsync(round, Enumerable.Range(1, 5)); // site 6 drops: its pairwise masks are removed slice by slice
                (AggregationResult single, AggregationResult clustered) = await script.FinishAsync(round, []);
                Assert.Equal(single.Sum, clustered.Sum);
            }

            // A site's certificate of the same federation, another federation's aggregator, no TLS: no gateway session.
            // Each refusal must also be logged by a silo. Its output reaches this process through a pipe, and on a starved
            // machine a refused client's 15 s can pass before any of its handshakes got as far as the silo's check (CI
            // once: no line for the other federation's certificate), so a refused client is tried up to three times
            // until its line is there.
            using (PartyKit site = PartyKit.Load(_federation.Value.SiteKitDirectories["site-a"]))
            {
                await AssertRefusedAndLoggedAsync(silos, "a site's certificate", () => StartClientAsync(silos, site.TlsCertificate, site.Manifest),
                    "is not the aggregator certificate of federation manifest");
            }

            using (PartyKit other = PartyKit.Load(_other.Value.AggregatorKitDirectory))
            {
                await AssertRefusedAndLoggedAsync(silos, "another federation's aggregator certificate", () => StartClientAsync(silos, other, RefusedStart),
                    "Cluster TLS: refused a connection: " + PeerTrust.NotIssuedByFederationCa);
            }

            await AssertRefusedAsync("a client without TLS", () => StartClientAsync(silos, certificate: null, manifest: null));
        }
        finally
        {
            foreach (SiloProcess silo in silos)
            {
                _output.WriteLine($"--- silo {silo.SiloPort}\n{silo.Output}");
                silo.Dispose();
            }
        }
    }

    [Fact]
    public void Options_TlsValueAndKit_EveryProblemNamed()
    {
        var bogus = new AggregatorClusterOptions { ConnectionString = "Host=127.0.0.1;Database=x", Tls = "sometimes" };
        Assert.Contains(bogus.Validate(), p => p.Contains("SecureFed:Cluster:Tls must be 'mutual'", StringComparison.Ordinal) && p.Contains("'sometimes'", StringComparison.Ordinal));

        var noKit = new AggregatorClusterOptions { ConnectionString = "Host=127.0.0.1;Database=x" };
        Assert.Empty(noKit.Validate());
        Assert.Contains(noKit.ValidateRole(listen: null, kitDirectory: null), p => p.Contains("SecureFed:KitDirectory is required on every silo while SecureFed:Cluster:Tls is 'mutual'", StringComparison.Ordinal));
        Assert.Empty(noKit.ValidateRole(listen: null, kitDirectory: "/kits/aggregator"));

        var off = new AggregatorClusterOptions { ConnectionString = "Host=127.0.0.1;Database=x", Tls = "off" };
        Assert.Empty(off.Validate());
        Assert.Empty(off.ValidateRole(listen: null, kitDirectory: null));
        Assert.False(off.MutualTls);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // a silo process may still hold a file; the temp folder is cleaned by the OS
        }
    }

    /// <summary><see cref="AssertRefusedAsync"/>, repeated (at most three times) until a silo's output holds <paramref name="logged"/>.</summary>
    private async Task AssertRefusedAndLoggedAsync(IReadOnlyList<SiloProcess> silos, string who, Func<Task<IHost>> start, string logged)
    {
        for (int attempt = 1; ; attempt++)
        {
            await AssertRefusedAsync(who, start);
            DateTime until = DateTime.UtcNow.AddSeconds(10);
            while (DateTime.UtcNow < until)
            {
                if (silos.Any(s => s.Output.Contains(logged, StringComparison.Ordinal)))
                {
                    return;
                }

                await Task.Delay(200);
            }

            Assert.True(attempt < 3, $"{who}: refused {attempt} times, but no silo logged \"{logged}\"");
            _output.WriteLine($"{who}: refused, not logged yet; again");
        }
    }

    private async Task AssertRefusedAsync(string who, Func<Task<IHost>> start)
    {
        IHost? host = null;
        Exception? failure = null;
        try
        {
            host = await start();
            IClusterClient grains = host.Services.GetRequiredService<IClusterClient>();
            await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (Exception ex)
        {
            failure = ex;
        }
        finally
        {
            host?.Dispose();
        }

        Assert.True(failure is not null, $"a gateway client with {who} reached the cluster's grains");
        _output.WriteLine($"{who}: {failure!.GetType().Name}: {failure.Message.Split('\n')[0]}");
    }

    // A refused client retries its gateways until its start times out: 60 s for the accepted client, 15 s for a refused one.
    private static Task<IHost> StartClientAsync(IReadOnlyList<SiloProcess> silos, PartyKit kit, TimeSpan startTimeout) =>
        StartClientAsync(silos, kit.TlsCertificate, kit.Manifest, kit, startTimeout);

    private static Task<IHost> StartClientAsync(IReadOnlyList<SiloProcess> silos, X509Certificate2? certificate, FederationManifest? manifest) =>
        StartClientAsync(silos, certificate, manifest, kit: null, RefusedStart);

    /// <summary>
    /// A gateway client presenting <paramref name="certificate"/> (null: plain TCP) and accepting only
    /// <paramref name="manifest"/>'s aggregator; with <paramref name="kit"/> exactly the product's settings (<see cref="ClusterTls.Configure"/>).
    /// </summary>
    private static async Task<IHost> StartClientAsync(IReadOnlyList<SiloProcess> silos, X509Certificate2? certificate, FederationManifest? manifest, PartyKit? kit, TimeSpan startTimeout)
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder();
        builder.UseOrleansClient(client =>
        {
            client.UseStaticClustering([.. silos.Select(s => new IPEndPoint(IPAddress.Loopback, s.GatewayPort))]);
            client.Configure<ClusterOptions>(o =>
            {
                o.ClusterId = Federation;
                o.ServiceId = ClusterHost.ServiceId;
            });
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(20));
            if (kit is not null)
            {
                client.UseTls(kit.TlsCertificate, tls => ClusterTls.Configure(tls, kit));
            }
            else if (certificate is not null)
            {
                // Not an aggregator kit: the same settings by hand, with this certificate.
                client.UseTls(certificate, tls =>
                {
                    tls.RemoteCertificateMode = Orleans.Connections.Security.RemoteCertificateMode.RequireCertificate;
                    tls.RemoteCertificateValidation = (c, _, _) => ClusterTls.IsAggregatorPeer(c, manifest!, out _);
                });
            }
        });
        IHost host = builder.Build();
        try
        {
            await host.StartAsync().WaitAsync(startTimeout);
        }
        catch
        {
            host.Dispose();
            throw;
        }

        return host;
    }

    private static async Task WaitForActiveSilosAsync(IClusterClient grains, int count)
    {
        IManagementGrain management = grains.GetGrain<IManagementGrain>(0);
        DateTime deadline = DateTime.UtcNow.AddSeconds(120);
        int seen = -1;
        while (true)
        {
            try
            {
                seen = (await management.GetHosts(onlyActive: true).WaitAsync(TimeSpan.FromSeconds(20))).Count;
                if (seen == count)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is TimeoutException or SiloUnavailableException or OrleansMessageRejectionException)
            {
                // ask again
            }

            Assert.True(DateTime.UtcNow < deadline, $"the cluster did not reach {count} active silos within 120 s (last seen: {seen})");
            await Task.Delay(500);
        }
    }

    private async Task<string> CreateDatabaseAsync(string name)
    {
        await using var server = Npgsql.NpgsqlDataSource.Create(_postgres.ConnectionString);
        await using (var create = server.CreateCommand($"CREATE DATABASE {name}"))
        {
            await create.ExecuteNonQueryAsync().WaitAsync(RoundScript.Timeout);
        }

        return new Npgsql.NpgsqlConnectionStringBuilder(_postgres.ConnectionString) { Database = name }.ConnectionString;
    }
}
