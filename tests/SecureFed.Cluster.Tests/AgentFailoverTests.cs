using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;
using SecureFed.Agent;
using SecureFed.Federation;
using SecureFed.Wire.V1;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// An agent given several aggregator endpoints (docs/cluster.md §6) through the real <see cref="AggregatorClient"/> and
/// grpc-dotnet, against endpoints scripted at the HTTP/2 level: a front that answers <c>UNAVAILABLE</c> (it cannot reach
/// the coordinator) is left for the next endpoint, which then stays the one called first; any other answer is the
/// aggregator's and is not sent elsewhere.
/// </summary>
public sealed class AgentFailoverTests : IDisposable
{
    private static readonly Uri FrontA = new("https://front-a.example:7443");
    private static readonly Uri FrontB = new("https://front-b.example:7443");
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-failover-").FullName;
    private readonly PartyKit _kit;

    public AgentFailoverTests()
    {
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "federation"), "failover", ["site-a"], "127.0.0.1"));
        _kit = PartyKit.Load(provisioned.SiteKitDirectories["site-a"]);
    }

    [Fact]
    public async Task Call_FirstFrontAnswersUnavailable_NextEndpointServesItAndIsCalledFirstAfterwards()
    {
        using var handler = new ScriptedGrpcHandler(host => host == FrontA.Host
            ? (StatusCode.Unavailable, "silo s2 could not reach the coordinator s1 (lease epoch 1) at https://10.0.0.1:7443: Connection refused")
            : (StatusCode.OK, null));
        using var client = new AggregatorClient([FrontA, FrontB], _kit, TimeSpan.FromSeconds(10), maxRetries: 0, handler: handler);

        await client.DeclineRoundAsync(new DeclineRoundRequest(), CancellationToken.None);
        await client.DeclineRoundAsync(new DeclineRoundRequest(), CancellationToken.None);

        Assert.Equal([FrontA.Host, FrontB.Host, FrontB.Host], handler.Hosts);
        Assert.Equal(FrontB, client.CurrentEndpoint);
    }

    [Fact]
    public async Task Call_EveryEndpointUnavailable_EachTriedOnceThenTheLastAnswerWithItsReason()
    {
        using var handler = new ScriptedGrpcHandler(host => (StatusCode.Unavailable, $"{host} has no coordinator"));
        using var client = new AggregatorClient([FrontA, FrontB], _kit, TimeSpan.FromSeconds(10), maxRetries: 0, handler: handler);

        RpcException error = await Assert.ThrowsAsync<RpcException>(() => client.DeclineRoundAsync(new DeclineRoundRequest(), CancellationToken.None));

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Equal($"{FrontB.Host} has no coordinator", error.Status.Detail);
        Assert.Equal([FrontA.Host, FrontB.Host], handler.Hosts);
        Assert.Equal(FrontA, client.CurrentEndpoint);
    }

    [Fact]
    public async Task Call_AggregatorRefuses_RefusalReturnedWithoutAskingTheNextEndpoint()
    {
        using var handler = new ScriptedGrpcHandler(_ => (StatusCode.FailedPrecondition, "round 2 is not open"));
        using var client = new AggregatorClient([FrontA, FrontB], _kit, TimeSpan.FromSeconds(10), maxRetries: 0, handler: handler);

        RpcException error = await Assert.ThrowsAsync<RpcException>(() => client.DeclineRoundAsync(new DeclineRoundRequest(), CancellationToken.None));

        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Equal([FrontA.Host], handler.Hosts);
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>
    /// Answers every gRPC call as the script says for the request's host: an empty <see cref="Ack"/> with status OK, or a
    /// trailers-only response with the given status and message (what a gRPC server sends for an error).
    /// </summary>
    private sealed class ScriptedGrpcHandler(Func<string, (StatusCode Code, string? Message)> script) : HttpMessageHandler
    {
        private readonly List<string> _hosts = [];

        /// <summary>The host of every request, in order.</summary>
        public IReadOnlyList<string> Hosts
        {
            get
            {
                lock (_hosts)
                {
                    return [.. _hosts];
                }
            }
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            string host = request.RequestUri!.Host;
            lock (_hosts)
            {
                _hosts.Add(host);
            }

            (StatusCode code, string? message) = script(host);
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Version = HttpVersion.Version20, RequestMessage = request };
            if (code == StatusCode.OK)
            {
                byte[] body = new Ack().ToByteArray();
                byte[] framed = new byte[5 + body.Length];
                BinaryPrimitives.WriteUInt32BigEndian(framed.AsSpan(1), (uint)body.Length);
                body.CopyTo(framed, 5);
                response.Content = new ByteArrayContent(framed);
                response.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
                response.TrailingHeaders.Add("grpc-status", "0");
            }
            else
            {
                response.Content = new ByteArrayContent([]);
                response.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
                response.Headers.Add("grpc-status", ((int)code).ToString(System.Globalization.CultureInfo.InvariantCulture));
                response.Headers.Add("grpc-message", Uri.EscapeDataString(message ?? string.Empty));
            }

            return Task.FromResult(response);
        }
    }
}
