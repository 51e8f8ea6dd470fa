using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>A test double for a malicious aggregator (and misbehaving sites): every deviation must be refused.</summary>
public sealed class MaliciousPartyTests
{
    /// <summary>Drives 5 clients to the unmasking stage; site 5 dropped after ShareKeys.</summary>
    private static (ProtocolFixture Fx, ClientRound[] Clients, ServerRound Server, UnmaskRequest Request) ToUnmasking(int seed = 1)
    {
        var fx = new ProtocolFixture(5, seed, vectorLength: 32);
        var (clients, server) = fx.ThroughShareKeys();
        var y = new uint[32];
        foreach (var c in clients.Take(4))
        {
            c.MaskInput(server.SharesFor(c.Index), fx.Inputs[c.Index - 1], y);
            server.AcceptMaskedInput(c.Index, y);
        }

        var survivors = server.CloseMaskedInput();
        foreach (var c in clients.Take(4))
        {
            server.AcceptConsistencySignature(c.SignSurvivors(survivors));
        }

        return (fx, clients, server, server.CloseConsistency());
    }

    [Fact]
    public void Unmask_AggregatorAsksForBothSharesOfAPeer_Refuses()
    {
        var (fx, clients, _, request) = ToUnmasking();
        using var _fx = fx;
        // The malicious aggregator lists survivor 2 as dropped too, to get both b_2 and s_2 (and so x_2).
        var evil = request with { Dropped = [.. request.Dropped, 2] };

        var ex = Assert.Throws<ProtocolViolationException>(() => clients[0].Unmask(evil));

        Assert.Contains("both shares", ex.Message, StringComparison.Ordinal);
        // One answer per round: even the honest request is refused afterwards.
        Assert.Throws<ProtocolViolationException>(() => clients[0].Unmask(request));
    }

    [Fact]
    public void Unmask_SurvivorSetDiffersFromSigned_Refuses()
    {
        var (fx, clients, _, request) = ToUnmasking();
        using var _fx = fx;
        var evil = request with { Survivors = [1, 2, 3], Dropped = [4, 5] };

        var ex = Assert.Throws<ProtocolViolationException>(() => clients[0].Unmask(evil));

        Assert.Contains("differs from the one this site signed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unmask_FewerThanThresholdSignatures_Refuses()
    {
        var (fx, clients, _, request) = ToUnmasking();
        using var _fx = fx;
        var evil = request with { Signatures = [.. request.Signatures.Take(2)] };

        var ex = Assert.Throws<ProtocolViolationException>(() => clients[0].Unmask(evil));

        Assert.Contains("only 2 survivors signed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unmask_ForgedConsistencySignature_Refuses()
    {
        var (fx, clients, _, request) = ToUnmasking();
        using var _fx = fx;
        byte[] forged = (byte[])request.Signatures[1].Signature.Clone();
        forged[5] ^= 1;
        var sigs = request.Signatures.ToArray();
        sigs[1] = sigs[1] with { Signature = forged };

        var ex = Assert.Throws<ProtocolViolationException>(() => clients[0].Unmask(request with { Signatures = sigs }));

        Assert.Contains("does not verify", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unmask_HonestRequest_RevealsOneKindOfSharePerPeer()
    {
        var (fx, clients, server, request) = ToUnmasking();
        using var _fx = fx;
        foreach (var c in clients.Take(4))
        {
            UnmaskResponse response = c.Unmask(request);
            var bOwners = response.SelfMaskShares.Select(s => s.Owner).ToHashSet();
            var sOwners = response.MaskingKeyShares.Select(s => s.Owner).ToHashSet();
            Assert.Empty(bOwners.Intersect(sOwners));
            Assert.Equal([5], sOwners);
            server.AcceptUnmaskResponse(response);
        }

        AggregationResult result = server.Finish();
        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4]), result.Sum);
    }

    [Fact]
    public void Finish_TamperedRevealedShare_LeftOutByThePublicKeyCheckAndNamed()
    {
        var (fx, clients, server, request) = ToUnmasking();
        using var _fx = fx;
        foreach (var c in clients.Take(4))
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index == 1)
            {
                response.MaskingKeyShares[0].Value[0] ^= 0x01;
            }

            server.AcceptUnmaskResponse(response);
        }

        // 4 shares of s_5 with t = 3: site 1's wrong share is found because only the other three rebuild the key whose
        // public half site 5 advertised; the sum is exact and site 1 is named.
        AggregationResult result = server.Finish();
        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4]), result.Sum);
        Assert.Equal([new RejectedShare(1, 5, RevealedShareKind.MaskingKey)], result.RejectedShares);
    }

    [Fact]
    public void Finish_TwoOfFourResponsesTampered_AbortsNamingTheKeyNeverAWrongSum()
    {
        var (fx, clients, server, request) = ToUnmasking();
        using var _fx = fx;
        foreach (var c in clients.Take(4))
        {
            UnmaskResponse response = c.Unmask(request);
            if (c.Index <= 2)
            {
                System.Security.Cryptography.RandomNumberGenerator.Fill(response.MaskingKeyShares[0].Value.AsSpan(0, 7));
            }

            server.AcceptUnmaskResponse(response);
        }

        var ex = Assert.Throws<RoundAbortedException>(() => server.Finish());
        Assert.Contains("the masking key of 'site-005' cannot be rebuilt", ex.Message, StringComparison.Ordinal);
        Assert.Equal(ProtocolStage.Aborted, server.Stage);
    }

    [Fact]
    public void ShareKeys_ForgedAdvertisementRelayed_Refuses()
    {
        using var fx = new ProtocolFixture(3, 2, vectorLength: 8);
        var a = fx.Client(1);
        var b = fx.Client(2);
        var c = fx.Client(3);
        var adA = a.AdvertiseKeys();
        var adB = b.AdvertiseKeys();
        var adC = c.AdvertiseKeys();
        // The aggregator swaps in its own masking key for site 2 (a man in the middle).
        using var mitm = X25519KeyPair.Generate(fx.Random);
        var forged = adB with { MaskingPublicKey = mitm.PublicKey };

        var ex = Assert.Throws<ProtocolViolationException>(() => a.ShareKeys([adA, forged, adC]));

        Assert.Contains("does not verify", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ProtocolViolationException>(() => new ServerRound(fx.Parameters).AcceptAdvertisement(forged));
    }

    [Fact]
    public void AcceptAdvertisement_LowOrderPoint_Rejected()
    {
        using var fx = new ProtocolFixture(3, 4, vectorLength: 8);
        byte[] zero = new byte[32];
        var ex = Assert.Throws<ProtocolViolationException>(() =>
            new ServerRound(fx.Parameters).AcceptAdvertisement(new KeyAdvertisement(1, zero, zero, new byte[64], new byte[32])));
        Assert.Contains("invalid X25519 public key", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MaskInput_ShareAddressedToAnotherSite_Refuses()
    {
        using var fx = new ProtocolFixture(3, 5, vectorLength: 8);
        var (clients, server) = fx.ThroughShareKeys();
        var forSite2 = server.SharesFor(2);

        var ex = Assert.Throws<ProtocolViolationException>(() => clients[0].MaskInput(forSite2, new uint[8], new uint[8]));

        Assert.Contains("addressed to", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AcceptMaskedInput_WrongLengthOrDuplicateOrOutOfOrder_Rejected()
    {
        var (fx, _, server, _) = ToUnmasking();
        using var _fx = fx;
        var ex = Assert.Throws<ProtocolViolationException>(() => server.AcceptMaskedInput(1, new uint[32]));
        Assert.Contains("out of order", ex.Message, StringComparison.Ordinal);

        using var fx2 = new ProtocolFixture(3, 8, vectorLength: 8, bitWidth: 16);
        var (clients, s2) = fx2.ThroughShareKeys();
        Assert.Contains("7 words", Assert.Throws<ProtocolViolationException>(() => s2.AcceptMaskedInput(1, new uint[7])).Message, StringComparison.Ordinal);
        Assert.Contains("not reduced", Assert.Throws<ProtocolViolationException>(() => s2.AcceptMaskedInput(1, [.. new uint[7], 70_000u])).Message, StringComparison.Ordinal);
        s2.AcceptMaskedInput(1, new uint[8]);
        Assert.Contains("already sent", Assert.Throws<ProtocolViolationException>(() => s2.AcceptMaskedInput(1, new uint[8])).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AcceptAdvertisement_IdenticalRetry_DuplicateWithoutVerifyingTheSignatureAgain_DifferentRefused()
    {
        using var fx = new ProtocolFixture(3, 11, vectorLength: 8);
        var server = new ServerRound(fx.Parameters);
        KeyAdvertisement ad = fx.Client(1).AdvertiseKeys();
        Assert.True(server.AcceptAdvertisement(ad));

        // The round keeps the accepted advertisement's arrays: spoiling its signature in place makes a copy of its bytes
        // one that would not verify. The retry is answered as a duplicate by comparing bytes, before any verification.
        ad.Signature[0] ^= 1;
        KeyAdvertisement retry = ad with { Signature = [.. ad.Signature] };
        Assert.Throws<ProtocolViolationException>(() => new ServerRound(fx.Parameters).AcceptAdvertisement(retry));

        Assert.False(server.AcceptAdvertisement(retry));
        using var other = X25519KeyPair.Generate(fx.Random);
        Assert.Throws<ProtocolViolationException>(() => server.AcceptAdvertisement(retry with { MaskingPublicKey = other.PublicKey }));
    }

    [Fact]
    public void AcceptShares_DuplicateIdenticalIsIdempotent_DifferentIsRejected()
    {
        using var fx = new ProtocolFixture(3, 6, vectorLength: 8);
        var clients = Enumerable.Range(1, 3).Select(fx.Client).ToArray();
        var server = new ServerRound(fx.Parameters);
        foreach (var c in clients)
        {
            Assert.True(server.AcceptAdvertisement(c.AdvertiseKeys()));
        }

        server.CloseAdvertiseKeys();
        var shares = clients[0].ShareKeys(server.AdvertisementsFor(1));

        Assert.True(server.AcceptShares(1, shares));
        Assert.False(server.AcceptShares(1, shares));
        var altered = shares.Select(s => s with { Ciphertext = [.. s.Ciphertext.Reverse()] }).ToArray();
        Assert.Throws<ProtocolViolationException>(() => server.AcceptShares(1, altered));
    }

    /// <summary>
    /// A ShareKeys message with more shares than its sender has neighbours is refused naming both counts before any share
    /// is read (hostile-site review: the first repeated or foreign recipient was refused, but only after the aggregator had
    /// copied every share of the request, up to ~33,000 within the 4 MiB message limit); nothing is kept, so the sender's
    /// honest shares are still its first.
    /// </summary>
    [Fact]
    public void AcceptShares_MoreSharesThanTheSenderHasNeighbours_RefusedNamingBothCountsBeforeAnyShareIsRead()
    {
        using var fx = new ProtocolFixture(4, 9, vectorLength: 8);
        var clients = Enumerable.Range(1, 4).Select(fx.Client).ToArray();
        var server = new ServerRound(fx.Parameters);
        foreach (var c in clients)
        {
            Assert.True(server.AcceptAdvertisement(c.AdvertiseKeys()));
        }

        server.CloseAdvertiseKeys();
        var shares = clients[0].ShareKeys(server.AdvertisementsFor(1));
        var padded = new ReadCountingList<EncryptedShare>([.. Enumerable.Range(0, 35_000).Select(i => shares[i % shares.Count])]);

        var ex = Assert.Throws<ProtocolViolationException>(() => server.AcceptShares(1, padded));

        Assert.Equal(1, ex.Party);
        Assert.Equal("sent 35000 shares; it has 3 neighbours in the round's masking graph and sends at most one share to each", ex.Reason);
        Assert.Equal(0, padded.Reads);
        Assert.True(server.AcceptShares(1, shares));
    }

    [Theory]
    [InlineData(1, 3, null)]
    [InlineData(4, 0, null)]
    [InlineData(1, 4, "sent 4 shares; it has 3 neighbours")]
    [InlineData(0, 1, "unknown participant index 0")]
    [InlineData(5, 1, "unknown participant index 5")]
    public void CheckShareCount_AgainstTheSendersNeighbours_RefusesOnlyMoreThanThem(int sender, int count, string? refused)
    {
        using var fx = new ProtocolFixture(4, 10, vectorLength: 8);

        Exception? ex = Record.Exception(() => ServerRound.CheckShareCount(fx.Parameters, sender, count));

        if (refused is null)
        {
            Assert.Null(ex);
        }
        else
        {
            Assert.Contains(refused, Assert.IsType<ProtocolViolationException>(ex).Message, StringComparison.Ordinal);
        }
    }

    /// <summary>A list that counts how often its elements are read (by index or by enumeration).</summary>
    private sealed class ReadCountingList<T>(T[] items) : IReadOnlyList<T>
    {
        public int Reads { get; private set; }

        public int Count => items.Length;

        public T this[int index]
        {
            get
            {
                Reads++;
                return items[index];
            }
        }

        public IEnumerator<T> GetEnumerator()
        {
            foreach (T item in items)
            {
                Reads++;
                yield return item;
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    [Fact]
    public void ClientRound_CohortListsAnotherKeyForThisSite_Refuses()
    {
        using var fx = new ProtocolFixture(3, 7, vectorLength: 8);
        using var stranger = Ed25519PrivateKey.Generate(fx.Random);

        var ex = Assert.Throws<ProtocolViolationException>(() => new ClientRound(fx.Parameters, fx.Parameters[1].Name, stranger));

        Assert.Contains("different identity key", ex.Message, StringComparison.Ordinal);
    }
}
