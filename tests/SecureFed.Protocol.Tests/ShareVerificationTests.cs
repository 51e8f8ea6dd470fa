using System.Buffers.Binary;
using System.Security.Cryptography;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// Protocol version 2: rebuilt self-mask seeds are checked against the commitment in the signed advertisement, wrong
/// revealed shares are corrected or left out when enough others arrive (and their senders named), out-of-field share
/// values are refused where they enter, and an impossible total weight is caught.
/// </summary>
public sealed class ShareVerificationTests
{
    /// <summary>
    /// All n sites but <paramref name="dropped"/> (0: none) upload, survive and sign; returns the survivors and the
    /// unmasking request.
    /// </summary>
    private static (ClientRound[] Clients, ServerRound Server, UnmaskRequest Request) ToUnmasking(ProtocolFixture fx, int dropped = 0)
    {
        var (all, server) = fx.ThroughShareKeys();
        ClientRound[] clients = [.. all.Where(c => c.Index != dropped)];
        var y = new uint[fx.Parameters.VectorLength];
        foreach (var c in clients)
        {
            c.MaskInput(server.SharesFor(c.Index), fx.Inputs[c.Index - 1], y);
            server.AcceptMaskedInput(c.Index, y);
        }

        var survivors = server.CloseMaskedInput();
        foreach (var c in clients)
        {
            server.AcceptConsistencySignature(c.SignSurvivors(survivors));
        }

        return (clients, server, server.CloseConsistency());
    }

    private static void Shift(byte[] value)
    {
        // A well-formed lie: every element moved by one inside the field.
        for (int c = 0; c < value.Length; c += 8)
        {
            ulong y = BinaryPrimitives.ReadUInt64LittleEndian(value.AsSpan(c));
            BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(c), (y + 1) % Shamir.Prime);
        }
    }

    [Fact]
    public void Finish_OneResponderShiftsEveryBShare_CommitmentPicksTheHonestSharesAndNamesTheLiar()
    {
        // 4 sites, t = 3: 4 shares per seed detect one lie but Berlekamp–Welch cannot correct it (n − t = 1); the
        // commitment in each owner's advertisement decides which 3 shares are right.
        using var fx = new ProtocolFixture(4, 11, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index == 1)
            {
                foreach (RevealedShare share in response.SelfMaskShares)
                {
                    Shift(share.Value);
                }
            }

            server.AcceptUnmaskResponse(response);
        }

        AggregationResult result = server.Finish();

        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4]), result.Sum);
        RejectedShare named = Assert.Single(result.RejectedShares);
        Assert.Equal((1, RevealedShareKind.SelfMaskSeed), (named.Responder, named.Kind));
    }

    /// <summary>
    /// Hostile-site review, session 55: t answers of which one holds every share but wrong values would not rebuild the
    /// seeds, and <see cref="ServerRound.UnmaskingShortfall"/> says so for the member still to answer, without changing
    /// the round (the coordinator then waits for it instead of cutting it); with its answer there is nothing to report and
    /// Finish outvotes the wrong shares and names their sender.
    /// </summary>
    [Fact]
    public void UnmaskingShortfall_ThresholdAnswersOneWithWrongValues_ReportedRoundUnchangedLastAnswerLetsFinishCorrectIt()
    {
        using var fx = new ProtocolFixture(4, 21, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        UnmaskResponse[] responses = [.. clients.Select(c => c.Unmask(request))];
        foreach (RevealedShare share in responses[0].SelfMaskShares)
        {
            Shift(share.Value);
        }

        Assert.Equal("only 0 sites answered the unmasking request; the threshold is 3", server.UnmaskingShortfall(4));
        for (int i = 0; i < 3; i++)
        {
            server.AcceptUnmaskResponse(responses[i]);
        }

        string? shortfall = server.UnmaskingShortfall(4);

        Assert.NotNull(shortfall);
        Assert.Contains("the self-mask seed of 'site-001' cannot be rebuilt from the 3 shares revealed by 'site-001', 'site-002', 'site-003'", shortfall, StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Unmasking, server.Stage);
        Assert.Null(server.AbortReason);
        Assert.Equal(shortfall, server.UnmaskingShortfall(4)); // asking again changes nothing either

        server.AcceptUnmaskResponse(responses[3]);
        Assert.Null(server.UnmaskingShortfall(4));
        AggregationResult result = server.Finish();

        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4]), result.Sum);
        Assert.Equal([1], result.RejectedShares.Select(r => r.Responder).Distinct());
        Assert.Null(server.UnmaskingShortfall(4)); // past Unmasking: nothing to wait for
    }

    /// <summary>
    /// Diff review of d7178c7: the only secret the answers in hand fail to rebuild is the awaited member's own (here every
    /// responder's share of site 4's b is off: what a site that dealt shares off its commitment and then stays silent
    /// leaves). Waiting for it could not help the others' shares, and a hostile dealer would hold every attempt's stage to
    /// its deadline: nothing is reported, so the coordinator cuts it as before.
    /// </summary>
    [Fact]
    public void UnmaskingShortfall_OnlyTheAwaitedMembersOwnSecretFails_Null()
    {
        using var fx = new ProtocolFixture(4, 24, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        foreach (var c in clients.Where(c => c.Index != 4))
        {
            UnmaskResponse response = c.Unmask(request);
            Shift(response.SelfMaskShares.Single(s => s.Owner == 4).Value);
            server.AcceptUnmaskResponse(response);
        }

        Assert.Null(server.UnmaskingShortfall(4));
        Assert.Contains("the self-mask seed of 'site-004' cannot be rebuilt", server.UnmaskingShortfall(1), StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Unmasking, server.Stage);
        Assert.Throws<RoundAbortedException>(() => server.Finish());
    }

    [Fact]
    public void UnmaskingShortfall_ThresholdHonestAnswersWithADroppedSite_NullAndFinishAgrees()
    {
        using var fx = new ProtocolFixture(4, 22, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx, dropped: 4);
        foreach (var c in clients)
        {
            server.AcceptUnmaskResponse(c.Unmask(request));
        }

        Assert.Null(server.UnmaskingShortfall(3));
        Assert.Equal(fx.ExpectedSum([1, 2, 3]), server.Finish().Sum);
    }

    [Fact]
    public void UnmaskingShortfall_WrongSShareOfADroppedSite_ReportedUntilTheLastAnswerThenFinishCorrectsIt()
    {
        using var fx = new ProtocolFixture(5, 23, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx, dropped: 5);
        UnmaskResponse[] responses = [.. clients.Select(c => c.Unmask(request))];
        Shift(responses[1].MaskingKeyShares.Single(s => s.Owner == 5).Value);
        for (int i = 0; i < 3; i++)
        {
            server.AcceptUnmaskResponse(responses[i]);
        }

        string? shortfall = server.UnmaskingShortfall(4);
        Assert.NotNull(shortfall);
        Assert.Contains("the masking key of 'site-005' cannot be rebuilt", shortfall, StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Unmasking, server.Stage);

        server.AcceptUnmaskResponse(responses[3]);
        Assert.Null(server.UnmaskingShortfall(4));
        AggregationResult result = server.Finish();
        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4]), result.Sum);
        RejectedShare named = Assert.Single(result.RejectedShares);
        Assert.Equal((2, 5, RevealedShareKind.MaskingKey), (named.Responder, named.Owner, named.Kind));
    }

    [Fact]
    public void Finish_SecretCannotBeRebuilt_AbortsTheRoundWithTheReason()
    {
        using var fx = new ProtocolFixture(4, 25, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx, dropped: 4);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index == 2)
            {
                Shift(response.MaskingKeyShares.Single(s => s.Owner == 4).Value);
            }

            server.AcceptUnmaskResponse(response);
        }

        // Every survivor answered (nobody left to wait for): Finish aborts, and only Finish changes the state.
        var ex = Assert.Throws<RoundAbortedException>(() => server.Finish());
        Assert.Contains("the masking key of 'site-004' cannot be rebuilt", ex.Reason, StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Aborted, server.Stage);
        Assert.Equal(ex.Reason, server.AbortReason);
        Assert.Null(server.UnmaskingShortfall(1));
    }

    [Fact]
    public void Finish_TwoLiarsAmongNineResponders_BerlekampWelchCorrectsThemAndNamesBoth()
    {
        // 9 sites, t = 5: 9 shares per seed correct ⌊(9 − 5) / 2⌋ = 2 wrong ones without any search.
        using var fx = new ProtocolFixture(9, 12, vectorLength: 16, threshold: 5);
        var (clients, server, request) = ToUnmasking(fx);
        var rng = new Random(3);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index is 4 or 7)
            {
                foreach (RevealedShare share in response.SelfMaskShares)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(share.Value.AsSpan(8 * rng.Next(5)), (ulong)rng.NextInt64(0, (long)Shamir.Prime));
                }
            }

            server.AcceptUnmaskResponse(response);
        }

        AggregationResult result = server.Finish();

        Assert.Equal(fx.ExpectedSum(Enumerable.Range(1, 9)), result.Sum);
        // Once named, a liar's shares are left out of the later seeds first (one full decoding per liar, not per owner).
        Assert.Equal([4, 7], result.RejectedShares.Select(r => r.Responder).Distinct().Order());
    }

    [Fact]
    public void Finish_WrongSharesNotCorrectable_AbortsWithReasonNamingOwner()
    {
        using var fx = new ProtocolFixture(4, 13, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index <= 2)
            {
                // Independent random lies (two equal shifts at x = 1, 2 would cancel at x = 0 for the subset {1, 2, 3}:
                // the seed would still rebuild and verify, but site 4 would look like the liar; see PROTOCOL.md).
                RandomNumberGenerator.Fill(response.SelfMaskShares.Single(s => s.Owner == 3).Value.AsSpan(0, 7));
            }

            server.AcceptUnmaskResponse(response);
        }

        var ex = Assert.Throws<RoundAbortedException>(() => server.Finish());

        Assert.Contains("the self-mask seed of 'site-003' cannot be rebuilt from the 4 shares", ex.Reason, StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Aborted, server.Stage);
        Assert.Null(ex.AtFault); // two lies among 4 shares, t = 3: a lying dealer cannot be told from lying responders

        // So the owner and every responder are suspects for the coordinator's search by elimination.
        Assert.Equal([1, 2, 3, 4], ex.Suspects);
        Assert.StartsWith("round aborted at Unmasking: parties 1,2,3,4 suspected: the self-mask seed of 'site-003'", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Adds <paramref name="delta"/> to element 0 of a share value (in the field).</summary>
    private static void AddToFirstElement(byte[] value, ulong delta)
    {
        ulong y = BinaryPrimitives.ReadUInt64LittleEndian(value);
        BinaryPrimitives.WriteUInt64LittleEndian(value, (y + delta) % Shamir.Prime);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Finish_DealerSharesAllEncodeAnotherSecret_AbortsNamingTheDealerAtFault(bool oneResponderLiesToo)
    {
        // 5 sites, t = 3. Site 2 dealt every holder (itself included) a b-share of b_2 + δ: the shares are one polynomial,
        // each holder reveals exactly what it received, and the rebuilt secret does not open site 2's commitment. With
        // 5 shares Berlekamp–Welch corrects ⌊(5 − 3) / 2⌋ = 1, so one lying responder on top changes nothing.
        using var fx = new ProtocolFixture(5, 14, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            byte[] share = response.SelfMaskShares.Single(s => s.Owner == 2).Value;
            AddToFirstElement(share, 987_654_321);
            if (oneResponderLiesToo && c.Index == 4)
            {
                AddToFirstElement(share, 5);
            }

            server.AcceptUnmaskResponse(response);
        }

        var ex = Assert.Throws<RoundAbortedException>(() => server.Finish());

        Assert.Equal(2, ex.AtFault);
        Assert.Equal(ProtocolStage.Unmasking, ex.Stage);
        Assert.Contains("the self-mask seed of 'site-002' cannot be rebuilt", ex.Reason, StringComparison.Ordinal);
        Assert.Contains("'site-002' dealt shares of another secret", ex.Reason, StringComparison.Ordinal);
        Assert.StartsWith("round aborted at Unmasking: party 2 at fault: ", ex.Message, StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Aborted, server.Stage);
    }

    [Fact]
    public void Finish_DealerSharesEncodeAnotherSecretButOnlyTRevealed_AbortsBlamingNobody()
    {
        // 4 sites, t = 3, site 4 does not answer: 3 shares always fit some polynomial, so one lying responder would look
        // the same as a lying dealer; the aggregator must not blame site 2 on that.
        using var fx = new ProtocolFixture(4, 15, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        foreach (var c in clients.Where(c => c.Index != 4))
        {
            UnmaskResponse response = c.Unmask(request);
            AddToFirstElement(response.SelfMaskShares.Single(s => s.Owner == 2).Value, 987_654_321);
            server.AcceptUnmaskResponse(response);
        }

        var ex = Assert.Throws<RoundAbortedException>(() => server.Finish());

        Assert.Null(ex.AtFault);
        Assert.Contains("the self-mask seed of 'site-002' cannot be rebuilt from the 3 shares", ex.Reason, StringComparison.Ordinal);
        Assert.Equal([1, 2, 3], ex.Suspects); // the owner and the responders; site 4 revealed nothing and is not suspected
    }

    [Fact]
    public void Finish_DroppedDealerSSharesOffEveryPolynomial_SuspectsAreTheOwnerAndItsResponders()
    {
        // 5 sites, t = 3, site 5 dropped after ShareKeys: its masking key is rebuilt from the 4 survivors' s-shares. Site
        // 5 dealt two holders shares off its polynomial (e = ⌊(4 − 3) / 2⌋ = 0 corrected), so nobody can be named: the
        // abort lists the dropped owner and the four responders, and nothing else.
        using var fx = new ProtocolFixture(5, 17, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx, dropped: 5);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index is 1 or 3)
            {
                RandomNumberGenerator.Fill(response.MaskingKeyShares.Single(s => s.Owner == 5).Value.AsSpan(0, 7));
            }

            server.AcceptUnmaskResponse(response);
        }

        var ex = Assert.Throws<RoundAbortedException>(() => server.Finish());

        Assert.Null(ex.AtFault);
        Assert.Contains("the masking key of 'site-005' cannot be rebuilt from the 4 shares", ex.Reason, StringComparison.Ordinal);
        Assert.Equal([1, 2, 3, 4, 5], ex.Suspects);
    }

    [Fact]
    public void Finish_DealerGivesOneHolderAnOffPolynomialShare_CompletesAndNamesHolderAndDealerAsPossibleLiars()
    {
        // 5 sites, t = 3: site 2 dealt site 1 one share off its polynomial and the others right; site 1 reveals what it
        // received. Berlekamp–Welch corrects it; the aggregator cannot tell which of the two lied and must not say site 1 did.
        using var fx = new ProtocolFixture(5, 16, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        foreach (var c in clients)
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index == 1) // among the first t responders, so the fast path sees it
            {
                AddToFirstElement(response.SelfMaskShares.Single(s => s.Owner == 2).Value, 987_654_321);
            }

            server.AcceptUnmaskResponse(response);
        }

        AggregationResult result = server.Finish();

        Assert.Equal(fx.ExpectedSum(Enumerable.Range(1, 5)), result.Sum);
        RejectedShare rejected = Assert.Single(result.RejectedShares);
        Assert.Equal((1, 2, RevealedShareKind.SelfMaskSeed), (rejected.Responder, rejected.Owner, rejected.Kind));
        Assert.Equal(
            "the share of b:'site-002' that 'site-001' revealed is off the polynomial of the other revealed shares: 'site-001' or the dealer 'site-002' lied",
            rejected.Describe(fx.Parameters));
    }

    /// <summary>
    /// Hostile-site review (session 50): a response that leaves out shares its sender holds (every survivor's b-share among
    /// its share holders, its own included, and every dropped neighbour's s-share: an honest responder holds all of them,
    /// since every member of U2 sent it one) was accepted, down to an empty one, and counted as an answer: towards the t
    /// answers <see cref="ServerRound.Finish"/> needs and towards the t answers after which the aggregator stops waiting
    /// for a stage's last member. So a site that answered at once with nothing had a slow honest last member cut, and the
    /// reconstruction then lacked shares and aborted the attempt after the honest sites had charged their ledgers, with
    /// nobody blamed or suspected. Now such a response is refused whole, and the sender has not answered.
    /// </summary>
    [Theory]
    [InlineData("nothing")]
    [InlineData("its own b-share only")]
    [InlineData("every b-share, no s-share")]
    [InlineData("every s-share, one b-share left out")]
    public void AcceptUnmaskResponse_WithoutEveryShareTheSenderHolds_RefusedNotCountedAndTheHonestAnswersComplete(string kind)
    {
        // 5 sites, t = 3, site 5 dropped after ShareKeys: each of the four survivors holds 4 b-shares (its own included)
        // and one s-share (of site 5).
        using var fx = new ProtocolFixture(5, 18, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx, dropped: 5);
        UnmaskResponse full = clients[0].Unmask(request);
        Assert.Equal((4, 1), (full.SelfMaskShares.Count, full.MaskingKeyShares.Count));
        UnmaskResponse partial = kind switch
        {
            "nothing" => full with { SelfMaskShares = [], MaskingKeyShares = [] },
            "its own b-share only" => full with { SelfMaskShares = [.. full.SelfMaskShares.Where(s => s.Owner == 1)], MaskingKeyShares = [] },
            "every b-share, no s-share" => full with { MaskingKeyShares = [] },
            _ => full with { SelfMaskShares = [.. full.SelfMaskShares.Where(s => s.Owner != 3)] },
        };

        var ex = Assert.Throws<ProtocolViolationException>(() => server.AcceptUnmaskResponse(partial));

        Assert.Equal(1, ex.Party);
        Assert.Contains("holds", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(1, server.Delivered);

        // The three honest answers are the t the reconstruction needs: site 1's own seed is rebuilt from them.
        foreach (var c in clients.Skip(1))
        {
            server.AcceptUnmaskResponse(c.Unmask(request));
        }

        AggregationResult result = server.Finish();
        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4]), result.Sum);
    }

    [Fact]
    public void AcceptUnmaskResponse_ShareValueOutsideTheField_RefusedNamingElementAndOwner()
    {
        using var fx = new ProtocolFixture(4, 14, vectorLength: 16, threshold: 3);
        var (clients, server, request) = ToUnmasking(fx);
        UnmaskResponse response = clients[0].Unmask(request);
        Array.Fill(response.SelfMaskShares[1].Value, (byte)0xff);

        var ex = Assert.Throws<ProtocolViolationException>(() => server.AcceptUnmaskResponse(response));

        Assert.Contains($"revealed a b-share of index {response.SelfMaskShares[1].Owner}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("element 0 is 18446744073709551615, not a field element", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, ex.Party);
    }

    [Fact]
    public void MaskInput_PeerShareValueOutsideTheField_RefusesBeforeRevealingIt()
    {
        using var fx = new ProtocolFixture(3, 15, vectorLength: 16, threshold: 2);
        RoundParameters p = fx.Parameters;
        ClientRound honest2 = fx.Client(2);
        ClientRound honest3 = fx.Client(3);
        var server = new ServerRound(p);
        // Site 1 is hostile: it builds its advertisement and envelopes itself and puts 0xff.. inside the plaintext.
        using X25519KeyPair c1 = X25519KeyPair.Generate(fx.Random);
        using X25519KeyPair s1 = X25519KeyPair.Generate(fx.Random);
        byte[] commitment = new byte[32];
        var ad1 = new KeyAdvertisement(1, c1.PublicKey, s1.PublicKey,
            fx.Identities[0].Sign(ProtocolLabels.AdvertisementTranscript(p, 1, c1.PublicKey, s1.PublicKey, commitment)), commitment);
        server.AcceptAdvertisement(ad1);
        server.AcceptAdvertisement(honest2.AdvertiseKeys());
        server.AcceptAdvertisement(honest3.AdvertiseKeys());
        server.CloseAdvertiseKeys();
        server.AcceptShares(2, honest2.ShareKeys(server.AdvertisementsFor(2)));
        server.AcceptShares(3, honest3.ShareKeys(server.AdvertisementsFor(3)));
        var hostile = new List<EncryptedShare>();
        foreach (int v in new[] { 2, 3 })
        {
            byte[] key = HkdfSha256.DeriveKey(c1.DeriveSharedSecret(server.AdvertisementsFor(1).Single(a => a.Sender == v).EncryptionPublicKey), default, ProtocolLabels.ShareKeyInfo(p, 1, v), 32);
            byte[] plain = ProtocolLabels.SharePlaintext(1, v, Enumerable.Repeat((byte)0xff, 40).ToArray(), new byte[40]);
            hostile.Add(new EncryptedShare(1, v, ShareCipher.Seal(key, plain, ProtocolLabels.ShareAssociatedData(p, 1, v), fx.Random)));
        }

        server.AcceptShares(1, hostile);
        server.CloseShareKeys();

        var ex = Assert.Throws<ProtocolViolationException>(() => honest2.MaskInput(server.SharesFor(2), fx.Inputs[1], new uint[16]));

        Assert.Contains("holds a value that is not a field element (element 0 of its b-share", ex.Message, StringComparison.Ordinal);
        Assert.Equal(1, ex.Party);
        Assert.Throws<ProtocolViolationException>(() => honest2.SignSurvivors([1, 2, 3])); // nothing further, nothing revealed
    }

    [Fact]
    public void AcceptAdvertisement_CommitmentMissingOrChangedAfterSigning_Refused()
    {
        using var fx = new ProtocolFixture(3, 16, vectorLength: 16, threshold: 2);
        KeyAdvertisement ad = fx.Client(1).AdvertiseKeys();
        Assert.Equal(ProtocolLabels.SelfMaskCommitmentSize, ad.SelfMaskCommitment.Length);

        var missing = Assert.Throws<ProtocolViolationException>(() => new ServerRound(fx.Parameters).AcceptAdvertisement(ad with { SelfMaskCommitment = [] }));
        Assert.Contains($"self-mask commitment of 0 bytes; protocol version {ProtocolLabels.ProtocolVersion} requires 32", missing.Message, StringComparison.Ordinal);

        byte[] changed = (byte[])ad.SelfMaskCommitment.Clone();
        changed[0] ^= 1;
        var forged = Assert.Throws<ProtocolViolationException>(() => new ServerRound(fx.Parameters).AcceptAdvertisement(ad with { SelfMaskCommitment = changed }));
        Assert.Contains("does not verify", forged.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SelfMaskCommitment_BindsContextRoundOwnerAndSeed()
    {
        using var fx = new ProtocolFixture(3, 17, vectorLength: 16, threshold: 2);
        byte[] seed = RandomNumberGenerator.GetBytes(32);
        byte[] c = ProtocolLabels.SelfMaskCommitment(fx.Parameters, 1, seed);

        Assert.Equal(c, ProtocolLabels.SelfMaskCommitment(fx.Parameters, 1, seed));
        Assert.NotEqual(c, ProtocolLabels.SelfMaskCommitment(fx.Parameters, 2, seed));
        seed[31] ^= 1;
        Assert.NotEqual(c, ProtocolLabels.SelfMaskCommitment(fx.Parameters, 1, seed));
    }

    [Theory]
    [InlineData(0, 3, "nothing to average")]
    [InlineData(1, 3, "W = 1 is below the 3 contributors' minimum of 1 each")]
    [InlineData(2, 3, "below the 3 contributors")]
    [InlineData(3001, 3, "W = 3001 exceeds 3 contributors × weight cap 1000 = 3000")]
    [InlineData(2147483647, 4, "exceeds 4 contributors")]
    public void CheckTotalWeight_OutOfRange_ReasonNamesTheBound(long weight, int contributors, string fragment)
    {
        UpdateCodec codec = UpdateCodec.Plan(10, 1.0, 4, 0, 1000);

        Assert.Contains(fragment, codec.CheckTotalWeight(weight, contributors), StringComparison.Ordinal);
        Assert.Null(codec.CheckTotalWeight(3000, 3));
        Assert.Null(codec.CheckTotalWeight(3, 3));
    }

    /// <summary>
    /// W against declared weights: exact when every contributor declared, D + u … D + u·cap with u undeclared; the reason
    /// names W and what the declarations allow. Every W in range passes, every W outside fails (property over the range's
    /// edges).
    /// </summary>
    [Theory]
    [InlineData(new long[] { 100, 200, 300 }, 0, 600, 600)]
    [InlineData(new long[] { 100, 200 }, 1, 301, 1300)]
    [InlineData(new long[0], 3, 3, 3000)]
    [InlineData(new long[] { 1000, 1 }, 2, 1003, 3001)]
    public void CheckDeclaredWeights_InsideTheDeclaredRangePassesOutsideFails(long[] declared, int silent, long low, long high)
    {
        UpdateCodec codec = UpdateCodec.Plan(10, 1.0, 4, 0, 1000);
        (string, long?)[] contributors = [.. declared.Select((w, i) => ($"site-{i}", (long?)w)), .. Enumerable.Range(0, silent).Select(i => ($"silent-{i}", (long?)null))];

        foreach (long w in new[] { low, low + 1, (low + high) / 2, high - 1, high }.Where(w => w >= low && w <= high))
        {
            Assert.Null(codec.CheckDeclaredWeights(w, contributors));
        }

        foreach (long w in new[] { 0, low - 1, high + 1, contributors.Length })
        {
            if (w >= low && w <= high)
            {
                continue;
            }

            string? reason = codec.CheckDeclaredWeights(w, contributors);
            Assert.NotNull(reason);
            Assert.StartsWith($"the aggregated weight W = {w} differs from ", reason, StringComparison.Ordinal);
            Assert.Contains(silent == 0 ? $"declared weights, {low}" : $"the range [{low}, {high}]", reason, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void CheckDeclaredWeights_DeclarationOutsideOneToCap_ArgumentError()
    {
        UpdateCodec codec = UpdateCodec.Plan(10, 1.0, 4, 0, 1000);

        Assert.Throws<ArgumentOutOfRangeException>(() => codec.CheckDeclaredWeights(5, [("site-a", 0L)]));
        Assert.Throws<ArgumentOutOfRangeException>(() => codec.CheckDeclaredWeights(5, [("site-a", 1001L)]));
    }
}
