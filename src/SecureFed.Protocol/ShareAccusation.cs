using System.Buffers.Binary;
using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// A site's signed claim that the share envelope a peer sent it in ShareKeys is invalid (does not decrypt, names the
/// wrong sender or recipient, or holds a share value not below 2^61 − 1; docs/PROTOCOL.md, "Blame").
/// <para>An agent sends it as a <b>complaint</b>: no key (<see cref="EncryptionPrivateKey"/> empty), so the aggregator
/// cannot tell an invalid envelope from a false claim and searches the two sites by elimination. Agents before session
/// 45 revealed their share-encryption private key c^SK of the attempt, which let the aggregator judge the claim, but
/// c^SK opens every envelope addressed to the accuser, and a malicious aggregator that altered one relayed envelope for
/// each of t sites collected t keys and so t shares of every other site's b and s^SK: it could unmask their inputs one
/// by one. The aggregator still judges such a revealed key (<see cref="Verify"/>); agents never send one.</para>
/// </summary>
/// <param name="Accuser">Protocol index of the accusing site (the envelope's recipient).</param>
/// <param name="Accused">Protocol index of the accused site (the envelope's sender).</param>
/// <param name="EncryptionPrivateKey">Empty for a complaint (what agents send); else the accuser's X25519
/// share-encryption private key c^SK of this attempt (32 bytes; only older agents revealed it).</param>
/// <param name="Signature">Ed25519 signature of the accuser's identity key over <see cref="Transcript"/>.</param>
public sealed record ShareAccusation(int Accuser, int Accused, byte[] EncryptionPrivateKey, byte[] Signature)
{
    /// <summary>
    /// Signed by the accuser: Label("share-accusation", ctx, round, name_accuser, name_accused) ‖ SHA-256(envelope) ‖ c^SK.
    /// </summary>
    public static byte[] Transcript(RoundParameters p, int accuser, int accused, ReadOnlySpan<byte> envelope, ReadOnlySpan<byte> encryptionPrivateKey)
    {
        ArgumentNullException.ThrowIfNull(p);
        byte[] label = DomainLabel.Encode("share-accusation", p.Context, p.Round, p[accuser].Name, p[accused].Name);
        byte[] result = new byte[label.Length + 32 + encryptionPrivateKey.Length];
        label.CopyTo(result, 0);
        SHA256.HashData(envelope, result.AsSpan(label.Length, 32));
        encryptionPrivateKey.CopyTo(result.AsSpan(label.Length + 32));
        return result;
    }

    /// <summary>
    /// Builds and signs a complaint: the accusation without any key (the caller has checked with <see cref="Judge"/>
    /// that the envelope is invalid). It reveals nothing secret: the signature binds the accuser to the claim and to the
    /// relayed envelope's hash.
    /// </summary>
    public static ShareAccusation CreateComplaint(RoundParameters p, int accuser, int accused, ReadOnlySpan<byte> envelope, Ed25519PrivateKey identity) =>
        Create(p, accuser, accused, envelope, [], identity);

    /// <summary>
    /// The aggregator's check of a complaint (an accusation without a key): it must name the sender and recipient of the
    /// envelope the aggregator relayed and be signed by the accuser over that envelope. Who is at fault cannot be decided
    /// from it (the accused sent an invalid envelope, or the accuser claims falsely), so nothing is returned.
    /// </summary>
    /// <exception cref="ProtocolViolationException">The complaint is malformed or its signature does not verify over the relayed envelope.</exception>
    public static void VerifyComplaint(RoundParameters p, ShareAccusation accusation, EncryptedShare envelope)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(accusation);
        ArgumentNullException.ThrowIfNull(envelope);
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        if (accusation.Accuser == accusation.Accused || envelope.Sender != accusation.Accused || envelope.Recipient != accusation.Accuser)
        {
            throw new ProtocolViolationException(stage, "the accusation does not name the sender and recipient of a relayed envelope", accusation.Accuser);
        }

        if (accusation.EncryptionPrivateKey is not { Length: 0 } || accusation.Signature is not { Length: Ed25519.SignatureSize })
        {
            throw new ProtocolViolationException(stage, $"a complaint carries no key and a {Ed25519.SignatureSize}-byte signature", accusation.Accuser);
        }

        byte[] transcript = Transcript(p, accusation.Accuser, accusation.Accused, envelope.Ciphertext, []);
        if (!Ed25519.Verify(p[accusation.Accuser].IdentityPublicKey, transcript, accusation.Signature))
        {
            throw new ProtocolViolationException(stage, "the accusation's signature does not verify over the relayed envelope", accusation.Accuser);
        }
    }

    /// <summary>
    /// Builds and signs an accusation that reveals <paramref name="encryptionPrivateKey"/> (what agents before session 45
    /// sent; unsafe against a malicious aggregator, see the type's remarks; kept so the aggregator's judging of such an
    /// accusation stays tested). Agents use <see cref="CreateComplaint"/>.
    /// </summary>
    public static ShareAccusation Create(RoundParameters p, int accuser, int accused, ReadOnlySpan<byte> envelope, ReadOnlySpan<byte> encryptionPrivateKey, Ed25519PrivateKey identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        byte[] transcript = Transcript(p, accuser, accused, envelope, encryptionPrivateKey);
        byte[] signature = identity.Sign(transcript);
        CryptographicOperations.ZeroMemory(transcript);
        return new ShareAccusation(accuser, accused, encryptionPrivateKey.ToArray(), signature);
    }

    /// <summary>
    /// The aggregator's check: the accusation must be signed by the accuser over the envelope the aggregator relayed, and
    /// the revealed key must be the one the accuser advertised; then <see cref="Judge"/> decides who is at fault.
    /// </summary>
    /// <exception cref="ProtocolViolationException">The accusation itself is malformed or unverifiable (wrong sizes, the
    /// signature does not verify, the key is not the advertised one, the envelope is not from the accused to the accuser).</exception>
    public static AccusationVerdict Verify(RoundParameters p, ShareAccusation accusation, KeyAdvertisement accuserAdvertisement, KeyAdvertisement accusedAdvertisement, EncryptedShare envelope)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(accusation);
        ArgumentNullException.ThrowIfNull(accuserAdvertisement);
        ArgumentNullException.ThrowIfNull(accusedAdvertisement);
        ArgumentNullException.ThrowIfNull(envelope);
        const ProtocolStage stage = ProtocolStage.MaskedInputCollection;
        if (accusation.Accuser == accusation.Accused || envelope.Sender != accusation.Accused || envelope.Recipient != accusation.Accuser
            || accuserAdvertisement.Sender != accusation.Accuser || accusedAdvertisement.Sender != accusation.Accused)
        {
            throw new ProtocolViolationException(stage, "the accusation does not name the sender and recipient of a relayed envelope", accusation.Accuser);
        }

        if (accusation.EncryptionPrivateKey is not { Length: X25519.KeySize } || accusation.Signature is not { Length: Ed25519.SignatureSize })
        {
            throw new ProtocolViolationException(stage, $"an accusation carries a {X25519.KeySize}-byte private key and a {Ed25519.SignatureSize}-byte signature", accusation.Accuser);
        }

        byte[] transcript = Transcript(p, accusation.Accuser, accusation.Accused, envelope.Ciphertext, accusation.EncryptionPrivateKey);
        bool signed = Ed25519.Verify(p[accusation.Accuser].IdentityPublicKey, transcript, accusation.Signature);
        CryptographicOperations.ZeroMemory(transcript);
        if (!signed)
        {
            throw new ProtocolViolationException(stage, "the accusation's signature does not verify over the relayed envelope", accusation.Accuser);
        }

        using (X25519KeyPair revealed = X25519KeyPair.FromPrivateKey(accusation.EncryptionPrivateKey))
        {
            if (!CryptographicOperations.FixedTimeEquals(revealed.PublicKey, accuserAdvertisement.EncryptionPublicKey))
            {
                throw new ProtocolViolationException(stage, "the revealed share-encryption key is not the one the accuser advertised", accusation.Accuser);
            }
        }

        return Judge(p, accusation.Accuser, accusation.EncryptionPrivateKey, accusedAdvertisement, envelope);
    }

    /// <summary>
    /// Opens <paramref name="envelope"/> (from the accused to <paramref name="recipient"/>) with the recipient's private
    /// key and checks it as a recipient must: it decrypts, it is 88 bytes, it names the right sender and recipient, and
    /// each of its ten field elements is below 2^61 − 1.
    /// </summary>
    public static AccusationVerdict Judge(RoundParameters p, int recipient, ReadOnlySpan<byte> recipientPrivateKey, KeyAdvertisement senderAdvertisement, EncryptedShare envelope)
    {
        ArgumentNullException.ThrowIfNull(p);
        ArgumentNullException.ThrowIfNull(senderAdvertisement);
        ArgumentNullException.ThrowIfNull(envelope);
        int sender = envelope.Sender;
        Span<byte> shared = stackalloc byte[32];
        using (X25519KeyPair mine = X25519KeyPair.FromPrivateKey(recipientPrivateKey))
        {
            mine.DeriveSharedSecret(senderAdvertisement.EncryptionPublicKey, shared);
        }

        byte[] key = HkdfSha256.DeriveKey(shared, default, ProtocolLabels.ShareKeyInfo(p, sender, recipient), 32);
        CryptographicOperations.ZeroMemory(shared);
        byte[] plain;
        try
        {
            plain = ShareCipher.Open(key, envelope.Ciphertext, ProtocolLabels.ShareAssociatedData(p, sender, recipient));
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            return new AccusationVerdict(true, $"the share envelope from '{p[sender].Name}' to '{p[recipient].Name}' does not decrypt ({ex.Message})");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }

        try
        {
            if (plain.Length != ProtocolLabels.SharePlaintextSize)
            {
                return new AccusationVerdict(true, $"the share envelope from '{p[sender].Name}' holds {plain.Length} bytes, not {ProtocolLabels.SharePlaintextSize}");
            }

            if (BinaryPrimitives.ReadUInt32BigEndian(plain) != (uint)sender || BinaryPrimitives.ReadUInt32BigEndian(plain.AsSpan(4)) != (uint)recipient)
            {
                return new AccusationVerdict(true, $"the share envelope from '{p[sender].Name}' names the wrong sender or recipient");
            }

            for (int offset = 8; offset < plain.Length; offset += Shamir.ElementBytes)
            {
                if (BinaryPrimitives.ReadUInt64LittleEndian(plain.AsSpan(offset)) >= Shamir.Prime)
                {
                    return new AccusationVerdict(true, $"the share envelope from '{p[sender].Name}' holds a share value not below 2^61 - 1");
                }
            }

            return new AccusationVerdict(false, $"the share envelope from '{p[sender].Name}' to '{p[recipient].Name}' is valid; the accusation is false");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }
}
