using System.Reflection;
using SecureFed.Crypto;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// Threat model C3: an aggregator that shows two groups of sites different survivor sets, with one colluding site
/// signing both, gets a target's b-shares from the group that sees it survive and its s-shares from the group that sees
/// it dropped. With t signatures (the protocol's minimum) that takes c ≥ 2t − n colluders: one when n = 5 and t = 3
/// (hostile-aggregator review, session 58). A site that requires <see cref="RoundParameters.SignatureQuorum"/> for c
/// colluders refuses both views.
/// </summary>
public sealed class SplitViewTests
{
    private static readonly int[] ViewA = [1, 2, 3, 4, 5];   // shown to sites 1 and 2: the target (1) survives
    private static readonly int[] ViewB = [2, 3, 4, 5];      // shown to sites 3 and 4: the target dropped

    /// <summary>At the minimum quorum t the attack is outside the guarantee (2t − n − 1 = 0 colluders) and recovers site 1's input: the documented bound, shown.</summary>
    [Fact]
    public void Unmask_SplitViewWithOneColluderAtQuorumT_OutsideTheGuaranteeTargetInputRecovered()
    {
        using var fx = new ProtocolFixture(5, 11, vectorLength: 16);
        Assert.Equal((3, 3, 0), (fx.Parameters.Threshold, fx.Parameters.SignatureQuorum(0), fx.Parameters.SplitViewColluders(3)));
        var (clients, server) = fx.ThroughShareKeys();
        uint[][] masked = Mask(fx, clients, server);
        (UnmaskRequest a, UnmaskRequest b) = SplitRequests(fx, clients);

        UnmaskResponse a1 = clients[0].Unmask(a), a2 = clients[1].Unmask(a);
        UnmaskResponse b3 = clients[2].Unmask(b), b4 = clients[3].Unmask(b);

        (byte[] b5, byte[] s5) = HeldBy(clients[4], owner: 1);
        byte[] selfMaskSeed = Shamir.Combine([new(1, a1.SelfMaskShares.Single(s => s.Owner == 1).Value), new(2, a2.SelfMaskShares.Single(s => s.Owner == 1).Value), new(5, b5)], 3, 32);
        byte[] maskingKey = Shamir.Combine([new(3, b3.MaskingKeyShares.Single(s => s.Owner == 1).Value), new(4, b4.MaskingKeyShares.Single(s => s.Owner == 1).Value), new(5, s5)], 3, 32);
        Assert.Equal(fx.Inputs[0], Unmasked(fx, server, masked[0], selfMaskSeed, maskingKey));
    }

    /// <summary>Every honest site that guards against one colluder requires 4 of the 5 signatures and refuses either view (3 signatures), revealing nothing.</summary>
    [Fact]
    public void Unmask_SplitViewWithOneColluder_SitesRequiringTheQuorumForOneColluder_EachRefusesRevealingNothing()
    {
        using var fx = new ProtocolFixture(5, 11, vectorLength: 16);
        Assert.Equal((4, 4, 2), (fx.Parameters.SignatureQuorum(1), fx.Parameters.SignatureQuorum(2), fx.Parameters.SplitViewColluders(4)));
        var (clients, server) = fx.ThroughShareKeys(colluders: 1);
        Mask(fx, clients, server);
        (UnmaskRequest a, UnmaskRequest b) = SplitRequests(fx, clients);

        foreach ((ClientRound client, UnmaskRequest request) in new[] { (clients[0], a), (clients[1], a), (clients[2], b), (clients[3], b) })
        {
            var refused = Assert.Throws<ProtocolViolationException>(() => client.Unmask(request));
            Assert.Contains("only 3 survivors signed the survivor set; this site requires 4 of the 5 (t = 3; fewer would let the aggregator and 1 colluding site have two different survivor sets signed)", refused.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>The honest single view still unmasks at that quorum (every survivor signs), and the sum is exact.</summary>
    [Fact]
    public void Unmask_OneViewSignedByEverySurvivor_QuorumForOneColluder_RoundCompletes()
    {
        using var fx = new ProtocolFixture(5, 11, vectorLength: 16);
        var (clients, server) = fx.ThroughShareKeys(colluders: 1);
        uint[][] masked = Mask(fx, clients, server);
        foreach (ClientRound c in clients)
        {
            server.AcceptMaskedInput(c.Index, masked[c.Index - 1]);
        }

        IReadOnlyList<int> survivors = server.CloseMaskedInput();
        foreach (ClientRound c in clients)
        {
            server.AcceptConsistencySignature(c.SignSurvivors(survivors));
        }

        UnmaskRequest request = server.CloseConsistency();
        foreach (ClientRound c in clients)
        {
            server.AcceptUnmaskResponse(c.Unmask(request));
        }

        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4, 5]), server.Finish().Sum);
    }

    /// <summary>
    /// For every small cohort, threshold and number of colluders: two survivor sets each signed by the quorum share more
    /// signers than there are colluders (so an honest site signed both, which it never does), and the quorum stays
    /// within the cohort; at t alone the bound is 2t − n − 1.
    /// </summary>
    [Fact]
    public void SignatureQuorum_AnyCohortThresholdAndColluders_TwoQuorumsShareAnHonestSigner()
    {
        for (int n = 3; n <= 40; n++)
        {
            for (int t = (n / 2) + 1; t <= n; t++)
            {
                using var fx = new ProtocolFixture(n, n, vectorLength: 4, threshold: t);
                Assert.Equal(2 * t - n - 1, fx.Parameters.SplitViewColluders(fx.Parameters.SignatureQuorum(0)));
                for (int c = 0; c < n; c++)
                {
                    int q = fx.Parameters.SignatureQuorum(c);
                    Assert.InRange(q, t, n);
                    Assert.True((2 * q) - n > c, $"n={n} t={t} c={c}: two sets of {q} signers may share only colluders");
                    Assert.True(c == 0 || q == t || (2 * (q - 1)) - n <= c, $"n={n} t={t} c={c}: {q} is more than needed");
                }
            }
        }
    }

    /// <summary>
    /// Under a sparse graph t counts one site's k + 1 holders, so t signatures out of the cohort kept out no colluding
    /// holder: n = 21, k = 10, t = 6. The round's default quorum guards against ⌈0.05·21⌉ = 2 colluders, 12 signatures:
    /// with 11 the aggregator aborts the consistency stage naming the quorum, and a responder shown 11 refuses.
    /// </summary>
    [Fact]
    public void CloseConsistency_SparseGraphElevenOfTwentyOneSigned_BelowTheDefaultQuorumAbortsAndResponderRefuses()
    {
        using var fx = new ProtocolFixture(21, 5, vectorLength: 8, threshold: 6, degree: 10);
        Assert.Equal((6, 2, 12), (fx.Parameters.Threshold, fx.Parameters.DefaultColluders, fx.Parameters.SignatureQuorum(fx.Parameters.DefaultColluders)));
        var (clients, server) = fx.ThroughShareKeys();
        uint[][] masked = Mask(fx, clients, server);
        foreach (ClientRound c in clients)
        {
            server.AcceptMaskedInput(c.Index, masked[c.Index - 1]);
        }

        IReadOnlyList<int> survivors = server.CloseMaskedInput();
        ConsistencySignature[] signatures = [.. clients.Take(11).Select(c => c.SignSurvivors(survivors))];
        foreach (ConsistencySignature signature in signatures)
        {
            server.AcceptConsistencySignature(signature);
        }

        var aborted = Assert.Throws<RoundAbortedException>(server.CloseConsistency);
        Assert.Contains("only 11 sites signed the survivor set; a round over a sparse masking graph needs 12 of its 21", aborted.Message, StringComparison.Ordinal);
        var refused = Assert.Throws<ProtocolViolationException>(() => clients[0].Unmask(new UnmaskRequest(survivors, [], signatures)));
        Assert.Contains("only 11 survivors signed the survivor set; this site requires 12 of the 21 (t = 6;", refused.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The aggregator's announced quorum (<c>ConsistencyColluders</c>, bound into the digest): with c = 1 in a cohort of 5
    /// every party requires 4 signatures. With 3 the aggregator aborts the consistency stage naming the announced quorum,
    /// and a responder that itself guards against no one beyond t (Colluders 0) still refuses the split view: the
    /// announcement protects every site, not only those configured for it.
    /// </summary>
    [Fact]
    public void CloseConsistency_AnnouncedQuorumForOneColluder_ThreeOfFiveSigned_AbortsAndEveryResponderRefusesTheSplitView()
    {
        using var fx = new ProtocolFixture(5, 11, vectorLength: 16, consistencyColluders: 1);
        Assert.Equal((3, 0, 1, 1), (fx.Parameters.Threshold, fx.Parameters.DefaultColluders, fx.Parameters.ConsistencyColluders, fx.Parameters.QuorumColluders));
        var (clients, server) = fx.ThroughShareKeys();
        uint[][] masked = Mask(fx, clients, server);
        foreach (ClientRound c in clients)
        {
            server.AcceptMaskedInput(c.Index, masked[c.Index - 1]);
        }

        IReadOnlyList<int> survivors = server.CloseMaskedInput();
        foreach (ClientRound c in clients.Take(3))
        {
            server.AcceptConsistencySignature(c.SignSurvivors(survivors));
        }

        var aborted = Assert.Throws<RoundAbortedException>(server.CloseConsistency);
        Assert.Contains("only 3 sites signed the survivor set; the round's announced consistency quorum needs 4 of its 5 (enough that no two survivor sets can both be signed with 1 colluding site;", aborted.Message, StringComparison.Ordinal);

        using var split = new ProtocolFixture(5, 11, vectorLength: 16, consistencyColluders: 1);
        var (splitClients, splitServer) = split.ThroughShareKeys();
        Mask(split, splitClients, splitServer);
        (UnmaskRequest a, UnmaskRequest b) = SplitRequests(split, splitClients);
        foreach ((ClientRound client, UnmaskRequest request) in new[] { (splitClients[0], a), (splitClients[1], a), (splitClients[2], b), (splitClients[3], b) })
        {
            var refused = Assert.Throws<ProtocolViolationException>(() => client.Unmask(request));
            Assert.Contains("only 3 survivors signed the survivor set; this site requires 4 of the 5 (t = 3;", refused.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>With the announced quorum met (4 of 5 signed, one site dropped after masking) the round completes exactly.</summary>
    [Fact]
    public void Finish_AnnouncedQuorumForOneColluder_FourOfFiveSigned_SumExact()
    {
        using var fx = new ProtocolFixture(5, 11, vectorLength: 16, consistencyColluders: 1);
        var (clients, server) = fx.ThroughShareKeys();
        uint[][] masked = Mask(fx, clients, server);
        foreach (ClientRound c in clients)
        {
            server.AcceptMaskedInput(c.Index, masked[c.Index - 1]);
        }

        IReadOnlyList<int> survivors = server.CloseMaskedInput();
        foreach (ClientRound c in clients.Take(4))
        {
            server.AcceptConsistencySignature(c.SignSurvivors(survivors));
        }

        UnmaskRequest request = server.CloseConsistency();
        foreach (ClientRound c in clients.Take(4))
        {
            server.AcceptUnmaskResponse(c.Unmask(request));
        }

        Assert.Equal(fx.ExpectedSum([1, 2, 3, 4, 5]), server.Finish().Sum);
    }

    private static uint[][] Mask(ProtocolFixture fx, ClientRound[] clients, ServerRound server)
    {
        var masked = new uint[clients.Length][];
        foreach (ClientRound c in clients)
        {
            masked[c.Index - 1] = new uint[fx.Parameters.VectorLength];
            c.MaskInput(server.SharesFor(c.Index), fx.Inputs[c.Index - 1], masked[c.Index - 1]);
        }

        return masked;
    }

    /// <summary>View A signed by sites 1, 2 and the colluder 5; view B (site 1 dropped) by sites 3, 4 and 5.</summary>
    private static (UnmaskRequest A, UnmaskRequest B) SplitRequests(ProtocolFixture fx, ClientRound[] clients)
    {
        ConsistencySignature Colluder(int[] view) => new(5, fx.Identities[4].Sign(ProtocolLabels.ConsistencyTranscript(fx.Parameters, 5, view)));
        return (
            new UnmaskRequest(ViewA, [], [clients[0].SignSurvivors(ViewA), clients[1].SignSurvivors(ViewA), Colluder(ViewA)]),
            new UnmaskRequest(ViewB, [1], [clients[2].SignSurvivors(ViewB), clients[3].SignSurvivors(ViewB), Colluder(ViewB)]));
    }

    /// <summary>The colluder's own decrypted shares of <paramref name="owner"/>'s b and s^SK (what a corrupt site holds).</summary>
    private static (byte[] B, byte[] S) HeldBy(ClientRound colluder, int owner)
    {
        var received = (System.Collections.IDictionary)typeof(ClientRound).GetField("_received", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(colluder)!;
        return ((byte[], byte[]))received[owner]!;
    }

    private static uint[] Unmasked(ProtocolFixture fx, ServerRound server, uint[] masked, byte[] selfMaskSeed, byte[] maskingKey)
    {
        RoundParameters p = fx.Parameters;
        uint[] x = (uint[])masked.Clone();
        MaskPrg.SubtractFrom(selfMaskSeed, ProtocolLabels.SelfMaskDomain(p, 1), p.BitWidth, x);
        var ads = server.AdvertisementsFor(1).ToDictionary(a => a.Sender);
        using var key = X25519KeyPair.FromPrivateKey(maskingKey);
        byte[] seed = new byte[32];
        for (int v = 2; v <= p.CohortSize; v++)
        {
            ClientRound.PairMaskSeed(p, key, ads[v].MaskingPublicKey, 1, v, seed);
            MaskPrg.SubtractFrom(seed, ProtocolLabels.PairMaskDomain(p), p.BitWidth, x);
        }

        return x;
    }
}
