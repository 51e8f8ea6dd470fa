using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A separate, raw gRPC client (not the project's agent) attacks a running aggregator while honest agents run a round.
/// Every bad message must get a precise status and a message naming the problem; the round completes for the honest
/// sites; the store and the audit log still verify.
/// </summary>
public sealed class HostileClientTests : IDisposable
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(15);
    private static readonly string[] Honest = ["site-a", "site-b", "site-c"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-hostile-").FullName;

    [Fact]
    public async Task Aggregator_HostileSiteInCohort_EveryAttackRefusedPreciselyAndHonestRoundCompletes()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), [.. Honest, "site-x"], new Dictionary<string, string> { ["TrainingTimeoutSeconds"] = "10" });
        await fed.StartAggregatorAsync();
        using PartyKit kit = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using GrpcChannel channel = fed.RawChannel(kit.TlsCertificate);
        var client = new Aggregation.AggregationClient(channel);

        // --- connection-level attacks (no round needed) --------------------------------------------------------
        using (GrpcChannel noCert = fed.RawChannel(null))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(noCert).GetStatusAsync(new StatusRequest { Header = H(0, "", "site-x") }, Deadline()).ResponseAsync.WaitAsync(CallTimeout));
            // With TLS 1.3 the server checks the client certificate after the handshake and drops the connection: the
            // client sees a transport failure (Unavailable or Internal), never a response.
            Assert.Contains(ex.StatusCode, new[] { StatusCode.Unavailable, StatusCode.Unauthenticated, StatusCode.Internal });
        }

        ProvisionResult foreign = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "foreign"), "other-federation", ["site-x"], "127.0.0.1"));
        using (PartyKit foreignKit = PartyKit.Load(foreign.SiteKitDirectories["site-x"]))
        using (GrpcChannel foreignChannel = fed.RawChannel(foreignKit.TlsCertificate))
        {
            RpcException ex = await Assert.ThrowsAsync<RpcException>(() => new Aggregation.AggregationClient(foreignChannel).GetStatusAsync(new StatusRequest { Header = H(0, "", "site-x") }, Deadline()).ResponseAsync.WaitAsync(CallTimeout));
            Assert.Contains(ex.StatusCode, new[] { StatusCode.Unavailable, StatusCode.PermissionDenied, StatusCode.Unauthenticated, StatusCode.Internal });
        }

        await Refused(() => client.GetStatusAsync(new StatusRequest { Header = H(0, "", "site-a") }, Deadline()).ResponseAsync, StatusCode.PermissionDenied, "certificate belongs to 'site-x'");
        var wrongFederation = H(0, "", "site-x");
        wrongFederation.FederationId = "evil-federation";
        await Refused(() => client.GetStatusAsync(new StatusRequest { Header = wrongFederation }, Deadline()).ResponseAsync, StatusCode.InvalidArgument, "evil-federation");
        await Refused(() => client.AdvertiseKeysAsync(new AdvertiseKeysRequest { Header = H(7, "0123abcd", "site-x", Stage.AdvertiseKeys) }, Deadline()).ResponseAsync, StatusCode.FailedPrecondition, "replays and stale messages are refused");

        // Malformed protobuf: a length prefix far beyond the message. The aggregator's request deserializer refuses it
        // with InvalidArgument naming the method and the parse problem; nothing reaches the service.
        var raw = new Method<byte[], byte[]>(MethodType.Unary, "securefed.v1.Aggregation", "GetStatus", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        await Refused(() => channel.CreateCallInvoker().AsyncUnaryCall(raw, null, Deadline(), [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01]).ResponseAsync,
            StatusCode.InvalidArgument, "securefed.v1.Aggregation/GetStatus: the request is not a valid StatusRequest protobuf message");
        // A truncated field (tag for bytes field 2, length 9, one byte of content).
        var rawAdvertise = new Method<byte[], byte[]>(MethodType.Unary, "securefed.v1.Aggregation", "AdvertiseKeys", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        await Refused(() => channel.CreateCallInvoker().AsyncUnaryCall(rawAdvertise, null, Deadline(), [0x12, 0x09, 0x01]).ResponseAsync,
            StatusCode.InvalidArgument, "AdvertiseKeys: the request is not a valid AdvertiseKeysRequest");
        // Valid protobuf but no header: refused before any round state is touched.
        await Refused(() => channel.CreateCallInvoker().AsyncUnaryCall(rawAdvertise, null, Deadline(), []).ResponseAsync, StatusCode.InvalidArgument, "carries no header");
        // A malformed chunk in the client-streaming upload.
        var rawUpload = new Method<byte[], byte[]>(MethodType.ClientStreaming, "securefed.v1.Aggregation", "UploadMaskedInput", Marshallers.Create(b => b, b => b), Marshallers.Create(b => b, b => b));
        await Refused(async () =>
        {
            using AsyncClientStreamingCall<byte[], byte[]> call = channel.CreateCallInvoker().AsyncClientStreamingCall(rawUpload, null, Deadline());
            try
            {
                await call.RequestStream.WriteAsync([0x22, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
                await call.RequestStream.CompleteAsync();
            }
            catch (RpcException)
            {
                // the server may answer before the stream is complete
            }

            await call.ResponseAsync;
        }, StatusCode.InvalidArgument, "UploadMaskedInput: the request is not a valid MaskedInputChunk");

        // Oversized message (> 4 MiB).
        var huge = new AdvertiseKeysRequest { Header = H(1, "x", "site-x"), Signature = ByteString.CopyFrom(new byte[AggregatorHost.MaxMessageBytes + 1024]) };
        RpcException oversized = await Assert.ThrowsAsync<RpcException>(() => client.AdvertiseKeysAsync(huge, Deadline()).ResponseAsync.WaitAsync(CallTimeout));
        Assert.Equal(StatusCode.ResourceExhausted, oversized.StatusCode);

        // The aggregator is still healthy.
        FederationStatus status = await client.GetStatusAsync(new StatusRequest { Header = H(0, "", "site-x") }, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        Assert.Equal(TestFederation.FederationName, status.FederationId);

        // --- join the round with the honest sites -------------------------------------------------------------
        foreach ((string site, int i) in Honest.Select((s, i) => (s, i)))
        {
            fed.StartAgent(site, 100 * (i + 1));
        }

        RoundAnnouncement a = await client.AwaitRoundAsync(new AwaitRoundRequest { Header = H(0, "", "site-x", Stage.Announce) }, Deadline(60)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(70));
        Assert.False(a.Finished);
        ulong round = a.Header.Round;
        string session = a.Header.SessionId;
        RoundParameters parameters = TestFederation.RoundParametersOf(a);
        int self = parameters.Find("site-x")!.Index;
        using var protocol = new ClientRound(parameters, "site-x", kit.IdentityKey);
        KeyAdvertisement good = protocol.AdvertiseKeys();

        // Out-of-order stage messages.
        await Refused(() => client.SignSurvivorsAsync(new ConsistencyRequest { Header = H(round, session, "site-x", Stage.Consistency), Signature = ByteString.CopyFrom(new byte[64]) }, Deadline()).ResponseAsync, StatusCode.FailedPrecondition, "out of order");
        await Refused(() => client.UnmaskAsync(new UnmaskResponseMessage { Header = H(round, session, "site-x", Stage.Unmasking) }, Deadline()).ResponseAsync, StatusCode.FailedPrecondition, "out of order");

        // Invalid X25519 points and a forged signature.
        byte[] lowOrder = new byte[32];
        lowOrder[0] = 1; // u = 1: a point of small order on Curve25519
        await Refused(() => client.AdvertiseKeysAsync(Ad(round, session, new byte[32], good.MaskingPublicKey, good.Signature, good.SelfMaskCommitment), Deadline()).ResponseAsync, StatusCode.InvalidArgument, "invalid X25519 public key");
        await Refused(() => client.AdvertiseKeysAsync(Ad(round, session, good.EncryptionPublicKey, lowOrder, good.Signature, good.SelfMaskCommitment), Deadline()).ResponseAsync, StatusCode.InvalidArgument, "invalid X25519 public key");
        byte[] forged = (byte[])good.Signature.Clone();
        forged[5] ^= 0x40;
        await Refused(() => client.AdvertiseKeysAsync(Ad(round, session, good.EncryptionPublicKey, good.MaskingPublicKey, forged, good.SelfMaskCommitment), Deadline()).ResponseAsync, StatusCode.InvalidArgument, "does not verify");

        // Masked-input stream attacks (checked before the stage: length, offsets, chunk size, digest).
        int m = (int)a.VectorLength;
        await Refused(() => Upload(client, round, session, m + 1, [(0, new uint[10])], "00"), StatusCode.InvalidArgument, $"vector length is {m}");
        await Refused(() => Upload(client, round, session, m, [(5, new uint[10])], new string('0', 64)), StatusCode.InvalidArgument, "chunk at offset 5");
        await Refused(() => Upload(client, round, session, m, [(0, new uint[AggregationService.MaxChunkWords + 1])], new string('0', 64)), StatusCode.ResourceExhausted, "exceeds the limit");
        await Refused(() => Upload(client, round, session, m, [(0, new uint[m])], new string('0', 64)), StatusCode.DataLoss, "SHA-256");
        await Refused(() => Upload(client, round, session, m, [(0, new uint[m - 1])], new string('0', 64)), StatusCode.InvalidArgument, $"has {m - 1} words");

        // Now advertise honestly (the round must not wait for site-x at this stage).
        Ack ack = await client.AdvertiseKeysAsync(Ad(round, session, good.EncryptionPublicKey, good.MaskingPublicKey, good.Signature, good.SelfMaskCommitment), Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        Assert.False(ack.Duplicate);
        AdvertisementSet ads = await client.AwaitAdvertisementsAsync(new StageQuery { Header = H(round, session, "site-x", Stage.AdvertiseKeys) }, Deadline(30)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(40));
        IReadOnlyList<EncryptedShare> shares = protocol.ShareKeys([.. ads.Advertisements.Select(x => new KeyAdvertisement((int)x.Sender, x.EncryptionPublicKey.ToByteArray(), x.MaskingPublicKey.ToByteArray(), x.Signature.ToByteArray(), x.SelfMaskCommitment.ToByteArray()))]);

        // Share attacks: wrong ciphertext size, a share addressed to a non-neighbour, a share claiming another sender.
        await Refused(() => client.ShareKeysAsync(Shares(round, session, shares, s => s.Recipient == shares[0].Recipient ? s with { Ciphertext = s.Ciphertext[..^1] } : s), Deadline()).ResponseAsync, StatusCode.InvalidArgument, "expected");
        await Refused(() => client.ShareKeysAsync(Shares(round, session, shares, s => s.Recipient == shares[0].Recipient ? s with { Recipient = 99 } : s), Deadline()).ResponseAsync, StatusCode.InvalidArgument, "99");
        await Refused(() => client.ShareKeysAsync(Shares(round, session, shares, s => s with { Sender = self == 1 ? 2 : 1 }), Deadline()).ResponseAsync, StatusCode.InvalidArgument, "claiming to come from");

        // site-x now goes silent; the honest sites must still complete the round.
        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(90));
        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        RoundRecord completed = Assert.Single(rounds, r => r.Status == RoundStatus.Completed);
        Assert.Equal(Honest, completed.Participants.Order());
        Assert.Equal(3, fed.Reports.Count(r => r.Completed));

        // Nothing stored is damaged; every refusal was audited; every log verifies.
        AuditVerification verification = AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));
        Assert.True(verification.Ok, verification.FirstProblem);
        Assert.NotNull(fed.State.Store.LoadModel(1));
        foreach (string site in Honest)
        {
            AuditVerification agent = AuditVerifier.Verify(Agent.AgentState.AuditDirectory(fed.AgentDataDirectory(site)));
            Assert.True(agent.Ok, agent.FirstProblem);
        }

        string auditText = string.Join("\n", Directory.EnumerateFiles(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), "*.jsonl").Select(File.ReadAllText));
        Assert.Contains("claiming to come from", auditText, StringComparison.Ordinal);
        Assert.Contains("invalid X25519 public key", auditText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_RevokedSiteCertificate_PermissionDeniedNamingRevocation()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-b", "site-r"], null, "site-r");
        await fed.StartAggregatorAsync();
        using PartyKit kit = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-r"]);
        using GrpcChannel channel = fed.RawChannel(kit.TlsCertificate);
        var client = new Aggregation.AggregationClient(channel);

        RpcException ex = await Assert.ThrowsAsync<RpcException>(() => client.AwaitRoundAsync(new AwaitRoundRequest { Header = H(0, "", "site-r", Stage.Announce) }, Deadline()).ResponseAsync.WaitAsync(CallTimeout));

        Assert.Equal(StatusCode.PermissionDenied, ex.StatusCode);
        Assert.Contains("revoked", ex.Status.Detail, StringComparison.OrdinalIgnoreCase);
        Assert.True(AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory)).Ok);
    }

    [Fact]
    public async Task ShareKeys_MillionsOfControlCharactersInFederationOrSender_RefusedByLengthAuditLineBounded()
    {
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-x"]);
        await fed.StartAggregatorAsync();
        using PartyKit kit = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using GrpcChannel channel = fed.RawChannel(kit.TlsCertificate);
        var client = new Aggregation.AggregationClient(channel);
        string hostile = new('\u0001', 4_000_000);
        string auditFile = Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName);

        // Each escaped control character would take 6 bytes of audit log: 24 MB per call. ShareKeys, whose requests carry
        // bulk data (GetStatus and the other small requests are refused over 64 KiB before they are parsed).
        var federation = H(0, "", "site-x");
        federation.FederationId = hostile;
        long before = new FileInfo(auditFile).Length;
        await Refused(() => client.ShareKeysAsync(new ShareKeysRequest { Header = federation }, Deadline(30)).ResponseAsync, StatusCode.InvalidArgument,
            $"the header's federation_id has 4000000 characters; the limit is {AuditText.IdentifierChars}");
        Assert.InRange(new FileInfo(auditFile).Length - before, 1, 4095);

        before = new FileInfo(auditFile).Length;
        await Refused(() => client.ShareKeysAsync(new ShareKeysRequest { Header = H(0, "", hostile) }, Deadline(30)).ResponseAsync, StatusCode.InvalidArgument,
            $"the header's sender has 4000000 characters; the limit is {AuditText.IdentifierChars}");
        Assert.InRange(new FileInfo(auditFile).Length - before, 1, 4095);

        // Within the length limit, control characters are replaced, not escaped.
        var shortHostile = H(0, "", "site-x");
        shortHostile.FederationId = new string('\u0001', AuditText.IdentifierChars);
        before = new FileInfo(auditFile).Length;
        await Refused(() => client.GetStatusAsync(new StatusRequest { Header = shortHostile }, Deadline()).ResponseAsync, StatusCode.InvalidArgument, "the message is for federation");
        Assert.InRange(new FileInfo(auditFile).Length - before, 1, 1023);
        Assert.DoesNotContain("\\u0001", File.ReadAllText(auditFile), StringComparison.Ordinal);

        Assert.Equal(TestFederation.FederationName, (await client.GetStatusAsync(new StatusRequest { Header = H(0, "", "site-x") }, Deadline()).ResponseAsync.WaitAsync(CallTimeout)).FederationId);
        AuditVerification verification = AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));
        Assert.True(verification.Ok, verification.FirstProblem);
    }

    [Fact]
    public async Task GetStatus_ThousandRefusalsOfOneSite_BoundedAuditLinesSummaryCountsThemOtherSiteAudited()
    {
        const int Calls = 1_000;
        await using TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), ["site-a", "site-x"]);
        await fed.StartAggregatorAsync();
        using PartyKit kit = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-x"]);
        using GrpcChannel channel = fed.RawChannel(kit.TlsCertificate);
        var client = new Aggregation.AggregationClient(channel);
        using PartyKit kitA = PartyKit.Load(fed.Provisioned.SiteKitDirectories["site-a"]);
        using GrpcChannel channelA = fed.RawChannel(kitA.TlsCertificate);
        var clientA = new Aggregation.AggregationClient(channelA);
        var wrong = H(0, "", "site-x");
        wrong.FederationId = "evil-federation";

        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < Calls; i += 10)
        {
            await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => Refused(() => client.GetStatusAsync(new StatusRequest { Header = wrong }, Deadline()).ResponseAsync, StatusCode.InvalidArgument, "evil-federation")));
        }

        TimeSpan elapsed = clock.Elapsed;
        // site-x's bucket is empty; site-a's is its own.
        var wrongA = H(0, "", "site-a");
        wrongA.FederationId = "evil-federation";
        for (int i = 0; i < 3; i++)
        {
            await Refused(() => clientA.GetStatusAsync(new StatusRequest { Header = wrongA }, Deadline()).ResponseAsync, StatusCode.InvalidArgument, "evil-federation");
        }

        await fed.StopAggregatorAsync(); // writes the pending count

        List<JsonElement> lines = [.. File.ReadAllLines(Path.Combine(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), AuditLog.LogFileName)).Select(l =>
        {
            using JsonDocument doc = JsonDocument.Parse(l);
            return doc.RootElement.Clone();
        })];
        List<JsonElement> refusalsX = [.. lines.Where(l => Type(l) == AuditEvents.Refusal && Field(l, "site") == "site-x")];
        List<JsonElement> summariesX = [.. lines.Where(l => Type(l) == AuditEvents.RefusalsSuppressed && Field(l, "site") == "site-x")];
        int bound = RefusalAudit.DefaultBurst + (2 * (int)(elapsed / RefusalAudit.DefaultRefillInterval)) + 2;
        Assert.True(refusalsX.Count + summariesX.Count <= bound, $"{refusalsX.Count} refusal and {summariesX.Count} summary lines for site-x in {elapsed}; at most {bound} expected");
        Assert.NotEmpty(summariesX);
        long suppressed = summariesX.Sum(s => s.GetProperty("fields").GetProperty("suppressed").GetInt64());
        Assert.Equal(Calls, refusalsX.Count + suppressed);
        Assert.Equal(suppressed, summariesX.Sum(s => s.GetProperty("fields").GetProperty("categories").GetProperty("wrong_federation").GetInt64()));
        Assert.Equal(3, lines.Count(l => Type(l) == AuditEvents.Refusal && Field(l, "site") == "site-a"));
        AuditVerification verification = AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));
        Assert.True(verification.Ok, verification.FirstProblem);

        static string Type(JsonElement line) => line.GetProperty("type").GetString()!;
        static string? Field(JsonElement line, string name) => line.GetProperty("fields").TryGetProperty(name, out JsonElement v) ? v.GetString() : null;
    }

    private static Header H(ulong round, string session, string sender, Stage stage = Stage.Unspecified) => RawClient.Header(round, session, sender, stage);

    private static CallOptions Deadline(int seconds = 10) => RawClient.Deadline(seconds);

    private static AdvertiseKeysRequest Ad(ulong round, string session, byte[] encryption, byte[] masking, byte[] signature, byte[] commitment) => new()
    {
        Header = H(round, session, "site-x", Stage.AdvertiseKeys),
        EncryptionPublicKey = ByteString.CopyFrom(encryption),
        MaskingPublicKey = ByteString.CopyFrom(masking),
        Signature = ByteString.CopyFrom(signature),
        SelfMaskCommitment = ByteString.CopyFrom(commitment),
    };

    private static ShareKeysRequest Shares(ulong round, string session, IReadOnlyList<EncryptedShare> shares, Func<EncryptedShare, EncryptedShare> tamper)
    {
        var request = new ShareKeysRequest { Header = H(round, session, "site-x", Stage.ShareKeys) };
        request.Shares.AddRange(shares.Select(tamper).Select(s => new EncryptedShareMessage { Sender = (uint)s.Sender, Recipient = (uint)s.Recipient, Ciphertext = ByteString.CopyFrom(s.Ciphertext) }));
        return request;
    }

    private static async Task Upload(Aggregation.AggregationClient client, ulong round, string session, int totalWords, (int Offset, uint[] Words)[] chunks, string sha)
    {
        using AsyncClientStreamingCall<MaskedInputChunk, Ack> call = client.UploadMaskedInput(Deadline());
        try
        {
            for (int i = 0; i < chunks.Length; i++)
            {
                var chunk = new MaskedInputChunk { Offset = (uint)chunks[i].Offset };
                chunk.Words.AddRange(chunks[i].Words);
                if (i == 0)
                {
                    chunk.Header = H(round, session, "site-x", Stage.MaskedInput);
                    chunk.TotalWords = (uint)totalWords;
                    chunk.Sha256 = sha;
                }

                await call.RequestStream.WriteAsync(chunk);
            }

            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            // the server may refuse before the stream is complete; the status is in ResponseAsync
        }
        catch (InvalidOperationException)
        {
        }

        await call.ResponseAsync.WaitAsync(CallTimeout);
    }

    private static async Task Refused(Func<Task> call, StatusCode code, string fragment)
    {
        RpcException ex = await Assert.ThrowsAsync<RpcException>(() => call().WaitAsync(CallTimeout));
        Assert.True(ex.StatusCode == code, $"expected {code}, got {ex.StatusCode}: {ex.Status.Detail}");
        Assert.Contains(fragment, ex.Status.Detail, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(ex.Status.Detail));
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
