using System.Buffers.Binary;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>docs/PROTOCOL.md §3 "Blame": who is at fault for an unusable share envelope, decided from the accuser's revealed key.</summary>
public sealed class ShareAccusationTests
{
    [Fact]
    public void Accuse_TamperedEnvelope_SignedAccusationFindsSenderAtFault()
    {
        using var fx = new ProtocolFixture(4, seed: 31, vectorLength: 8);
        var (clients, server) = fx.ThroughShareKeys();
        EncryptedShare[] forSite1 = [.. server.SharesFor(1).Select(s => s.Sender == 2 ? s with { Ciphertext = Flip(s.Ciphertext, 30) } : s)];

        var refusal = Assert.Throws<ProtocolViolationException>(() => clients[0].MaskInput(forSite1, new uint[8], new uint[8]));
        Assert.Equal(2, refusal.Party);
        ShareAccusation? accusation = clients[0].Accuse(forSite1.Single(s => s.Sender == 2));

        Assert.NotNull(accusation);
        AccusationVerdict verdict = ShareAccusation.Verify(fx.Parameters, accusation, Ad(server, 1), Ad(server, 2), forSite1.Single(s => s.Sender == 2));
        Assert.True(verdict.AccusedAtFault);
        Assert.Contains("does not decrypt", verdict.Reason, StringComparison.Ordinal);
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
