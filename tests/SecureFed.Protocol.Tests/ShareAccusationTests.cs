using System.Buffers.Binary;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// docs/PROTOCOL.md §3 "Blame": an agent's complaint about an unusable share envelope (signed, no key), and the judging
/// of an accusation that reveals the accuser's key (older agents sent one; the aggregator still judges it).
/// </summary>
public sealed class ShareAccusationTests
{
    [Fact]
    public void Accuse_TamperedEnvelope_SignedComplaintWithoutAKeyThatVerifiesOverTheRelayedEnvelopeOnly()
    {
        using var fx = new ProtocolFixture(4, seed: 31, vectorLength: 8);
        var (clients, server) = fx.ThroughShareKeys();
        EncryptedShare[] forSite1 = [.. server.SharesFor(1).Select(s => s.Sender == 2 ? s with { Ciphertext = Flip(s.Ciphertext, 30) } : s)];
        EncryptedShare relayed = forSite1.Single(s => s.Sender == 2);

        var refusal = Assert.Throws<ProtocolViolationException>(() => clients[0].MaskInput(forSite1, new uint[8], new uint[8]));
        Assert.Equal(2, refusal.Party);
        ShareAccusation? complaint = clients[0].Accuse(relayed);

        // A complaint: no key (a revealed c^SK would open every envelope addressed to site 1), a signature binding site 1
        // to the envelope the aggregator relayed.
        Assert.NotNull(complaint);
        Assert.Empty(complaint.EncryptionPrivateKey);
        Assert.Equal((1, 2), (complaint.Accuser, complaint.Accused));
        ShareAccusation.VerifyComplaint(fx.Parameters, complaint, relayed);

        // Over another envelope (e.g. the one site 2 really sent) or with a broken signature it does not verify, and the
        // keyed judging refuses it (nothing to judge with).
        EncryptedShare original = server.SharesFor(1).Single(s => s.Sender == 2);
        Assert.Contains("signature does not verify", Assert.Throws<ProtocolViolationException>(() => ShareAccusation.VerifyComplaint(fx.Parameters, complaint, original)).Reason, StringComparison.Ordinal);
        Assert.Contains("signature does not verify", Assert.Throws<ProtocolViolationException>(() => ShareAccusation.VerifyComplaint(fx.Parameters, complaint with { Signature = Flip(complaint.Signature, 5) }, relayed)).Reason, StringComparison.Ordinal);
        Assert.Contains("does not name the sender and recipient", Assert.Throws<ProtocolViolationException>(() => ShareAccusation.VerifyComplaint(fx.Parameters, complaint with { Accused = 3 }, relayed)).Reason, StringComparison.Ordinal);
        Assert.Contains("32-byte private key", Assert.Throws<ProtocolViolationException>(() => ShareAccusation.Verify(fx.Parameters, complaint, Ad(server, 1), Ad(server, 2), relayed)).Reason, StringComparison.Ordinal);
        foreach (ClientRound c in clients)
        {
            c.Dispose();
        }
    }

    [Fact]
    public void VerifyComplaint_ACarriedKey_IsNotAComplaint()
    {
        using var fx = new ProtocolFixture(4, seed: 34, vectorLength: 8);
        var (clients, server) = fx.ThroughShareKeys();
        EncryptedShare envelope = server.SharesFor(1).Single(s => s.Sender == 2);
        ShareAccusation keyed = ShareAccusation.Create(fx.Parameters, 1, 2, envelope.Ciphertext, new byte[32], fx.Identities[0]);

        var ex = Assert.Throws<ProtocolViolationException>(() => ShareAccusation.VerifyComplaint(fx.Parameters, keyed, envelope));

        Assert.Contains("a complaint carries no key", ex.Reason, StringComparison.Ordinal);
        foreach (ClientRound c in clients)
        {
            c.Dispose();
        }
    }

    [Fact]
    public void Accuse_AggregatorTampersEnvelopesToThresholdSites_LearnsNoKeyToOpenAnyEnvelope()
    {
        // Review of session 45: a malicious aggregator flipped one bit of the envelope it relayed to each of t sites. Each
        // accused the sender honestly and revealed its share-encryption key c^SK of the attempt; with t keys the aggregator
        // opened the envelopes every other site had sent them, rebuilt that site's b and s^SK and unmasked its input alone.
        // Now the t complaints carry no key: all the aggregator holds beyond the envelopes is t signatures.
        const int length = 16;
        using var fx = new ProtocolFixture(4, seed: 4545, vectorLength: length); // t = 3
        (ClientRound[] clients, ServerRound server) = fx.ThroughShareKeys();
        const int victim = 4;
        int t = fx.Parameters.Threshold;
        for (int v = 1; v <= t; v++)
        {
            EncryptedShare[] relayed = [.. server.SharesFor(v).Select(s => s.Sender == victim ? s with { Ciphertext = Flip(s.Ciphertext, 40) } : s)];
            Assert.Equal(victim, Assert.Throws<ProtocolViolationException>(() => clients[v - 1].MaskInput(relayed, new uint[length], new uint[length])).Party);

            ShareAccusation? complaint = clients[v - 1].Accuse(relayed.Single(s => s.Sender == victim));

            Assert.NotNull(complaint);
            Assert.Empty(complaint.EncryptionPrivateKey);
            Assert.Equal(Ed25519.SignatureSize, complaint.Signature.Length);
        }

        foreach (ClientRound c in clients)
        {
            c.Dispose();
        }
    }

    [Fact]
    public void Accuse_ValidEnvelope_HonestSiteDoesNotAccuseAndAFalseAccusationBlamesTheAccuser()
    {
        using var fx = new ProtocolFixture(4, seed: 32, vectorLength: 8);
        var (clients, server) = fx.ThroughShareKeys();
        EncryptedShare valid = server.SharesFor(1).Single(s => s.Sender == 3);

        Assert.Null(clients[0].Accuse(valid));
        // A stray share relayed by the aggregator (addressed to site 2) is not the sender's fault either.
        Assert.Null(clients[0].Accuse(server.SharesFor(2).Single(s => s.Sender == 3)));

        // An accusation revealing a key other than the advertised one, or with a broken signature, is unverifiable.
        byte[] notMine = new byte[32];
        notMine[0] = 7;
        ShareAccusation forged = ShareAccusation.Create(fx.Parameters, 1, 3, valid.Ciphertext, notMine, fx.Identities[0]);
        var ex = Assert.Throws<ProtocolViolationException>(() => ShareAccusation.Verify(fx.Parameters, forged, Ad(server, 1), Ad(server, 3), valid));
        Assert.Contains("not the one the accuser advertised", ex.Reason, StringComparison.Ordinal);

        ShareAccusation badSignature = forged with { Signature = Flip(forged.Signature, 2) };
        ex = Assert.Throws<ProtocolViolationException>(() => ShareAccusation.Verify(fx.Parameters, badSignature, Ad(server, 1), Ad(server, 3), valid));
        Assert.Contains("signature does not verify", ex.Reason, StringComparison.Ordinal);
        foreach (ClientRound c in clients)
        {
            c.Dispose();
        }
    }

    [Fact]
    public void Judge_FalseAccusationWithTheRealKey_AccuserAtFault_OutOfFieldShare_SenderAtFault()
    {
        using var fx = new ProtocolFixture(4, seed: 33, vectorLength: 8);
        using X25519KeyPair recipient = X25519KeyPair.Generate(fx.Random);
        using X25519KeyPair sender = X25519KeyPair.Generate(fx.Random);
        var senderAd = new KeyAdvertisement(2, sender.PublicKey, sender.PublicKey, new byte[64], new byte[ProtocolLabels.SelfMaskCommitmentSize]);
        byte[] key = HkdfSha256.DeriveKey(sender.DeriveSharedSecret(recipient.PublicKey), default, ProtocolLabels.ShareKeyInfo(fx.Parameters, 2, 1), 32);
        byte[] recipientSecret = new byte[32];
        recipient.ExportPrivateKey(recipientSecret);

        byte[] plain = new byte[ProtocolLabels.SharePlaintextSize];
        BinaryPrimitives.WriteUInt32BigEndian(plain, 2);
        BinaryPrimitives.WriteUInt32BigEndian(plain.AsSpan(4), 1);
        var good = new EncryptedShare(2, 1, ShareCipher.Seal(key, plain, ProtocolLabels.ShareAssociatedData(fx.Parameters, 2, 1), fx.Random));
        AccusationVerdict onGood = ShareAccusation.Judge(fx.Parameters, 1, recipientSecret, senderAd, good);
        Assert.False(onGood.AccusedAtFault);
        Assert.Contains("the accusation is false", onGood.Reason, StringComparison.Ordinal);

        plain.AsSpan(8).Fill(0xff);
        var outOfField = new EncryptedShare(2, 1, ShareCipher.Seal(key, plain, ProtocolLabels.ShareAssociatedData(fx.Parameters, 2, 1), fx.Random));
        AccusationVerdict onBad = ShareAccusation.Judge(fx.Parameters, 1, recipientSecret, senderAd, outOfField);
        Assert.True(onBad.AccusedAtFault);
        Assert.Contains("not below 2^61 - 1", onBad.Reason, StringComparison.Ordinal);

        BinaryPrimitives.WriteUInt32BigEndian(plain.AsSpan(4), 3);
        plain.AsSpan(8).Clear();
        var misaddressed = new EncryptedShare(2, 1, ShareCipher.Seal(key, plain, ProtocolLabels.ShareAssociatedData(fx.Parameters, 2, 1), fx.Random));
        Assert.Contains("wrong sender or recipient", ShareAccusation.Judge(fx.Parameters, 1, recipientSecret, senderAd, misaddressed).Reason, StringComparison.Ordinal);
    }

    private static KeyAdvertisement Ad(ServerRound server, int index) => server.AdvertisementsFor(index).Single(a => a.Sender == index);

    private static byte[] Flip(byte[] bytes, int at)
    {
        byte[] copy = (byte[])bytes.Clone();
        copy[at] ^= 0x01;
        return copy;
    }
}
