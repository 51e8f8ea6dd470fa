using System.Buffers.Binary;
using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// Every byte string that is signed, fed to a KDF or used as associated data in a round. docs/PROTOCOL.md lists the
/// same definitions; "ctx" is <see cref="RoundParameters.Context"/>, names are site names, and
/// <c>DomainLabel.Encode</c> is the length-prefixed encoding of SecureFed.Crypto.
/// </summary>
public static class ProtocolLabels
{
    /// <summary>
    /// The protocol version this library speaks, carried in <c>RoundAnnouncement.protocol_version</c>. Version 2 added
    /// the commitment to the self-mask seed in the signed key advertisement; version 3 the federated-evaluation slots of
    /// the input vector and their layout in the round digest (docs/PROTOCOL.md).
    /// </summary>
    public const int ProtocolVersion = 3;

    /// <summary>Size of the commitment to a self-mask seed: a SHA-256 digest.</summary>
    public const int SelfMaskCommitmentSize = 32;

    /// <summary>Size of a Shamir share value of a 32-byte secret: ⌈32/7⌉ field elements of 8 bytes.</summary>
    public const int ShareValueSize = 40;

    /// <summary>Plaintext of an encrypted share: u32be sender, u32be recipient, b-share, s-share.</summary>
    public const int SharePlaintextSize = 8 + (2 * ShareValueSize);

    /// <summary>
    /// Signed by a site in AdvertiseKeys: Encode("advertise-keys", ctx, round, name) ‖ c_pk ‖ s_pk ‖ com_b (protocol
    /// version 2; version 1 had no commitment).
    /// </summary>
    public static byte[] AdvertisementTranscript(RoundParameters p, int sender, ReadOnlySpan<byte> encryptionKey, ReadOnlySpan<byte> maskingKey, ReadOnlySpan<byte> selfMaskCommitment)
    {
        byte[] label = DomainLabel.Encode("advertise-keys", p.Context, p.Round, p[sender].Name);
        byte[] result = new byte[label.Length + encryptionKey.Length + maskingKey.Length + selfMaskCommitment.Length];
        label.CopyTo(result, 0);
        encryptionKey.CopyTo(result.AsSpan(label.Length));
        maskingKey.CopyTo(result.AsSpan(label.Length + encryptionKey.Length));
        selfMaskCommitment.CopyTo(result.AsSpan(label.Length + encryptionKey.Length + maskingKey.Length));
        return result;
    }

    /// <summary>
    /// The commitment to u's self-mask seed, published in its signed advertisement before any share exists:
    /// com_b = SHA-256(Encode("self-mask-commitment", ctx, round, name_u) ‖ b_u). The aggregator accepts a rebuilt b_u
    /// only when it matches, so wrong revealed shares cannot silently change the sum. b_u is 32 uniform bytes, so the
    /// digest reveals nothing usable about it.
    /// </summary>
    public static byte[] SelfMaskCommitment(RoundParameters p, int owner, ReadOnlySpan<byte> selfMaskSeed)
    {
        byte[] label = DomainLabel.Encode("self-mask-commitment", p.Context, p.Round, p[owner].Name);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(label);
        hash.AppendData(selfMaskSeed);
        return hash.GetHashAndReset();
    }

    /// <summary>HKDF info for the pairwise share-encryption key of u and v: Encode("share-key", ctx, round, name_min, name_max).</summary>
    public static byte[] ShareKeyInfo(RoundParameters p, int u, int v)
        => DomainLabel.Encode("share-key", p.Context, p.Round, p[Math.Min(u, v)].Name, p[Math.Max(u, v)].Name);

    /// <summary>AES-GCM associated data of a share from sender to recipient: Encode("share-ad", ctx, round, sender, recipient).</summary>
    public static byte[] ShareAssociatedData(RoundParameters p, int sender, int recipient)
        => DomainLabel.Encode("share-ad", p.Context, p.Round, p[sender].Name, p[recipient].Name);

    /// <summary>HKDF info for the pairwise mask seed: Encode("pair-mask-seed", ctx, round, name_min, name_max).</summary>
    public static byte[] PairMaskSeedInfo(RoundParameters p, int u, int v)
        => DomainLabel.Encode("pair-mask-seed", p.Context, p.Round, p[Math.Min(u, v)].Name, p[Math.Max(u, v)].Name);

    /// <summary>PRG domain of pairwise masks: Encode("pair-mask", ctx, round).</summary>
    public static byte[] PairMaskDomain(RoundParameters p) => DomainLabel.Encode("pair-mask", p.Context, p.Round);

    /// <summary>PRG domain of u's self mask: Encode("self-mask", ctx, round, name_u).</summary>
    public static byte[] SelfMaskDomain(RoundParameters p, int u) => DomainLabel.Encode("self-mask", p.Context, p.Round, p[u].Name);

    /// <summary>
    /// Signed in ConsistencyCheck: Encode("consistency", ctx, round, signer) ‖ Encode("survivors", name_1, …) with the
    /// survivor names in ascending index order.
    /// </summary>
    public static byte[] ConsistencyTranscript(RoundParameters p, int signer, IReadOnlyList<int> survivors)
    {
        byte[] head = DomainLabel.Encode("consistency", p.Context, p.Round, p[signer].Name);
        string[] names = survivors.OrderBy(i => i).Select(i => p[i].Name).ToArray();
        byte[] set = DomainLabel.Encode("survivors", names);
        return [.. head, .. set];
    }

    /// <summary>Builds the share plaintext.</summary>
    internal static byte[] SharePlaintext(int sender, int recipient, ReadOnlySpan<byte> bShare, ReadOnlySpan<byte> sShare)
    {
        byte[] plain = new byte[SharePlaintextSize];
        BinaryPrimitives.WriteUInt32BigEndian(plain, (uint)sender);
        BinaryPrimitives.WriteUInt32BigEndian(plain.AsSpan(4), (uint)recipient);
        bShare.CopyTo(plain.AsSpan(8));
        sShare.CopyTo(plain.AsSpan(8 + ShareValueSize));
        return plain;
    }
}
