using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Federation;
using SecureFed.Testing;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// One authenticated site opens more TLS connections to the agent endpoint than <c>MaxConnectionsPerSite</c> (8) allows and
/// holds them (threat-model/README.md §7): the first 8 work; each further one is closed right after its TLS handshake, so the
/// client sees UNAVAILABLE; the refusals are logged once per site, not once each; other sites (and the aggregator's own
/// certificate, which silos forward with) are not counted against it, and an honest round completes; once the site closes
/// its connections it can connect again. Over real mutual TLS on 127.0.0.1.
/// </summary>
public sealed class HostileConnectionTests : IDisposable
{
    private const int Extra = 4;
    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(30);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-connections-").FullName;

    [Fact]
    public async Task AgentEndpoint_SiteOpensMoreConnectionsThanTheLimit_ExtraOnesClosedOthersUnaffected_HonestRoundCompletes()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-x"], new Dictionary<string, string> { ["MinSites"] = "2" });
        var logs = new CapturingLogger();
        await fed.StartAggregatorAsync(logs: logs);
        ConnectionGate gate = fed.Aggregator!.Services.GetRequiredService<ConnectionGate>();
        int limit = gate.LimitPerSite;
        Assert.Equal(ConnectionGate.DefaultLimitPerSite, limit);
        using PartyKit kitX = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-a"]);
        using PartyKit aggregatorKit = PartyKit.Load(fed.Provisioned.AggregatorKitDirectory);

        // site-x: `limit` connections (a channel and handler, so a connection pool, each), each opened by a cheap call, held open.
        var held = new List<GrpcChannel>();
        var refused = new List<GrpcChannel>();
        try
        {
            for (int i = 0; i < limit; i++)
            {
                GrpcChannel channel = Connect(fed, kitX.TlsCertificate);
                held.Add(channel);
                FederationStatus status = await StatusAsync(channel, "site-x");
                Assert.Equal(TestFederation.FederationName, status.FederationId);
            }

            // Each further connection is closed after its handshake: the call fails, nothing else changes. The client reports
            // the closed connection as UNAVAILABLE, or as INTERNAL when the close reaches it while the HTTP/2 connection is
            // being set up (seen once in CI); either way the gate closed it (its count below stays at the limit).
            for (int i = 0; i < Extra; i++)
            {
                GrpcChannel channel = Connect(fed, kitX.TlsCertificate);
                refused.Add(channel);
                RpcException ex = await Assert.ThrowsAsync<RpcException>(() => StatusAsync(channel, "site-x"));
                Assert.Contains(ex.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Internal });
            }

            Assert.Equal(limit, gate.Open("site-x"));

            // The held ones still work (nothing of theirs was touched).
            foreach (GrpcChannel channel in held)
            {
                Assert.Equal(TestFederation.FederationName, (await StatusAsync(channel, "site-x")).FederationId);
            }

            // The refusals are logged at most once per site every 10 s: here (well within 10 s) one line, naming the site and the setting.
            string[] lines = [.. logs.Lines.Where(l => l.Level == LogLevel.Warning && l.Message.Contains("SecureFed:MaxConnectionsPerSite", StringComparison.Ordinal)).Select(l => l.Message)];
            string line = Assert.Single(lines);
            Assert.StartsWith($"Closed a connection of site-x right after its TLS handshake: the site already holds {limit} connections", line, StringComparison.Ordinal);

            // Another site's connection is not counted against site-x.
            using (GrpcChannel channelA = Connect(fed, kitA.TlsCertificate))
            {
                Assert.Equal(TestFederation.FederationName, (await StatusAsync(channelA, "site-a")).FederationId);
            }

            // Nor are the aggregator's own certificate's (silos forwarding calls): more than `limit` connect, and reach the
            // service, which refuses a call that names no forwarded site (PERMISSION_DENIED, not UNAVAILABLE).
            var silos = new List<GrpcChannel>();
            try
            {
                for (int i = 0; i < limit + 2; i++)
                {
                    GrpcChannel channel = Connect(fed, aggregatorKit.TlsCertificate);
                    silos.Add(channel);
                    RpcException ex = await Assert.ThrowsAsync<RpcException>(() => StatusAsync(channel, "aggregator"));
                    Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
                }
            }
            finally
            {
                silos.ForEach(c => c.Dispose());
            }

            // The honest sites run a round while site-x holds its connections.
            fed.StartAgent("site-a", 100);
            fed.StartAgent("site-b", 200);
            await fed.WaitFinishedAsync(TimeSpan.FromSeconds(45));
            RoundRecord completed = Assert.Single(fed.State.Store.ListRounds(), r => r.Status == RoundStatus.Completed);
            Assert.Equal(["site-a", "site-b"], completed.Participants.Order());
            Assert.Equal(limit, gate.Open("site-x"));
        }
        finally
        {
            refused.ForEach(c => c.Dispose());
            held.ForEach(c => c.Dispose());
        }

        // site-x closes its connections: their places are given back, and it can connect again.
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.Open("site-x") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        using GrpcChannel again = Connect(fed, kitX.TlsCertificate);
        Assert.Equal(TestFederation.FederationName, (await StatusAsync(again, "site-x")).FederationId);
        Assert.Equal(1, gate.Open("site-x"));
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

    /// <summary>
    /// As <see cref="TestFederation.RawChannel"/> (a connection pool of its own, any server certificate trusted), but disposing
    /// the channel disposes its handler too, closing its connection.
    /// </summary>
    private static GrpcChannel Connect(TestFederation fed, X509Certificate2 certificate) => GrpcChannel.ForAddress(fed.Address, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            SslOptions = new SslClientAuthenticationOptions
            {
                ClientCertificates = [certificate],
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            },
            ConnectTimeout = TimeSpan.FromSeconds(5),
        },
        DisposeHttpClient = true,
    });

    private static Task<FederationStatus> StatusAsync(GrpcChannel channel, string site) =>
        new Aggregation.AggregationClient(channel).GetStatusAsync(new StatusRequest { Header = RawClient.Header(0, "", site, Stage.Unspecified) }, RawClient.Deadline(10))
            .ResponseAsync.WaitAsync(HangBound);
}
