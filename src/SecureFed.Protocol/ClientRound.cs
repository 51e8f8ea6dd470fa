using System.Buffers.Binary;
using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// One site's side of one secure-aggregation round, as a state machine with no I/O. Methods must be called in stage
/// order; each validates what the aggregator relayed and throws <see cref="ProtocolViolationException"/> (a refusal:
/// nothing is revealed) or <see cref="RoundAbortedException"/> (fewer than t parties left).
/// </summary>
public sealed class ClientRound : IDisposable
{
    private readonly RoundParameters _p;
    private readonly Ed25519PrivateKey _identity;
    private readonly IRandomSource _random;
    private readonly int _self;
    private readonly HashSet<int> _holders; // u and its neighbours
    private X25519KeyPair? _encryptionKey;
    private X25519KeyPair? _maskingKey;
    private byte[]? _selfMaskSeed;
    private KeyAdvertisement? _ownAdvertisement;
    private Dictionary<int, KeyAdvertisement>? _advertisements; // U1 ∩ holders
    private byte[]? _ownBShare;
    private byte[]? _ownSShare;
    private readonly Dictionary<int, (byte[] B, byte[] S)> _received = []; // decrypted shares from U2 neighbours
    private readonly Dictionary<int, byte[]> _shareKeys = []; // pairwise share keys from ShareKeys, reused to decrypt, wiped after MaskInput
    private int[]? _signedSurvivors;

    /// <summary>Creates the client side for the participant named <paramref name="selfName"/>.</summary>
    public ClientRound(RoundParameters parameters, string selfName, Ed25519PrivateKey identity, IRandomSource? random = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(identity);
        _p = parameters;
        _identity = identity;
        _random = random ?? SystemRandomSource.Instance;
        Participant self = parameters.Find(selfName)
            ?? throw new ProtocolViolationException(ProtocolStage.AdvertiseKeys, $"this site ('{selfName}') is not in the round's cohort");
        if (!CryptographicOperations.FixedTimeEquals(self.IdentityPublicKey, identity.PublicKey))
        {
            throw new ProtocolViolationException(ProtocolStage.AdvertiseKeys,
                $"the cohort lists a different identity key for this site ('{selfName}') than the one it holds");
        }

        _self = self.Index;
        _holders = [.. parameters.Graph.ShareHolders(_self)];
    }

    /// <summary>This site's protocol index.</summary>
    public int Index => _self;

    /// <summary>The next stage this client expects.</summary>
    public ProtocolStage Stage { get; private set; } = ProtocolStage.AdvertiseKeys;

    /// <summary>The parameters of the round.</summary>
    public RoundParameters Parameters => _p;

    /// <summary>
    /// Stage 0: fresh key pairs and a fresh self-mask seed b_u; the public keys and the commitment to b_u are signed
    /// with the identity key.
    /// </summary>
    public KeyAdvertisement AdvertiseKeys()
    {
        Expect(ProtocolStage.AdvertiseKeys);
        _encryptionKey = X25519KeyPair.Generate(_random);
        _maskingKey = X25519KeyPair.Generate(_random);
        _selfMaskSeed = new byte[32];
        _random.Fill(_selfMaskSeed);
        byte[] commitment = ProtocolLabels.SelfMaskCommitment(_p, _self, _selfMaskSeed);
        byte[] transcript = ProtocolLabels.AdvertisementTranscript(_p, _self, _encryptionKey.PublicKey, _maskingKey.PublicKey, commitment);
        _ownAdvertisement = new KeyAdvertisement(_self, _encryptionKey.PublicKey, _maskingKey.PublicKey, _identity.Sign(transcript), commitment);
        Stage = ProtocolStage.ShareKeys;
        return _ownAdvertisement;
    }

    /// <summary>
    /// Stage 1: checks the relayed advertisements of this site's neighbours (signatures, keys, no strangers), then
    /// Shamir-shares b_u and s_u among the advertised holders and encrypts each share to its holder.
    /// </summary>
    public IReadOnlyList<EncryptedShare> ShareKeys(IReadOnlyList<KeyAdvertisement> advertisements)
    {
        ArgumentNullException.ThrowIfNull(advertisements);
        Expect(ProtocolStage.ShareKeys);
        var ads = new Dictionary<int, KeyAdvertisement>();
        foreach (KeyAdvertisement ad in advertisements)
        {
            if (!_holders.Contains(ad.Sender))
            {
                throw Violation($"the aggregator relayed an advertisement from {Describe(ad.Sender)}, which is not a neighbour of this site", ad.Sender);
            }

            if (!ads.TryAdd(ad.Sender, ad))
            {
                throw Violation("the aggregator relayed two advertisements from the same site", ad.Sender);
            }

            VerifyAdvertisement(_p, ad, ProtocolStage.ShareKeys);
        }

        if (!ads.TryGetValue(_self, out KeyAdvertisement? mine) || !SameAdvertisement(mine, _ownAdvertisement!))
        {
            throw Violation("the relayed set does not contain this site's own advertisement unchanged");
        }

        if (ads.Count < _p.Threshold)
        {
            Stage = ProtocolStage.Aborted;
            throw new RoundAbortedException(ProtocolStage.ShareKeys,
                $"only {ads.Count} of this site's {_holders.Count} share holders advertised keys; t = {_p.Threshold}");
        }

        _advertisements = ads;
        int[] xs = ads.Keys.Order().ToArray();
        Span<byte> sk = stackalloc byte[32];
        _maskingKey!.ExportPrivateKey(sk);
        // Protocol version 2 shares the clamped scalar (RFC 7748 decodeScalar25519; X25519 clamps anyway, so the masks are
        // unchanged): exactly one 32-byte string then rebuilds to the advertised public key, so a wrong share cannot
        // hide in the three low bits and the two high bits that clamping ignores.
        sk[0] &= 248;
        sk[31] &= 127;
        sk[31] |= 64;
        ShamirShare[] bShares = Shamir.Split(_selfMaskSeed, _p.Threshold, xs, _random);
        ShamirShare[] sShares = Shamir.Split(sk, _p.Threshold, xs, _random);
        CryptographicOperations.ZeroMemory(sk);

        var result = new List<EncryptedShare>(xs.Length - 1);
        for (int i = 0; i < xs.Length; i++)
        {
            int v = xs[i];
            if (v == _self)
            {
                _ownBShare = bShares[i].Value;
                _ownSShare = sShares[i].Value;
                continue;
            }

            // The key is symmetric in (u, v): the one that seals u's share to v also opens v's share to u in MaskInput.
            byte[] key = PairwiseShareKey(v);
            _shareKeys[v] = key;
            byte[] plain = ProtocolLabels.SharePlaintext(_self, v, bShares[i].Value, sShares[i].Value);
            byte[] sealedShare = ShareCipher.Seal(key, plain, ProtocolLabels.ShareAssociatedData(_p, _self, v), _random);
            CryptographicOperations.ZeroMemory(plain);
            CryptographicOperations.ZeroMemory(bShares[i].Value);
            CryptographicOperations.ZeroMemory(sShares[i].Value);
            result.Add(new EncryptedShare(_self, v, sealedShare));
        }

        Stage = ProtocolStage.MaskedInputCollection;
        return result;
    }

    /// <summary>
    /// Stage 2: decrypts and checks the shares addressed to this site (their senders form U2 in this neighbourhood), then
    /// writes y_u = x_u + PRG(b_u) + Σ_{v ∈ U2 ∩ N(u)} ±PRG(s_uv) mod 2^b into <paramref name="output"/>.
    /// </summary>
    public void MaskInput(IReadOnlyList<EncryptedShare> sharesForMe, ReadOnlySpan<uint> input, Span<uint> output)
    {
        ArgumentNullException.ThrowIfNull(sharesForMe);
        Expect(ProtocolStage.MaskedInputCollection);
        if (input.Length != _p.VectorLength || output.Length != _p.VectorLength)
        {
            throw new ArgumentException($"Input and output must have the round's vector length {_p.VectorLength}; got {input.Length} and {output.Length}.");
        }

        uint limit = _p.BitWidth == 32 ? uint.MaxValue : (1u << _p.BitWidth) - 1;
        for (int i = 0; i < input.Length; i++)
        {
            if (input[i] > limit)
            {
                throw new ArgumentException($"Input word {i} ({input[i]}) is not reduced modulo 2^{_p.BitWidth}.", nameof(input));
            }
        }

        foreach (EncryptedShare share in sharesForMe)
        {
            if (share.Recipient != _self)
            {
                throw Violation($"the aggregator relayed a share addressed to {Describe(share.Recipient)}", share.Sender);
            }

            if (share.Sender == _self || !_advertisements!.ContainsKey(share.Sender))
            {
                throw Violation($"the aggregator relayed a share from {Describe(share.Sender)}, which did not advertise keys to this site", share.Sender);
            }

            if (_received.ContainsKey(share.Sender))
            {
                throw Violation("the aggregator relayed two shares from the same site", share.Sender);
            }

            byte[] key = _shareKeys[share.Sender];
            byte[] plain;
            try
            {
                plain = ShareCipher.Open(key, share.Ciphertext, ProtocolLabels.ShareAssociatedData(_p, share.Sender, _self));
            }
            catch (Exception ex) when (ex is CryptographicException or ArgumentException)
            {
                throw Violation($"the share from {Describe(share.Sender)} does not decrypt ({ex.Message})", share.Sender);
            }

            if (plain.Length != ProtocolLabels.SharePlaintextSize
                || BinaryPrimitives.ReadUInt32BigEndian(plain) != (uint)share.Sender
                || BinaryPrimitives.ReadUInt32BigEndian(plain.AsSpan(4)) != (uint)_self)
            {
                CryptographicOperations.ZeroMemory(plain);
                throw Violation($"the share from {Describe(share.Sender)} names the wrong sender or recipient", share.Sender);
            }

            // Shamir share values are field elements below 2^61 − 1; anything else would only be revealed to make the
            // aggregator's reconstruction fail, so the share is refused here and never revealed.
            int badB = ShamirDecoder.FirstNonFieldElement(plain.AsSpan(8, ProtocolLabels.ShareValueSize));
            int badS = ShamirDecoder.FirstNonFieldElement(plain.AsSpan(8 + ProtocolLabels.ShareValueSize, ProtocolLabels.ShareValueSize));
            if (badB >= 0 || badS >= 0)
            {
                CryptographicOperations.ZeroMemory(plain);
                string which = badB >= 0 ? $"element {badB} of its b-share" : $"element {badS} of its s-share";
                throw Violation($"the share from {Describe(share.Sender)} holds a value that is not a field element ({which} is not below 2^61 - 1)", share.Sender);
            }

            _received[share.Sender] = (
                plain.AsSpan(8, ProtocolLabels.ShareValueSize).ToArray(),
                plain.AsSpan(8 + ProtocolLabels.ShareValueSize, ProtocolLabels.ShareValueSize).ToArray());
            CryptographicOperations.ZeroMemory(plain);
        }

        WipeShareKeys();
        if (_received.Count + 1 < _p.Threshold)
        {
            Stage = ProtocolStage.Aborted;
            throw new RoundAbortedException(ProtocolStage.MaskedInputCollection,
                $"only {_received.Count + 1} of this site's share holders completed ShareKeys; t = {_p.Threshold}");
        }

        input.CopyTo(output);
        MaskPrg.AddTo(_selfMaskSeed!, ProtocolLabels.SelfMaskDomain(_p, _self), _p.BitWidth, output);
        int[] peers = [.. _received.Keys.Order()];
        int workers = MaxDegreeOfParallelism > 0 ? MaxDegreeOfParallelism : Environment.ProcessorCount;
        workers = Math.Max(1, Math.Min(workers, peers.Length / MinPeersPerMaskingThread));
        if (workers == 1)
        {
            AddPairMasks(peers, 0, 1, output);
        }
        else
        {
            AddPairMasksInParallel(peers, workers, output);
        }

        Stage = ProtocolStage.ConsistencyCheck;
    }

    /// <summary>
    /// Threads for the pairwise masks in <see cref="MaskInput"/> (each peer's mask is one agreement and one PRG
    /// expansion of m words; modular addition is commutative, so the result is identical for any value).
    /// The default value is -1: every core.
    /// </summary>
    public int MaxDegreeOfParallelism { get; init; } = -1;

    /// <summary>
    /// The colluding sites this site guards against when it checks the consistency signatures before unmasking: it
    /// answers only with <see cref="RoundParameters.SignatureQuorum"/> of them, for this or the round's
    /// <see cref="RoundParameters.QuorumColluders"/>, whichever is larger (0, the default: the round's own quorum).
    /// </summary>
    public int Colluders
    {
        get => _colluders;
        init
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            _colluders = value;
        }
    }

    private readonly int _colluders;

    private static void WaitQuietly(Task[] tasks)
    {
        try
        {
            Task.WaitAll(tasks);
        }
        catch (AggregateException)
        {
            // inspected by the caller, task by task
        }
    }

    /// <summary>Below this many peers per thread the pairwise masks are added on the calling thread alone.</summary>
    private const int MinPeersPerMaskingThread = 8;

    /// <summary>Adds ±PRG(s_{u,v}) for peers[start], peers[start + step], ... into <paramref name="accumulator"/>.</summary>
    private void AddPairMasks(int[] peers, int start, int step, Span<uint> accumulator)
    {
        byte[] domain = ProtocolLabels.PairMaskDomain(_p);
        Span<byte> seed = stackalloc byte[32];
        using X25519Agreement agreement = _maskingKey!.CreateAgreement();
        try
        {
            for (int i = start; i < peers.Length; i += step)
            {
                int v = peers[i];
                PairMaskSeed(_p, agreement, _advertisements![v].MaskingPublicKey, _self, v, seed);
                if (_self < v)
                {
                    MaskPrg.AddTo(seed, domain, _p.BitWidth, accumulator);
                }
                else
                {
                    MaskPrg.SubtractFrom(seed, domain, _p.BitWidth, accumulator);
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>
    /// <see cref="AddPairMasks"/> on <paramref name="workers"/> threads: the calling thread adds its share of the peers
    /// straight into <paramref name="output"/>, the others into pooled partial sums that are added in and wiped.
    /// </summary>
    private void AddPairMasksInParallel(int[] peers, int workers, Span<uint> output)
    {
        int m = output.Length;
        var partials = new uint[workers - 1][];
        try
        {
            for (int w = 0; w < partials.Length; w++)
            {
                partials[w] = System.Buffers.ArrayPool<uint>.Shared.Rent(m);
                Array.Clear(partials[w], 0, m);
            }

            Task[] helpers = new Task[partials.Length];
            for (int w = 0; w < partials.Length; w++)
            {
                int start = w + 1;
                uint[] partial = partials[w];
                helpers[w] = Task.Run(() => AddPairMasks(peers, start, workers, partial.AsSpan(0, m)));
            }

            try
            {
                AddPairMasks(peers, 0, workers, output);
            }
            finally
            {
                // No helper may still write into a partial when it is wiped and returned below.
                WaitQuietly(helpers);
            }

            foreach (Task helper in helpers)
            {
                if (helper.Exception?.InnerException is Exception inner)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(inner); // as thrown, not wrapped
                }
            }

            foreach (uint[] partial in partials)
            {
                ModularVector.Add(output, partial.AsSpan(0, m), _p.BitWidth);
            }
        }
        finally
        {
            foreach (uint[]? partial in partials)
            {
                if (partial is not null)
                {
                    Array.Clear(partial, 0, m);
                    System.Buffers.ArrayPool<uint>.Shared.Return(partial);
                }
            }
        }
    }

    /// <summary>Stage 3: signs the survivor set U3 after checking it against what this site saw.</summary>
    public ConsistencySignature SignSurvivors(IReadOnlyList<int> survivors)
    {
        ArgumentNullException.ThrowIfNull(survivors);
        Expect(ProtocolStage.ConsistencyCheck);
        int[] set = CheckSurvivorSet(survivors, ProtocolStage.ConsistencyCheck);
        _signedSurvivors = set;
        Stage = ProtocolStage.Unmasking;
        return new ConsistencySignature(_self, _identity.Sign(ProtocolLabels.ConsistencyTranscript(_p, _self, set)));
    }

    /// <summary>
    /// Stage 4: reveals, for each peer whose share this site holds, the b-share when the peer survived and the s-share
    /// when it dropped. Refuses (and reveals nothing) when the request differs from the signed survivor set, asks for
    /// both shares of any peer, or carries fewer than t valid consistency signatures. Answers once per round.
    /// </summary>
    public UnmaskResponse Unmask(UnmaskRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        Expect(ProtocolStage.Unmasking);
        Stage = ProtocolStage.Completed; // one answer per round, whatever happens below
        int[] survivors = request.Survivors.Distinct().Order().ToArray();
        if (survivors.Length != request.Survivors.Count || !survivors.SequenceEqual(_signedSurvivors!))
        {
            throw Refusal("the unmasking request's survivor set differs from the one this site signed");
        }

        var survivorSet = new HashSet<int>(survivors);
        foreach (int d in request.Dropped)
        {
            if (survivorSet.Contains(d))
            {
                throw Refusal($"the aggregator asked for both shares of {Describe(d)} (listed as survivor and as dropped)", d);
            }
        }

        var signers = new HashSet<int>();
        foreach (ConsistencySignature sig in request.Signatures)
        {
            if (!survivorSet.Contains(sig.Sender))
            {
                throw Refusal($"a consistency signature comes from {Describe(sig.Sender)}, which is not a survivor", sig.Sender);
            }

            if (!signers.Add(sig.Sender))
            {
                throw Refusal("two consistency signatures from the same site", sig.Sender);
            }

            if (sig.Signature is null || sig.Signature.Length != Ed25519.SignatureSize
                || !Ed25519.Verify(_p[sig.Sender].IdentityPublicKey, ProtocolLabels.ConsistencyTranscript(_p, sig.Sender, survivors), sig.Signature))
            {
                throw Refusal($"the consistency signature of {Describe(sig.Sender)} does not verify for this survivor set", sig.Sender);
            }
        }

        int colluders = Math.Max(Colluders, _p.QuorumColluders);
        int quorum = _p.SignatureQuorum(colluders);
        if (signers.Count < quorum)
        {
            throw Refusal(quorum == _p.Threshold
                ? $"only {signers.Count} survivors signed the survivor set; t = {_p.Threshold}"
                : $"only {signers.Count} survivors signed the survivor set; this site requires {quorum} of the {_p.CohortSize} (t = {_p.Threshold}; "
                    + $"fewer would let the aggregator and {colluders} colluding site{(colluders == 1 ? "" : "s")} have two different survivor sets signed)");
        }

        var dropped = new HashSet<int>(request.Dropped);
        var bShares = new List<RevealedShare>();
        var sShares = new List<RevealedShare>();
        if (survivorSet.Contains(_self))
        {
            bShares.Add(new RevealedShare(_self, _ownBShare!.ToArray()));
        }

        foreach ((int v, (byte[] b, byte[] s)) in _received.OrderBy(kv => kv.Key))
        {
            if (survivorSet.Contains(v))
            {
                bShares.Add(new RevealedShare(v, b.ToArray()));
            }
            else if (dropped.Contains(v))
            {
                sShares.Add(new RevealedShare(v, s.ToArray()));
            }
        }

        Dispose();
        return new UnmaskResponse(_self, bShares, sShares);
    }

    /// <summary>Verifies an advertisement's signature and keys; throws a violation naming the sender otherwise.</summary>
    internal static void VerifyAdvertisement(RoundParameters p, KeyAdvertisement ad, ProtocolStage stage)
    {
        if (ad.Sender < 1 || ad.Sender > p.CohortSize)
        {
            throw new ProtocolViolationException(stage, $"advertisement from unknown index {ad.Sender}");
        }

        if (ad.EncryptionPublicKey is null || ad.MaskingPublicKey is null || ad.Signature is null
            || ad.EncryptionPublicKey.Length != X25519.KeySize || ad.MaskingPublicKey.Length != X25519.KeySize
            || ad.Signature.Length != Ed25519.SignatureSize)
        {
            throw new ProtocolViolationException(stage, "advertisement has keys or a signature of the wrong size", ad.Sender);
        }

        if (ad.SelfMaskCommitment is null || ad.SelfMaskCommitment.Length != ProtocolLabels.SelfMaskCommitmentSize)
        {
            throw new ProtocolViolationException(stage,
                $"advertisement carries a self-mask commitment of {ad.SelfMaskCommitment?.Length ?? 0} bytes; protocol version {ProtocolLabels.ProtocolVersion} requires {ProtocolLabels.SelfMaskCommitmentSize}", ad.Sender);
        }

        try
        {
            X25519.ValidatePublicKey(ad.EncryptionPublicKey);
            X25519.ValidatePublicKey(ad.MaskingPublicKey);
        }
        catch (CryptographicException ex)
        {
            throw new ProtocolViolationException(stage, $"advertised an invalid X25519 public key ({ex.Message})", ad.Sender);
        }

        byte[] transcript = ProtocolLabels.AdvertisementTranscript(p, ad.Sender, ad.EncryptionPublicKey, ad.MaskingPublicKey, ad.SelfMaskCommitment);
        if (!Ed25519.Verify(p[ad.Sender].IdentityPublicKey, transcript, ad.Signature))
        {
            throw new ProtocolViolationException(stage, $"the signature on the key advertisement of '{p[ad.Sender].Name}' does not verify", ad.Sender);
        }
    }

    /// <summary>The 32-byte pairwise mask seed of u and v from u's masking key and v's public masking key.</summary>
    internal static void PairMaskSeed(RoundParameters p, X25519KeyPair mine, ReadOnlySpan<byte> peerPublic, int u, int v, Span<byte> seed)
    {
        Span<byte> shared = stackalloc byte[32];
        mine.DeriveSharedSecret(peerPublic, shared);
        HkdfSha256.DeriveKey(shared, default, ProtocolLabels.PairMaskSeedInfo(p, u, v), seed);
        CryptographicOperations.ZeroMemory(shared);
    }

    /// <summary><see cref="PairMaskSeed(RoundParameters, X25519KeyPair, ReadOnlySpan{byte}, int, int, Span{byte})"/> through a reused agreement context.</summary>
    internal static void PairMaskSeed(RoundParameters p, X25519Agreement mine, ReadOnlySpan<byte> peerPublic, int u, int v, Span<byte> seed)
    {
        Span<byte> shared = stackalloc byte[32];
        mine.DeriveSharedSecret(peerPublic, shared);
        HkdfSha256.DeriveKey(shared, default, ProtocolLabels.PairMaskSeedInfo(p, u, v), seed);
        CryptographicOperations.ZeroMemory(shared);
    }

    /// <summary>The same seed with a prepared peer key (the aggregator reuses each survivor's key for every dropped neighbour).</summary>
    internal static void PairMaskSeed(RoundParameters p, X25519Agreement mine, X25519PeerKey peer, int u, int v, Span<byte> seed)
    {
        Span<byte> shared = stackalloc byte[32];
        mine.DeriveSharedSecret(peer, shared);
        HkdfSha256.DeriveKey(shared, default, ProtocolLabels.PairMaskSeedInfo(p, u, v), seed);
        CryptographicOperations.ZeroMemory(shared);
    }

    /// <summary>
    /// After <see cref="MaskInput"/> refused a peer's share envelope: checks <paramref name="envelope"/> again
    /// (<see cref="ShareAccusation.Judge"/>) and, when it is invalid, returns a signed complaint naming its sender
    /// (<see cref="ShareAccusation.CreateComplaint"/>; the site takes no further part in the attempt). The complaint
    /// reveals no key: a revealed share-encryption key would open every envelope addressed to this site, and an
    /// aggregator that altered relayed envelopes could collect t such keys and unmask every other site's input. Returns
    /// null when the envelope is valid or this site cannot attribute it (so an honest site never accuses falsely).
    /// </summary>
    public ShareAccusation? Accuse(EncryptedShare envelope)
    {
        ArgumentNullException.ThrowIfNull(envelope);
        if (_encryptionKey is null || _advertisements is null || envelope.Recipient != _self || envelope.Sender == _self
            || !_advertisements.TryGetValue(envelope.Sender, out KeyAdvertisement? senderAd))
        {
            return null;
        }

        Span<byte> sk = stackalloc byte[X25519.KeySize];
        _encryptionKey.ExportPrivateKey(sk);
        try
        {
            AccusationVerdict verdict = ShareAccusation.Judge(_p, _self, sk, senderAd, envelope);
            return verdict.AccusedAtFault ? ShareAccusation.CreateComplaint(_p, _self, envelope.Sender, envelope.Ciphertext, _identity) : null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(sk);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _encryptionKey?.Dispose();
        _maskingKey?.Dispose();
        if (_selfMaskSeed is not null)
        {
            CryptographicOperations.ZeroMemory(_selfMaskSeed);
        }

        if (_ownBShare is not null)
        {
            CryptographicOperations.ZeroMemory(_ownBShare);
        }

        if (_ownSShare is not null)
        {
            CryptographicOperations.ZeroMemory(_ownSShare);
        }

        foreach ((byte[] b, byte[] s) in _received.Values)
        {
            CryptographicOperations.ZeroMemory(b);
            CryptographicOperations.ZeroMemory(s);
        }

        _received.Clear();
        WipeShareKeys();
    }

    private void WipeShareKeys()
    {
        foreach (byte[] key in _shareKeys.Values)
        {
            CryptographicOperations.ZeroMemory(key);
        }

        _shareKeys.Clear();
    }

    private int[] CheckSurvivorSet(IReadOnlyList<int> survivors, ProtocolStage stage)
    {
        int[] set = survivors.Distinct().Order().ToArray();
        if (set.Length != survivors.Count)
        {
            throw Violation("the survivor set lists a site twice");
        }

        if (!set.Contains(_self))
        {
            throw Violation("the survivor set does not contain this site although it sent its masked input");
        }

        foreach (int v in set)
        {
            if (v < 1 || v > _p.CohortSize)
            {
                throw Violation($"the survivor set names unknown index {v}");
            }

            if (v != _self && _holders.Contains(v) && !_received.ContainsKey(v))
            {
                throw Violation($"the survivor set contains {Describe(v)}, which never completed ShareKeys with this site", v);
            }
        }

        if (set.Length < _p.Threshold)
        {
            Stage = ProtocolStage.Aborted;
            throw new RoundAbortedException(stage, $"only {set.Length} survivors; t = {_p.Threshold}");
        }

        return set;
    }

    private byte[] PairwiseShareKey(int peer)
    {
        Span<byte> shared = stackalloc byte[32];
        _encryptionKey!.DeriveSharedSecret(_advertisements![peer].EncryptionPublicKey, shared);
        byte[] key = HkdfSha256.DeriveKey(shared, default, ProtocolLabels.ShareKeyInfo(_p, _self, peer), 32);
        CryptographicOperations.ZeroMemory(shared);
        return key;
    }

    private static bool SameAdvertisement(KeyAdvertisement a, KeyAdvertisement b)
        => a.Sender == b.Sender && a.EncryptionPublicKey.AsSpan().SequenceEqual(b.EncryptionPublicKey)
           && a.MaskingPublicKey.AsSpan().SequenceEqual(b.MaskingPublicKey) && a.Signature.AsSpan().SequenceEqual(b.Signature)
           && a.SelfMaskCommitment.AsSpan().SequenceEqual(b.SelfMaskCommitment);

    private string Describe(int index) => index >= 1 && index <= _p.CohortSize ? $"'{_p[index].Name}' (#{index})" : $"unknown index {index}";

    private void Expect(ProtocolStage stage)
    {
        if (Stage != stage)
        {
            throw new ProtocolViolationException(stage, $"out of order: this site is at stage {Stage}");
        }
    }

    private ProtocolViolationException Violation(string reason, int? party = null) => new(Stage, reason, party);

    private static ProtocolViolationException Refusal(string reason, int? party = null) => new(ProtocolStage.Unmasking, "refused to unmask: " + reason, party);
}
