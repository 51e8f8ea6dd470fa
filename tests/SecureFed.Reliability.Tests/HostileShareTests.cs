using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Crypto;
using SecureFed.Federation;
using SecureFed.Protocol;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Issue 13 rows 1–5: one hostile site (a raw gRPC client with a valid certificate, index 1 so its shares are among the
/// first t) lies with its Shamir shares or its weight. The aggregator must keep serving: the lie is refused where it
/// enters, or corrected and the liar named, or the round aborts with a reason; never a wrong model or a stopped host.
/// The next round completes with the honest sites.
/// </summary>
public sealed class HostileShareTests : IDisposable
{
    private const string Hostile = "site-0"; // sorts first: protocol index 1
    private const uint HostileWeight = 50;
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(15);
    private static readonly string[] Honest = ["site-a", "site-b", "site-c"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-hostile-shares-").FullName;

    [Fact]
    public async Task Unmask_BShareValuesOutsideTheField_InvalidArgumentAndRoundCompletesWithoutThem()
    {
        // site-0's refused response leaves the unmasking stage open until its deadline.
        await using TestFederation fed = await StartAsync(rounds: 2, waitedOut: ProtocolStage.Unmasking);
        RpcException? refused = null;
        await RunHostileRoundAsync(fed, async (client, message) =>
        {
            foreach (RevealedShareMessage share in message.SelfMaskShares)
            {
                share.Value = ByteString.CopyFrom(Enumerable.Repeat((byte)0xff, ProtocolLabels.ShareValueSize).ToArray());
            }

            refused = await Assert.ThrowsAsync<RpcException>(() => client.UnmaskAsync(message, Deadline()).ResponseAsync.WaitAsync(CallTimeout));
        });

        Assert.NotNull(refused);
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.Contains("element 0 is 18446744073709551615, not a field element", refused.Status.Detail, StringComparison.Ordinal);
        await AssertRoundOneCompletedExactlyThenRoundTwoAsync(fed);
        Assert.Contains("not a field element", AuditText(fed), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShareKeys_EncryptedShareValuesOutsideTheField_HonestSitesRefuseBeforeRevealingAndNextRoundCompletes()
    {
        await using TestFederation fed = await StartAsync(rounds: 1);
        using PartyKit kit = PartyKit.Load(fed.Provisioned.SiteKitDirectories[Hostile]);
        using GrpcChannel channel = fed.RawChannel(kit.TlsCertificate);
        var client = new Aggregation.AggregationClient(channel);
        (RoundAnnouncement a, RoundParameters p) = await JoinAsync(fed, client);
        ulong round = a.Header.Round;
        int self = p.Find(Hostile)!.Index;

        // The hostile site advertises well-formed keys and a commitment, then seals shares whose plaintext values are all 0xff.
        using X25519KeyPair encryption = X25519KeyPair.Generate();
        using X25519KeyPair masking = X25519KeyPair.Generate();
        byte[] commitment = ProtocolLabels.SelfMaskCommitment(p, self, RandomNumberGenerator.GetBytes(32));
        byte[] signature = kit.IdentityKey.Sign(ProtocolLabels.AdvertisementTranscript(p, self, encryption.PublicKey, masking.PublicKey, commitment));
        await client.AdvertiseKeysAsync(new AdvertiseKeysRequest
        {
            Header = H(round, p.SessionId, Stage.AdvertiseKeys),
            EncryptionPublicKey = ByteString.CopyFrom(encryption.PublicKey),
            MaskingPublicKey = ByteString.CopyFrom(masking.PublicKey),
            Signature = ByteString.CopyFrom(signature),
            SelfMaskCommitment = ByteString.CopyFrom(commitment),
        }, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        AdvertisementSet ads = await client.AwaitAdvertisementsAsync(new StageQuery { Header = H(round, p.SessionId, Stage.AdvertiseKeys) }, Deadline(40)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(50));
        var shares = new ShareKeysRequest { Header = H(round, p.SessionId, Stage.ShareKeys) };
        foreach (Advertisement peer in ads.Advertisements.Where(x => x.Sender != (uint)self))
        {
            int v = (int)peer.Sender;
            byte[] key = HkdfSha256.DeriveKey(encryption.DeriveSharedSecret(peer.EncryptionPublicKey.Span), default, ProtocolLabels.ShareKeyInfo(p, self, v), 32);
            byte[] plain = new byte[ProtocolLabels.SharePlaintextSize];
            BinaryPrimitives.WriteUInt32BigEndian(plain, (uint)self);
            BinaryPrimitives.WriteUInt32BigEndian(plain.AsSpan(4), (uint)v);
            plain.AsSpan(8).Fill(0xff);
            shares.Shares.Add(new EncryptedShareMessage
            {
                Sender = (uint)self,
                Recipient = (uint)v,
                Ciphertext = ByteString.CopyFrom(ShareCipher.Seal(key, plain, ProtocolLabels.ShareAssociatedData(p, self, v))),
            });
        }

        Ack ack = await client.ShareKeysAsync(shares, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        Assert.False(ack.Duplicate);
        // site-0 now goes silent. The honest sites refuse the round at MaskInput (they never reveal those values), so
        // round 1 aborts for want of masked inputs; round 2 runs without site-0 and completes.

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(120));
        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.Equal(RoundStatus.Aborted, rounds[0].Status);
        RoundRecord completed = Assert.Single(rounds, r => r.Status == RoundStatus.Completed);
        Assert.Equal(Honest, completed.Participants.Order());
        Assert.Null(fed.Coordinator.Failure);
        // Each honest site refused the share itself, or (when the others' refusals had already ended the round before it
        // got to its masked input) found round 1 over; none took part, and at least one named the out-of-field value.
        AgentRoundReport[] round1 = [.. fed.Reports.Where(r => r.Round == 1)];
        Assert.All(round1, r => Assert.False(r.Completed, $"{r.Site} completed round 1"));
        Assert.All(round1, r => Assert.True(
            r.Outcome.Contains("not a field element", StringComparison.Ordinal) || r.Outcome.Contains("round 1 has already ended", StringComparison.Ordinal),
            $"{r.Site}: {r.Outcome}"));
        Assert.Contains(round1, r => r.Outcome.Contains("not a field element", StringComparison.Ordinal));
        AssertLogsVerify(fed);
    }

    [Fact]
    public async Task Unmask_RandomInFieldBShares_CommitmentRebuildsTheRightSeedsNamesTheLiarRoundExact()
    {
        await using TestFederation fed = await StartAsync(rounds: 2);
        await RunHostileRoundAsync(fed, async (client, message) =>
        {
            foreach (RevealedShareMessage share in message.SelfMaskShares)
            {
                byte[] value = new byte[ProtocolLabels.ShareValueSize];
                for (int c = 0; c < value.Length; c += 8)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(c), (ulong)Random.Shared.NextInt64(0, (long)Shamir.Prime));
                }

                share.Value = ByteString.CopyFrom(value);
            }

            Ack ack = await client.UnmaskAsync(message, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
            Assert.False(ack.Duplicate);
        });

        await AssertRoundOneCompletedExactlyThenRoundTwoAsync(fed, hostileUnmaskUsed: true);
        AssertLiarNamed(fed);
    }

    [Fact]
    public async Task Unmask_EveryBShareShiftedByOne_SeedsCheckedAgainstCommitmentSumExactLiarNamed()
    {
        await using TestFederation fed = await StartAsync(rounds: 2);
        await RunHostileRoundAsync(fed, async (client, message) =>
        {
            foreach (RevealedShareMessage share in message.SelfMaskShares)
            {
                byte[] value = share.Value.ToByteArray();
                for (int c = 0; c < value.Length; c += 8)
                {
                    ulong y = BinaryPrimitives.ReadUInt64LittleEndian(value.AsSpan(c));
                    BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(c), (y + 1) % Shamir.Prime);
                }

                share.Value = ByteString.CopyFrom(value);
            }

            await client.UnmaskAsync(message, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        });

        // Before the commitment, the first t shares by responder order were used: the seeds were off by one, the round
        // completed with a garbage sum (decoded weight in the hundreds of millions instead of 650).
        await AssertRoundOneCompletedExactlyThenRoundTwoAsync(fed, hostileUnmaskUsed: true);
        AssertLiarNamed(fed);
    }

    [Fact]
    public async Task MaskedInput_WeightSlotAboveCap_RoundAbortedWithBoundNoModelUnmaskedSumChargedNextRoundCompletes()
    {
        await using TestFederation fed = await StartAsync(rounds: 1);
        uint weight = int.MaxValue - 600; // W = 2^31 − 1 with the honest 100 + 200 + 300
        await RunHostileRoundAsync(fed, async (client, message) => await client.UnmaskAsync(message, Deadline()).ResponseAsync.WaitAsync(CallTimeout), weight);

        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(120));
        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.Equal(RoundStatus.Aborted, rounds[0].Status);
        Assert.Contains("W = 2147483647 exceeds 4 contributors × weight cap 1000 = 4000", rounds[0].AbortReason, StringComparison.Ordinal);
        RoundRecord completed = Assert.Single(rounds, r => r.Status == RoundStatus.Completed);
        Assert.Equal(Honest, completed.Participants.Order());
        Assert.Equal([2L], AuditFields(fed, AuditEvents.AggregateProduced).Select(f => f.GetProperty("round").GetInt64()));
        // The aborted attempt's sum was unmasked before W was checked: its site-level cost is charged, noted as such.
        Assert.Equal([1L, 2L], AuditFields(fed, AuditEvents.PrivacySpent).Select(f => f.GetProperty("round").GetInt64()));
        Assert.Equal("sum unmasked, round aborted", AuditFields(fed, AuditEvents.PrivacySpent).First().GetProperty("note").GetString());

        // Each honest agent charged its own site-level ledger for both attempts, before it revealed its shares: the
        // aggregator could unmask the sum of the first whatever it reported afterwards.
        foreach (string site in Honest)
        {
            Assert.Equal([1L, 2L], AuditFields(fed, AuditEvents.PrivacyLedger, site)
                .Where(f => f.GetProperty("guarantee").GetString() == "site")
                .Select(f => f.GetProperty("round").GetInt64()));
        }
        Assert.Equal(600, AuditFields(fed, AuditEvents.AggregateProduced).Single().GetProperty("total_weight").GetInt64());
        AssertLogsVerify(fed);
    }

    [Fact]
    public void IsOwnStorageFault_StorageErrorsStopTheCoordinatorEverythingElseAbortsOnlyTheRound()
    {
        Assert.True(RoundCoordinator.IsOwnStorageFault(new IOException("No space left on device")));
        Assert.True(RoundCoordinator.IsOwnStorageFault(new UnauthorizedAccessException()));
        Assert.False(RoundCoordinator.IsOwnStorageFault(new ArgumentException("Share value 0 holds 18446744073709551615")));
        Assert.False(RoundCoordinator.IsOwnStorageFault(new CryptographicException("non-zero padding")));
        Assert.False(RoundCoordinator.IsOwnStorageFault(new InvalidOperationException("a bug in one round")));
    }

    /// <param name="waitedOut">The one stage of round 1 whose deadline the test waits out, given 3 s; null when none is.</param>
    private async Task<TestFederation> StartAsync(int rounds, ProtocolStage? waitedOut = null)
    {
        TestFederation fed = TestFederation.Provision(Path.Combine(_dir, "fed"), [Hostile, .. Honest], new Dictionary<string, string>
        {
            ["Rounds"] = rounds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MinSites"] = "3",
            ["TrainingTimeoutSeconds"] = "10",
            ["JoinGraceSeconds"] = "2",
            // Every stage but the one a test waits out gets 60 s, so a CI machine starved by the test projects running
            // beside this one cannot outrun a deadline and abort an extra attempt (a round 2 attempt aborted so once in CI).
            ["StageTimeoutSeconds"] = DropoutDeadline.LongSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        await fed.StartAggregatorAsync();
        if (waitedOut is ProtocolStage stage)
        {
            DropoutDeadline.ShortOnlyAt(fed.Aggregator!.Services, 1, stage, 3);
        }

        return fed;
    }

    /// <summary>
    /// site-0 joins round 1 first (so the cohort is all four), the honest agents start, and site-0 then follows the
    /// protocol honestly with input weight <paramref name="weight"/> until it answers the unmasking request through
    /// <paramref name="unmask"/>, which may tamper with the message. It does not join round 2.
    /// </summary>
    private static async Task RunHostileRoundAsync(TestFederation fed, Func<Aggregation.AggregationClient, UnmaskResponseMessage, Task> unmask, uint weight = HostileWeight)
    {
        using PartyKit kit = PartyKit.Load(fed.Provisioned.SiteKitDirectories[Hostile]);
        using GrpcChannel channel = fed.RawChannel(kit.TlsCertificate);
        var client = new Aggregation.AggregationClient(channel);
        (RoundAnnouncement a, RoundParameters p) = await JoinAsync(fed, client);
        ulong round = a.Header.Round;
        using var protocol = new ClientRound(p, Hostile, kit.IdentityKey);
        KeyAdvertisement ad = protocol.AdvertiseKeys();
        await client.AdvertiseKeysAsync(new AdvertiseKeysRequest
        {
            Header = H(round, p.SessionId, Stage.AdvertiseKeys),
            EncryptionPublicKey = ByteString.CopyFrom(ad.EncryptionPublicKey),
            MaskingPublicKey = ByteString.CopyFrom(ad.MaskingPublicKey),
            Signature = ByteString.CopyFrom(ad.Signature),
            SelfMaskCommitment = ByteString.CopyFrom(ad.SelfMaskCommitment),
        }, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        AdvertisementSet ads = await client.AwaitAdvertisementsAsync(new StageQuery { Header = H(round, p.SessionId, Stage.AdvertiseKeys) }, Deadline(40)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(50));
        IReadOnlyList<EncryptedShare> shares = protocol.ShareKeys([.. ads.Advertisements.Select(x => new KeyAdvertisement((int)x.Sender, x.EncryptionPublicKey.ToByteArray(), x.MaskingPublicKey.ToByteArray(), x.Signature.ToByteArray(), x.SelfMaskCommitment.ToByteArray()))]);
        var shareRequest = new ShareKeysRequest { Header = H(round, p.SessionId, Stage.ShareKeys) };
        shareRequest.Shares.AddRange(shares.Select(s => new EncryptedShareMessage { Sender = (uint)s.Sender, Recipient = (uint)s.Recipient, Ciphertext = ByteString.CopyFrom(s.Ciphertext) }));
        await client.ShareKeysAsync(shareRequest, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        ShareSet forMe = await client.AwaitSharesAsync(new StageQuery { Header = H(round, p.SessionId, Stage.ShareKeys) }, Deadline(20)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(30));

        uint[] input = new uint[p.VectorLength];
        input[TestFederation.Parameters] = weight; // a zero update and this weight in the weight slot (word d; evaluation slots follow)
        uint[] masked = new uint[p.VectorLength];
        protocol.MaskInput([.. forMe.Shares.Select(s => new EncryptedShare((int)s.Sender, (int)s.Recipient, s.Ciphertext.ToByteArray()))], input, masked);
        using (AsyncClientStreamingCall<MaskedInputChunk, Ack> call = client.UploadMaskedInput(Deadline()))
        {
            var chunk = new MaskedInputChunk { Header = H(round, p.SessionId, Stage.MaskedInput), Offset = 0, TotalWords = (uint)masked.Length, Sha256 = Convert.ToHexStringLower(WireEncoding.VectorDigest(masked)) };
            chunk.Words.AddRange(masked);
            await call.RequestStream.WriteAsync(chunk).WaitAsync(CallTimeout);
            await call.RequestStream.CompleteAsync().WaitAsync(CallTimeout);
            await call.ResponseAsync.WaitAsync(CallTimeout);
        }

        SurvivorSet survivors = await client.AwaitSurvivorsAsync(new StageQuery { Header = H(round, p.SessionId, Stage.MaskedInput) }, Deadline(20)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(30));
        ConsistencySignature signature = protocol.SignSurvivors([.. survivors.Survivors.Select(x => (int)x)]);
        await client.SignSurvivorsAsync(new ConsistencyRequest { Header = H(round, p.SessionId, Stage.Consistency), Signature = ByteString.CopyFrom(signature.Signature) }, Deadline()).ResponseAsync.WaitAsync(CallTimeout);
        UnmaskRequestMessage request = await client.AwaitUnmaskRequestAsync(new StageQuery { Header = H(round, p.SessionId, Stage.Consistency) }, Deadline(20)).ResponseAsync.WaitAsync(TimeSpan.FromSeconds(30));
        UnmaskResponse response = protocol.Unmask(new UnmaskRequest(
            [.. request.Survivors.Select(x => (int)x)],
            [.. request.Dropped.Select(x => (int)x)],
            [.. request.Signatures.Select(s => new ConsistencySignature((int)s.Sender, s.Signature.ToByteArray()))]));
        var message = new UnmaskResponseMessage { Header = H(round, p.SessionId, Stage.Unmasking) };
        message.SelfMaskShares.AddRange(response.SelfMaskShares.Select(s => new RevealedShareMessage { Owner = (uint)s.Owner, Value = ByteString.CopyFrom(s.Value) }));
        message.MaskingKeyShares.AddRange(response.MaskingKeyShares.Select(s => new RevealedShareMessage { Owner = (uint)s.Owner, Value = ByteString.CopyFrom(s.Value) }));
        await unmask(client, message);
    }

    private static async Task<(RoundAnnouncement, RoundParameters)> JoinAsync(TestFederation fed, Aggregation.AggregationClient client)
    {
        Task<RoundAnnouncement> awaiting = client.AwaitRoundAsync(new AwaitRoundRequest { Header = H(0, "", Stage.Announce) }, Deadline(90)).ResponseAsync;
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            while (!fed.Coordinator.WaitingSites.Contains(Hostile))
            {
                await Task.Delay(20, wait.Token);
            }
        }

        foreach ((string site, int i) in Honest.Select((s, i) => (s, i)))
        {
            fed.StartAgent(site, 100 * (i + 1));
        }

        RoundAnnouncement a = await awaiting.WaitAsync(TimeSpan.FromSeconds(100));
        Assert.False(a.Finished);
        Assert.Equal((uint)ProtocolLabels.ProtocolVersion, a.ProtocolVersion);
        Assert.Equal(4, a.Participants.Count);
        RoundParameters p = TestFederation.RoundParametersOf(a);
        Assert.Equal(1, p.Find(Hostile)!.Index);
        return (a, p);
    }

    private static async Task AssertRoundOneCompletedExactlyThenRoundTwoAsync(TestFederation fed, bool hostileUnmaskUsed = false)
    {
        await fed.WaitFinishedAsync(TimeSpan.FromSeconds(120));
        Assert.Null(fed.Coordinator.Failure);
        IReadOnlyList<RoundRecord> rounds = fed.State.Store.ListRounds();
        Assert.True(rounds.Select(r => r.Status).SequenceEqual([RoundStatus.Completed, RoundStatus.Completed]),
            "round attempts: " + string.Join("; ", rounds.Select(r => $"{r.Round} {r.Status} {r.AbortReason}")));
        Assert.Equal([Hostile, .. Honest], rounds[0].Participants.Order());
        Assert.Equal(Honest, rounds[1].Participants.Order());
        // The exact weighted sum: 100 + 200 + 300 + site-0's 50, then the three honest sites alone.
        Assert.Equal([650L, 600L], AuditFields(fed, AuditEvents.AggregateProduced).Select(f => f.GetProperty("total_weight").GetInt64()));
        Assert.Equal(hostileUnmaskUsed, AuditFields(fed, AuditEvents.UnmaskResponse).Any(f => f.GetProperty("round").GetInt64() == 1 && f.GetProperty("site").GetString() == Hostile));
        AssertLogsVerify(fed);
    }

    private static void AssertLiarNamed(TestFederation fed)
    {
        JsonElement named = Assert.Single(AuditFields(fed, AuditEvents.Refusal), f => f.GetProperty("round").GetInt64() == 1);
        Assert.Equal(Hostile, named.GetProperty("site").GetString());
        // The aggregator cannot tell a lying responder from a dealer that dealt it a wrong share: it names both.
        Assert.Contains("off the polynomial of the other revealed shares", named.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Contains($"'{Hostile}' or the dealer", named.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Empty(fed.Coordinator.ExcludedSites);
    }

    private static void AssertLogsVerify(TestFederation fed)
    {
        AuditVerification verification = AuditVerifier.Verify(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory));
        Assert.True(verification.Ok, verification.FirstProblem);
        foreach (string site in Honest)
        {
            AuditVerification agent = AuditVerifier.Verify(Agent.AgentState.AuditDirectory(fed.AgentDataDirectory(site)));
            Assert.True(agent.Ok, agent.FirstProblem);
        }
    }

    private static string AuditText(TestFederation fed)
        => string.Join("\n", Directory.EnumerateFiles(AggregatorState.AuditDirectory(fed.AggregatorDataDirectory), "*.jsonl").Select(File.ReadAllText));

    private static List<JsonElement> AuditFields(TestFederation fed, string type, string? agent = null)
    {
        var result = new List<JsonElement>();
        string directory = agent is null ? AggregatorState.AuditDirectory(fed.AggregatorDataDirectory) : AgentState.AuditDirectory(fed.AgentDataDirectory(agent));
        foreach (string line in File.ReadAllLines(Path.Combine(directory, AuditLog.LogFileName)))
        {
            using JsonDocument doc = JsonDocument.Parse(line);
            if (doc.RootElement.GetProperty("type").GetString() == type)
            {
                result.Add(doc.RootElement.GetProperty("fields").Clone());
            }
        }

        return result;
    }

    private static Header H(ulong round, string session, Stage stage) => RawClient.Header(round, session, Hostile, stage);

    private static CallOptions Deadline(int seconds = 10) => RawClient.Deadline(seconds);

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
