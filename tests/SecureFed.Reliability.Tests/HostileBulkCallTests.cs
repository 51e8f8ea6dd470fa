using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// One authenticated site opens many ShareKeys calls at once with bodies near the 4 MiB message limit, sent slowly, to make
/// the aggregator buffer ~4 MiB per call (threat-model/README.md §7). At most <c>MaxBulkCallsPerSite</c> (2) of them are in
/// flight; the others are refused with RESOURCE_EXHAUSTED before their bodies are read, while the honest sites of the same
/// federation complete a round.
/// </summary>
public sealed class HostileBulkCallTests : IDisposable
{
    private const int BulkBytes = 3_500_000;
    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(90);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-bulkcalls-").FullName;

    [Fact]
    public async Task ShareKeys_ManyLargeStalledCallsOfOneSite_TwoInFlightRestRefusedResourceExhausted_HonestRoundCompletes()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-x"], new Dictionary<string, string> { ["MinSites"] = "2" });
        await fed.StartAggregatorAsync();
        BulkCallGate gate = fed.Aggregator!.Services.GetRequiredService<BulkCallGate>();
        Assert.Equal(2, gate.LimitPerSite);
        using PartyKit kitX = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-a"]);
        string expected = "ShareKeys: site 'site-x' already has 2 ShareKeys/Unmask calls in flight (the limit per site); refused";

        // site-x: 6 raw HTTP/2 ShareKeys calls at once, each declaring a 3.5 MB message and sending 64 KiB of it, then
        // stalling. Two are let through (the service waits for the rest of the body); four are answered at once.
        const int stalled = 6;
        using var release = new CancellationTokenSource();
        using HttpClient raw = RawHttp(kitX.TlsCertificate);
        var calls = new List<Task<HttpResponseMessage>>();
        for (int i = 0; i < stalled; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fed.Address, "/securefed.v1.Aggregation/ShareKeys"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new StalledGrpcContent(BulkBytes, 64 * 1024),
            };
            request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
            calls.Add(raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, release.Token));
        }

        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (calls.Count(c => c.IsCompleted) < stalled - 2 || gate.InFlight("site-x") < 2)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        Assert.Equal(2, gate.InFlight("site-x"));
        foreach (Task<HttpResponseMessage> done in calls.Where(c => c.IsCompleted))
        {
            using HttpResponseMessage response = await done;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("application/grpc", response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("8", Assert.Single(response.Headers.GetValues("grpc-status")));
            Assert.StartsWith(expected, Uri.UnescapeDataString(Assert.Single(response.Headers.GetValues("grpc-message"))), StringComparison.Ordinal);
        }

        // The two let through are still waiting for their bodies.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.Equal(2, calls.Count(c => !c.IsCompleted));

        // Through Grpc.Net.Client, whole 3.5 MB ShareKeys requests of site-x, four at once: each an RpcException with the
        // status and the message.
        using (GrpcChannel channelX = fed.RawChannel(kitX.TlsCertificate))
        {
            var clientX = new Aggregation.AggregationClient(channelX);
            var large = new ShareKeysRequest { Header = RawClient.Header(1, "0123abcd", "site-x", Stage.ShareKeys) };
            large.Shares.Add(new EncryptedShareMessage { Sender = 1, Recipient = 2, Ciphertext = ByteString.CopyFrom(new byte[BulkBytes]) });
            Task<Ack>[] refused = [.. Enumerable.Range(0, 4).Select(_ => clientX.ShareKeysAsync(large, RawClient.Deadline(60)).ResponseAsync)];
            foreach (Task<Ack> call in refused)
            {
                RpcException ex = await Assert.ThrowsAsync<RpcException>(() => call.WaitAsync(HangBound));
                Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
                Assert.StartsWith(expected, ex.Status.Detail, StringComparison.Ordinal);
            }

            // Unmask shares the same places.
            var unmask = new UnmaskResponseMessage { Header = RawClient.Header(1, "0123abcd", "site-x", Stage.Unmasking) };
            RpcException unmaskRefused = await Assert.ThrowsAsync<RpcException>(() => clientX.UnmaskAsync(unmask, RawClient.Deadline(60)).ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.ResourceExhausted, unmaskRefused.StatusCode);
            Assert.StartsWith("Unmask: site 'site-x' already has 2", unmaskRefused.Status.Detail, StringComparison.Ordinal);
        }

        // Another site's ShareKeys is not counted against site-x: it reaches the service (refused there as stale).
        using (GrpcChannel channelA = fed.RawChannel(kitA.TlsCertificate))
        {
            var request = new ShareKeysRequest { Header = RawClient.Header(7, "0123abcd", "site-a", Stage.ShareKeys) };
            RpcException stale = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(channelA).ShareKeysAsync(request, RawClient.Deadline(60)).ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.FailedPrecondition, stale.StatusCode);
        }

        // The honest sites run a round (their ShareKeys and Unmask calls, one at a time) while site-x still holds its two.
        fed.StartAgent("site-a", 100);
        fed.StartAgent("site-b", 200);
        await fed.WaitFinishedAsync(HangBound);
        RoundRecord completed = Assert.Single(fed.State.Store.ListRounds(), r => r.Status == RoundStatus.Completed);
        Assert.Equal(["site-a", "site-b"], completed.Participants.Order());
        Assert.Equal(2, gate.InFlight("site-x"));

        // Each refusal is audited like the service's (9: 4 raw, 4 through Grpc.Net.Client, 1 Unmask), and the log verifies.
        string audit = AggregatorState.AuditDirectory(fed.AggregatorDataDirectory);
        List<JsonElement> refusals = [.. Directory.EnumerateFiles(audit, "*.jsonl").SelectMany(LogFiles.CompleteLines)
            .Select(l => JsonDocument.Parse(l).RootElement.Clone())
            .Where(e => e.GetProperty("type").GetString() == AuditEvents.Refusal && e.GetProperty("fields").TryGetProperty("reason", out JsonElement r)
                && r.GetString()!.Contains("already has 2 ShareKeys/Unmask calls in flight", StringComparison.Ordinal))];
        Assert.Equal(9, refusals.Count);
        Assert.All(refusals, e => Assert.Equal("site-x", e.GetProperty("fields").GetProperty("site").GetString()));
        Assert.All(refusals, e => Assert.Equal("ResourceExhausted", e.GetProperty("fields").GetProperty("status").GetString()));
        AuditVerification verified = AuditVerifier.Verify(audit);
        Assert.True(verified.Ok, verified.FirstProblem);

        // site-x gives up its stalled calls: the aborted calls give their places back.
        await release.CancelAsync();
        await Task.WhenAll(calls.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(HangBound);
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.InFlight("site-x") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }
    }

    /// <summary>
    /// Every method, not only ShareKeys/Unmask: one site opens more calls than <c>MaxCallsPerSite</c> (16) allows, each declaring
    /// a message near 4 MiB, sending part of it and stalling (threat-model/README.md §7). At most 16 are in flight; the rest are
    /// refused with RESOURCE_EXHAUSTED before their bodies are read, and audited and logged within the site's share (32 lines);
    /// a call a cluster silo forwards naming the site counts against it; other sites complete a round meanwhile.
    /// </summary>
    [Fact]
    public async Task AnyMethod_MoreStalledCallsOfOneSiteThanTheCallLimit_LimitInFlightRestRefusedWithinTheSiteShare_HonestRoundCompletes()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-x"], new Dictionary<string, string> { ["MinSites"] = "2" });
        var logs = new CapturingLogger();
        await fed.StartAggregatorAsync(logs: logs);
        BulkCallGate gate = fed.Aggregator!.Services.GetRequiredService<BulkCallGate>();
        int limit = gate.CallLimitPerSite;
        Assert.Equal(BulkCallGate.DefaultCallLimitPerSite, limit);
        using PartyKit kitX = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using PartyKit aggregatorKit = PartyKit.Load(fed.Provisioned.AggregatorKitDirectory);
        const string expected = "site 'site-x' already has 16 calls in flight at this aggregator process (the limit per site, SecureFed:MaxCallsPerSite); refused before reading the request";

        // site-x: `limit` stalled calls of the methods that are not ShareKeys/Unmask, then 40 more; one HTTP/2 connection.
        string[] methods = ["GetStatus", "UploadMaskedInput", "AdvertiseKeys", "AwaitShares", "DownloadModel", "AwaitRound"];
        const int extra = 40;
        using var release = new CancellationTokenSource();
        using HttpClient raw = RawHttp(kitX.TlsCertificate);
        var calls = new List<Task<HttpResponseMessage>>();
        for (int i = 0; i < limit; i++)
        {
            calls.Add(Stalled(raw, fed.Address, methods[i % methods.Length], release.Token));
        }

        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.CallsInFlight("site-x") < limit)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        var refused = new List<Task<HttpResponseMessage>>();
        for (int i = 0; i < extra; i++)
        {
            refused.Add(Stalled(raw, fed.Address, methods[i % methods.Length], release.Token));
        }

        HttpResponseMessage[] answers = await Task.WhenAll(refused).WaitAsync(HangBound);
        for (int i = 0; i < extra; i++)
        {
            using HttpResponseMessage response = answers[i];
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("8", Assert.Single(response.Headers.GetValues("grpc-status")));
            Assert.StartsWith($"{methods[i % methods.Length]}: {expected}", Uri.UnescapeDataString(Assert.Single(response.Headers.GetValues("grpc-message"))), StringComparison.Ordinal);
        }

        Assert.Equal(limit, gate.CallsInFlight("site-x"));
        Assert.All(calls, c => Assert.False(c.IsCompleted));

        // A call a silo forwards naming site-x (the aggregator's certificate) counts against site-x: refused too.
        using (GrpcChannel forwarding = fed.RawChannel(aggregatorKit.TlsCertificate))
        {
            var headers = new Metadata { { ForwardedIdentity.SiteHeader, "site-x" }, { ForwardedIdentity.SiloHeader, "silo-2" } };
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(forwarding)
                .GetStatusAsync(new StatusRequest(), headers, DateTime.UtcNow.AddSeconds(60)).ResponseAsync.WaitAsync(HangBound));
            Assert.Equal(StatusCode.ResourceExhausted, ex.StatusCode);
            Assert.StartsWith($"GetStatus: {expected}", ex.Status.Detail, StringComparison.Ordinal);
        }

        // The honest sites run a round while site-x holds its calls.
        fed.StartAgent("site-a", 100);
        fed.StartAgent("site-b", 200);
        await fed.WaitFinishedAsync(HangBound);
        RoundRecord completed = Assert.Single(fed.State.Store.ListRounds(), r => r.Status == RoundStatus.Completed);
        Assert.Equal(["site-a", "site-b"], completed.Participants.Order());
        Assert.Equal(limit, gate.CallsInFlight("site-x"));

        // 41 refusals: audited and logged within the site's share of refusal lines (32 at once, one more every 10 s), the rest counted.
        string audit = AggregatorState.AuditDirectory(fed.AggregatorDataDirectory);
        // The aggregator still runs: the refusal limiter's timer may be appending its 'suppressed' line as this reads.
        List<JsonElement> lines = [.. Directory.EnumerateFiles(audit, "*.jsonl").SelectMany(LogFiles.CompleteLines)
            .Select(l => JsonDocument.Parse(l).RootElement.Clone())
            .Where(e => e.GetProperty("type").GetString() == AuditEvents.Refusal && e.GetProperty("fields").TryGetProperty("reason", out JsonElement r)
                && r.GetString()!.Contains(expected, StringComparison.Ordinal))];
        Assert.InRange(lines.Count, RefusalAudit.DefaultBurst, RefusalAudit.DefaultBurst + 1);
        Assert.All(lines, e => Assert.Equal("site-x", e.GetProperty("fields").GetProperty("site").GetString()));
        Assert.All(lines, e => Assert.Equal("ResourceExhausted", e.GetProperty("fields").GetProperty("status").GetString()));
        Assert.Equal(lines.Count, logs.Lines.Count(l => l.Message.Contains("(SecureFed:MaxCallsPerSite)", StringComparison.Ordinal)));
        AuditVerification verified = AuditVerifier.Verify(audit);
        Assert.True(verified.Ok, verified.FirstProblem);

        // site-x gives up its stalled calls: the aborted calls give their places back.
        await release.CancelAsync();
        await Task.WhenAll(calls.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(HangBound);
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.CallsInFlight("site-x") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }
    }

    /// <summary>
    /// A site sends the cluster's forwarding header with its own certificate (threat-model/README.md §7). The service refuses
    /// such a call, but until the gate refused it too it passed the gate uncounted, so the site could make the aggregator
    /// buffer a request of up to 4 MiB on every HTTP/2 stream it opened (about 3 GiB with 8 connections of 100 streams).
    /// Now each is answered at once with PERMISSION_DENIED before its body is read, holds no place, and is audited within the
    /// site's share; ASP.NET Core and grpc-dotnet write no line per request (five each at Information, unbounded by the
    /// share); the honest sites complete a round.
    /// </summary>
    [Fact]
    public async Task AnyMethod_SiteCertificateWithForwardingHeader_EveryStalledCallRefusedAtOnce_NoneHeld_NoFrameworkLinePerRequest_HonestRoundCompletes()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-x"], new Dictionary<string, string> { ["MinSites"] = "2" });
        var logs = new CapturingLogger();
        await fed.StartAggregatorAsync(logs: logs, minimumLevel: Microsoft.Extensions.Logging.LogLevel.Information);
        BulkCallGate gate = fed.Aggregator!.Services.GetRequiredService<BulkCallGate>();
        using PartyKit kitX = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        const string expected = "the 'securefed-forwarded-site' header (naming 'site-a') is accepted only from a silo of the aggregator cluster, which presents the aggregator's own certificate; "
            + "this caller presented the certificate of site 'site-x'";

        // Four times the per-site call limit, every method, on one connection: each declares a message near 4 MiB, sends
        // 64 KiB of it and stalls.
        string[] methods = ["ShareKeys", "Unmask", "GetStatus", "UploadMaskedInput", "AdvertiseKeys", "AwaitShares", "DownloadModel", "AwaitRound"];
        int count = 4 * gate.CallLimitPerSite;
        using var release = new CancellationTokenSource();
        using HttpClient raw = RawHttp(kitX.TlsCertificate);
        Task<HttpResponseMessage>[] calls = [.. Enumerable.Range(0, count).Select(i => Stalled(raw, fed.Address, methods[i % methods.Length], release.Token, forwardedSite: "site-a"))];
        HttpResponseMessage[] answers = await Task.WhenAll(calls).WaitAsync(HangBound);
        foreach (HttpResponseMessage response in answers)
        {
            using (response)
            {
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(((int)StatusCode.PermissionDenied).ToString(System.Globalization.CultureInfo.InvariantCulture), Assert.Single(response.Headers.GetValues("grpc-status")));
                Assert.Equal(expected, Uri.UnescapeDataString(Assert.Single(response.Headers.GetValues("grpc-message"))));
            }
        }

        Assert.Equal(0, gate.CallsInFlight("site-x"));
        Assert.Equal(0, gate.CallsInFlight("site-a"));

        // The honest sites run a round.
        fed.StartAgent("site-a", 100);
        fed.StartAgent("site-b", 200);
        await fed.WaitFinishedAsync(HangBound);
        RoundRecord completed = Assert.Single(fed.State.Store.ListRounds(), r => r.Status == RoundStatus.Completed);
        Assert.Equal(["site-a", "site-b"], completed.Participants.Order());

        // Audited under the certificate's site within its share (32 lines at once, one more every 10 s), the rest counted.
        string audit = AggregatorState.AuditDirectory(fed.AggregatorDataDirectory);
        List<JsonElement> lines = [.. Directory.EnumerateFiles(audit, "*.jsonl").SelectMany(LogFiles.CompleteLines)
            .Select(l => JsonDocument.Parse(l).RootElement.Clone())
            .Where(e => e.GetProperty("type").GetString() == AuditEvents.Refusal && e.GetProperty("fields").TryGetProperty("reason", out JsonElement r)
                && r.GetString() == expected)];
        Assert.InRange(lines.Count, RefusalAudit.DefaultBurst, RefusalAudit.DefaultBurst + 1);
        Assert.All(lines, e => Assert.Equal("site-x", e.GetProperty("fields").GetProperty("site").GetString()));
        Assert.All(lines, e => Assert.Equal("PermissionDenied", e.GetProperty("fields").GetProperty("status").GetString()));
        Assert.Equal(lines.Count, logs.Lines.Count(l => l.Message.StartsWith("Refused a ", StringComparison.Ordinal) && l.Message.EndsWith(expected, StringComparison.Ordinal)));
        AuditVerification verified = AuditVerifier.Verify(audit);
        Assert.True(verified.Ok, verified.FirstProblem);

        // No framework line per request, neither for the refused calls nor for the honest round's (the host logs at Information).
        Assert.Contains(logs.Lines, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Information && l.Message.StartsWith("Round 1 completed", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Message.Contains("/securefed.v1.Aggregation/", StringComparison.Ordinal));
        await release.CancelAsync();
    }

    /// <summary>
    /// Routing matches a method's path case-insensitively and tolerates a trailing slash, so a site that spells ShareKeys
    /// or Unmask differently (a hand-made <see cref="Method{TRequest, TResponse}"/> on its channel) still reaches the
    /// service: such a call is counted against the same limit (the gate identifies the call by the routed endpoint).
    /// </summary>
    [Theory]
    [InlineData("securefed.v1.aggregation", "sharekeys")]
    [InlineData("SECUREFED.V1.AGGREGATION", "SHAREKEYS")]
    [InlineData("securefed.v1.Aggregation", "ShareKeys/")]
    [InlineData("Securefed.V1.aggregation", "sharekeys/")]
    [InlineData("securefed.v1.aggregation", "unmask")]
    [InlineData("securefed.v1.Aggregation", "Unmask/")]
    public async Task BulkCall_PathSpelledDifferentlyButRoutedToTheMethod_CountedAgainstTheSameLimit(string service, string name)
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-x"], new Dictionary<string, string> { ["MinSites"] = "2" });
        await fed.StartAggregatorAsync();
        BulkCallGate gate = fed.Aggregator!.Services.GetRequiredService<BulkCallGate>();
        using PartyKit kitX = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using PartyKit kitA = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-a"]);
        bool unmask = name.StartsWith("unmask", StringComparison.OrdinalIgnoreCase);
        string canonical = unmask ? "Unmask" : "ShareKeys";

        // Routing takes the path to the method: site-a's call on it reaches the service (refused there as stale).
        using (GrpcChannel channelA = fed.RawChannel(kitA.TlsCertificate))
        {
            RpcException stale = await Assert.ThrowsAsync<RpcException>(() => BulkCall(channelA, service, name, "site-a", unmask).WaitAsync(HangBound));
            Assert.Equal(StatusCode.FailedPrecondition, stale.StatusCode);
        }

        Assert.Equal(0, gate.InFlight("site-a"));

        // site-x fills its two places with stalled calls on the canonical path.
        using var release = new CancellationTokenSource();
        using HttpClient raw = RawHttp(kitX.TlsCertificate);
        var calls = new List<Task<HttpResponseMessage>>();
        for (int i = 0; i < 2; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(fed.Address, "/securefed.v1.Aggregation/ShareKeys"))
            {
                Version = HttpVersion.Version20,
                VersionPolicy = HttpVersionPolicy.RequestVersionExact,
                Content = new StalledGrpcContent(BulkBytes, 64 * 1024),
            };
            request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
            calls.Add(raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, release.Token));
        }

        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.InFlight("site-x") < 2)
            {
                await Task.Delay(50, timeout.Token);
            }
        }

        // The differently spelled call of site-x is refused by the gate, not let through to the service.
        using (GrpcChannel channelX = fed.RawChannel(kitX.TlsCertificate))
        {
            RpcException refused = await Assert.ThrowsAsync<RpcException>(() => BulkCall(channelX, service, name, "site-x", unmask).WaitAsync(HangBound));
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.StartsWith($"{canonical}: site 'site-x' already has 2 ShareKeys/Unmask calls in flight (the limit per site); refused", refused.Status.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(2, gate.InFlight("site-x"));
        await release.CancelAsync();
        await Task.WhenAll(calls.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(HangBound);
        using (var timeout = new CancellationTokenSource(HangBound))
        {
            while (gate.InFlight("site-x") > 0)
            {
                await Task.Delay(50, timeout.Token);
            }
        }
    }

    /// <summary>
    /// The metric of received bytes (<c>securefed.aggregator.received</c>, by method) names the method the call was routed
    /// to, not the path as the site spelled it: routing matches paths case-insensitively and with a trailing slash, and the
    /// label was taken from the path (<see cref="ServerCallContext.Method"/>), so one site's GetStatus calls under 64
    /// spellings made 33 series before the fix (32 names and "" for the 32 with a trailing slash; up to the OpenTelemetry
    /// SDK's default cap of 2,000 per metric, past which further series go to the overflow series), each a line of the
    /// operator's /metrics.
    /// </summary>
    [Fact]
    public async Task AnyMethod_PathSpelledDifferentlyByASite_OneMetricSeriesUnderTheRoutedMethodsName()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-x"], new Dictionary<string, string> { ["MinSites"] = "2" });
        await fed.StartAggregatorAsync();
        System.Diagnostics.Metrics.IMeterFactory meters = fed.Aggregator!.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var series = new System.Collections.Concurrent.ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, meters) && instrument.Name == "securefed.aggregator.received")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, bytes, tags, _) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "method")
                {
                    series.AddOrUpdate((string)tag.Value!, bytes, (_, sum) => sum + bytes);
                }
            }
        });
        listener.Start();

        using PartyKit kitX = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using GrpcChannel channel = fed.RawChannel(kitX.TlsCertificate);
        CallInvoker invoker = channel.CreateCallInvoker();
        const int spellings = 64;
        for (int i = 0; i < spellings; i++)
        {
            // Bit k of i upper-cases letter k of "getstatus"; every other call ends in a slash. All are routed to GetStatus.
            string name = new string("getstatus".Select((c, k) => ((i >> k) & 1) == 1 ? char.ToUpperInvariant(c) : c).ToArray());
            var method = new Method<StatusRequest, FederationStatus>(MethodType.Unary, "securefed.v1.aggregation", i % 2 == 0 ? name : name + "/",
                Marshaller<StatusRequest>(StatusRequest.Parser), Marshaller<FederationStatus>(FederationStatus.Parser));
            FederationStatus status = await invoker.AsyncUnaryCall(method, null, RawClient.Deadline(60), new StatusRequest { Header = RawClient.Header(0, "", "site-x", Stage.Unspecified) })
                .ResponseAsync.WaitAsync(HangBound);
            Assert.Equal(TestFederation.FederationName, status.FederationId);
        }

        Assert.Equal(["GetStatus"], series.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(spellings * new StatusRequest { Header = RawClient.Header(0, "", "site-x", Stage.Unspecified) }.CalculateSize(), series["GetStatus"]);
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

    private static Task<Ack> BulkCall(GrpcChannel channel, string service, string name, string site, bool unmask)
    {
        CallInvoker invoker = channel.CreateCallInvoker();
        CallOptions options = RawClient.Deadline(60);
        if (unmask)
        {
            var method = new Method<UnmaskResponseMessage, Ack>(MethodType.Unary, service, name, Marshaller<UnmaskResponseMessage>(UnmaskResponseMessage.Parser), Marshaller<Ack>(Ack.Parser));
            var request = new UnmaskResponseMessage { Header = RawClient.Header(1, "0123abcd", site, Stage.Unmasking) };
            return invoker.AsyncUnaryCall(method, null, options, request).ResponseAsync;
        }
        else
        {
            var method = new Method<ShareKeysRequest, Ack>(MethodType.Unary, service, name, Marshaller<ShareKeysRequest>(ShareKeysRequest.Parser), Marshaller<Ack>(Ack.Parser));
            var request = new ShareKeysRequest { Header = RawClient.Header(1, "0123abcd", site, Stage.ShareKeys) };
            return invoker.AsyncUnaryCall(method, null, options, request).ResponseAsync;
        }
    }

    /// <summary>A raw HTTP/2 call of <paramref name="method"/> declaring a ~4 MiB message, sending 64 KiB of it, then stalling.</summary>
    private static Task<HttpResponseMessage> Stalled(HttpClient raw, Uri address, string method, CancellationToken cancellationToken, string? forwardedSite = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(address, $"/securefed.v1.Aggregation/{method}"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new StalledGrpcContent(4 * 1024 * 1024 - 16, 64 * 1024),
        };
        request.Headers.TE.Add(new TransferCodingWithQualityHeaderValue("trailers"));
        if (forwardedSite is not null)
        {
            request.Headers.Add(ForwardedIdentity.SiteHeader, forwardedSite);
        }

        return raw.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }

    private static Marshaller<T> Marshaller<T>(MessageParser<T> parser)
        where T : IMessage<T> => Marshallers.Create(m => m.ToByteArray(), parser.ParseFrom);

    private static HttpClient RawHttp(X509Certificate2 certificate) => new(new SocketsHttpHandler
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            ClientCertificates = [certificate],
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        },
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    /// <summary>
    /// A gRPC request body that declares a message of <c>declared</c> bytes, sends <c>sent</c> of them and then stalls until
    /// the call is cancelled (or the server ends the stream).
    /// </summary>
    private sealed class StalledGrpcContent : HttpContent
    {
        private readonly int _declared;
        private readonly int _sent;

        public StalledGrpcContent(int declared, int sent)
        {
            _declared = declared;
            _sent = sent;
            Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
        {
            byte[] prefix = new byte[5];
            BinaryPrimitives.WriteUInt32BigEndian(prefix.AsSpan(1), (uint)_declared);
            await stream.WriteAsync(prefix, cancellationToken);
            await stream.WriteAsync(new byte[_sent], cancellationToken);
            await stream.FlushAsync(cancellationToken);
            await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
