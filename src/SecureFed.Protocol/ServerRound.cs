using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The aggregator's side of one secure-aggregation round, as a state machine with no I/O and no clock: the hosting
/// service calls <c>Accept*</c> as messages arrive and <c>Close*</c> when a stage's deadline passes or every expected
/// message is in. Every bad input throws <see cref="ProtocolViolationException"/> and is not used; a stage that ends
/// with fewer than t parties aborts the round (<see cref="RoundAbortedException"/>) before anything is revealed.
/// Masked inputs are added into one running sum as they arrive, so memory is O(m), not O(n·m).
/// </summary>
public sealed partial class ServerRound
{
    private readonly RoundParameters _p;
    private readonly object _gate = new();
    private readonly Dictionary<int, KeyAdvertisement> _u1 = [];
    private readonly Dictionary<int, List<EncryptedShare>> _sharesFrom = [];

    // The shares by recipient, each list ordered by sender: built once when ShareKeys closes (no share is taken after
    // that), so relaying a site's shares costs its own k shares, not a scan of all n·k under the lock. Read without the
    // lock once set, as U1 is once AdvertiseKeys closed (_u1Closed): neither changes again, and a relay must not wait
    // for the lock while Finish or UnmaskingShortfall holds it for the whole reconstruction (seconds at n = 500), with
    // a site's concurrent calls each parking a thread-pool thread on it (hostile-site review, session 57).
    private volatile Dictionary<int, EncryptedShare[]>? _sharesTo;
    private volatile Dictionary<int, KeyAdvertisement>? _u1Closed;
    private readonly HashSet<int> _u3 = [];
    private readonly Dictionary<int, ConsistencySignature> _u4 = [];
    private readonly Dictionary<int, UnmaskResponse> _u5 = [];
    private readonly uint[] _sum;
    private int[]? _u2Sorted;
    private int[]? _u3Sorted;
    private UnmaskRequest? _unmaskRequest;

    /// <summary>Creates the server side of a round.</summary>
    public ServerRound(RoundParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _p = parameters;
        _sum = new uint[parameters.VectorLength];
    }

    /// <summary>The round's parameters.</summary>
    public RoundParameters Parameters => _p;

    /// <summary>The stage currently collecting messages.</summary>
    public ProtocolStage Stage { get; private set; } = ProtocolStage.AdvertiseKeys;

    /// <summary>Why the round was aborted, when it was.</summary>
    public string? AbortReason { get; private set; }

    /// <summary>Parties that have delivered their message for the current stage.</summary>
    public IReadOnlyCollection<int> Delivered
    {
        get
        {
            lock (_gate)
            {
                return Stage switch
                {
                    ProtocolStage.AdvertiseKeys => [.. _u1.Keys],
                    ProtocolStage.ShareKeys => [.. _sharesFrom.Keys],
                    ProtocolStage.MaskedInputCollection => [.. _u3],
                    ProtocolStage.ConsistencyCheck => [.. _u4.Keys],
                    ProtocolStage.Unmasking => [.. _u5.Keys],
                    _ => [],
                };
            }
        }
    }

    /// <summary>Parties expected at the current stage (the previous stage's survivors).</summary>
    public IReadOnlyCollection<int> Expected
    {
        get
        {
            lock (_gate)
            {
                return Stage switch
                {
                    ProtocolStage.AdvertiseKeys => [.. _p.Participants.Select(x => x.Index)],
                    ProtocolStage.ShareKeys => [.. _u1.Keys],
                    ProtocolStage.MaskedInputCollection => _u2Sorted ?? [],
                    ProtocolStage.ConsistencyCheck => _u3Sorted ?? [],
                    ProtocolStage.Unmasking => [.. _u4.Keys],
                    _ => [],
                };
            }
        }
    }

    /// <summary>The survivor signatures and unmasking responses accepted so far (what a holder of the ended round keeps to answer retries).</summary>
    public AcceptedLateMessages AcceptedSoFar()
    {
        lock (_gate)
        {
            return new AcceptedLateMessages(_u4.ToDictionary(kv => kv.Key, kv => kv.Value.Signature), _u5.Keys);
        }
    }

    /// <summary>True when every expected party has delivered for the current stage.</summary>
    public bool StageComplete => Delivered.Count >= Expected.Count;

    // ---- Stage 0 -------------------------------------------------------------------------------------------

    /// <summary>Accepts a signed key advertisement. Returns false for an identical duplicate (idempotent retry).</summary>
    public bool AcceptAdvertisement(KeyAdvertisement advertisement)
    {
        ArgumentNullException.ThrowIfNull(advertisement);
        lock (_gate)
        {
            if (_u1.TryGetValue(advertisement.Sender, out KeyAdvertisement? accepted)
                && accepted.EncryptionPublicKey.AsSpan().SequenceEqual(advertisement.EncryptionPublicKey)
                && accepted.MaskingPublicKey.AsSpan().SequenceEqual(advertisement.MaskingPublicKey)
                && accepted.Signature.AsSpan().SequenceEqual(advertisement.Signature)
                && accepted.SelfMaskCommitment.AsSpan().SequenceEqual(advertisement.SelfMaskCommitment))
            {
                // A retry of the accepted copy (its reply was lost), before or after the stage closed: the bytes are the ones
                // already verified, so it is answered without verifying the signature again (a site repeating it costs a compare).
                return false;
            }

            Expect(ProtocolStage.AdvertiseKeys, advertisement.Sender);
            ClientRound.VerifyAdvertisement(_p, advertisement, ProtocolStage.AdvertiseKeys);
            if (_u1.TryGetValue(advertisement.Sender, out KeyAdvertisement? existing))
            {
                if (existing.EncryptionPublicKey.AsSpan().SequenceEqual(advertisement.EncryptionPublicKey)
                    && existing.MaskingPublicKey.AsSpan().SequenceEqual(advertisement.MaskingPublicKey)
                    && existing.SelfMaskCommitment.AsSpan().SequenceEqual(advertisement.SelfMaskCommitment))
                {
                    return false;
                }

                throw new ProtocolViolationException(ProtocolStage.AdvertiseKeys, "already advertised different keys or a different self-mask commitment in this round", advertisement.Sender);
            }

            _u1[advertisement.Sender] = advertisement;
            return true;
        }
    }

    /// <summary>Ends AdvertiseKeys: U1 = the advertisers. Aborts below t.</summary>
    public IReadOnlyList<int> CloseAdvertiseKeys()
    {
        lock (_gate)
        {
            Expect(ProtocolStage.AdvertiseKeys, null);
            RequireAtLeastThreshold(_u1.Count, "advertised keys");
            Stage = ProtocolStage.ShareKeys;
            _u1Closed = new Dictionary<int, KeyAdvertisement>(_u1);
            return [.. _u1.Keys.Order()];
        }
    }

    /// <summary>The advertisements to relay to <paramref name="recipient"/>: its share holders (itself and neighbours) in U1.</summary>
    public IReadOnlyList<KeyAdvertisement> AdvertisementsFor(int recipient)
    {
        CheckIndex(recipient, ProtocolStage.ShareKeys);
        if (_u1Closed is { } closed)
        {
            return [.. _p.Graph.ShareHolders(recipient).Where(closed.ContainsKey).Select(v => closed[v])];
        }

        lock (_gate)
        {
            return [.. _p.Graph.ShareHolders(recipient).Where(_u1.ContainsKey).Select(v => _u1[v])];
        }
    }

    // ---- Stage 1 -------------------------------------------------------------------------------------------

    /// <summary>
    /// Accepts the encrypted shares of <paramref name="sender"/>: exactly one per holder of its secrets in U1 other
    /// than itself, each of the right size. Returns false for an identical duplicate.
    /// </summary>
    public bool AcceptShares(int sender, IReadOnlyList<EncryptedShare> shares)
    {
        ArgumentNullException.ThrowIfNull(shares);
        lock (_gate)
        {
            if (Stage > ProtocolStage.ShareKeys && _sharesFrom.TryGetValue(sender, out List<EncryptedShare>? accepted)
                && accepted.Count == shares.Count
                && accepted.OrderBy(x => x.Recipient).Zip(shares.OrderBy(x => x.Recipient))
                    .All(pair => pair.First.Recipient == pair.Second.Recipient && pair.First.Ciphertext.AsSpan().SequenceEqual(pair.Second.Ciphertext)))
            {
                return false; // a retry whose first copy was accepted before the stage closed (the reply was lost)
            }

            Expect(ProtocolStage.ShareKeys, sender);
            CheckShareCount(_p, sender, shares.Count);
            if (!_u1.ContainsKey(sender))
            {
                throw new ProtocolViolationException(ProtocolStage.ShareKeys, "did not advertise keys in this round", sender);
            }

            var expected = new HashSet<int>(_p.Graph.Neighbors(sender).Where(_u1.ContainsKey));
            var seen = new HashSet<int>();
            int size = ShareCipher.Overhead + ProtocolLabels.SharePlaintextSize;
            foreach (EncryptedShare share in shares)
            {
                if (share.Sender != sender)
                {
                    throw new ProtocolViolationException(ProtocolStage.ShareKeys, $"submitted a share claiming to come from index {share.Sender}", sender);
                }

                if (!expected.Contains(share.Recipient))
                {
                    throw new ProtocolViolationException(ProtocolStage.ShareKeys, $"addressed a share to index {share.Recipient}, which is not one of its advertised neighbours", sender);
                }

                if (!seen.Add(share.Recipient))
                {
                    throw new ProtocolViolationException(ProtocolStage.ShareKeys, $"addressed two shares to index {share.Recipient}", sender);
                }

                if (share.Ciphertext is null || share.Ciphertext.Length != size)
                {
                    throw new ProtocolViolationException(ProtocolStage.ShareKeys, $"sent a share of {share.Ciphertext?.Length ?? 0} bytes; expected {size}", sender);
                }
            }

            if (seen.Count != expected.Count)
            {
                throw new ProtocolViolationException(ProtocolStage.ShareKeys, $"sent {seen.Count} shares; expected one for each of its {expected.Count} advertised neighbours", sender);
            }

            if (_sharesFrom.TryGetValue(sender, out List<EncryptedShare>? existing))
            {
                if (existing.Count == shares.Count && existing.OrderBy(s => s.Recipient).Zip(shares.OrderBy(s => s.Recipient))
                        .All(pair => pair.First.Ciphertext.AsSpan().SequenceEqual(pair.Second.Ciphertext)))
                {
                    return false;
                }

                throw new ProtocolViolationException(ProtocolStage.ShareKeys, "already sent different shares in this round", sender);
            }

            _sharesFrom[sender] = [.. shares];
            return true;
        }
    }

    /// <summary>
    /// Refuses a ShareKeys message of <paramref name="count"/> shares from <paramref name="sender"/> that holds more shares
    /// than the sender has neighbours in the round's masking graph (one share to each, at most n − 1), before any share is
    /// looked at: the aggregator calls it before it copies the shares out of the request (hostile-site review: a request
    /// of ~33,000 well-formed entries (about 124 bytes each on the wire) fits the 4 MiB message limit, and every one was copied, ~6 MB, and on the
    /// cluster sent on to the round grain, before the first wrong one was refused). <see cref="AcceptShares"/> checks it too.
    /// </summary>
    /// <exception cref="ProtocolViolationException">An unknown sender index, or more shares than its neighbours; the reason names both numbers.</exception>
    public static void CheckShareCount(RoundParameters parameters, int sender, int count)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (sender < 1 || sender > parameters.CohortSize)
        {
            throw new ProtocolViolationException(ProtocolStage.ShareKeys, $"unknown participant index {sender}");
        }

        int neighbours = parameters.Graph.Neighbors(sender).Count;
        if (count > neighbours)
        {
            throw new ProtocolViolationException(ProtocolStage.ShareKeys,
                $"sent {count} shares; it has {neighbours} neighbours in the round's masking graph and sends at most one share to each", sender);
        }
    }

    /// <summary>Ends ShareKeys: U2 = the senders. Aborts below t.</summary>
    public IReadOnlyList<int> CloseShareKeys()
    {
        lock (_gate)
        {
            Expect(ProtocolStage.ShareKeys, null);
            RequireAtLeastThreshold(_sharesFrom.Count, "sent their shares");
            _u2Sorted = [.. _sharesFrom.Keys.Order()];
            _sharesTo = _sharesFrom.Values.SelectMany(list => list).GroupBy(share => share.Recipient)
                .ToDictionary(group => group.Key, group => group.OrderBy(share => share.Sender).ToArray());
            Stage = ProtocolStage.MaskedInputCollection;
            return _u2Sorted;
        }
    }

    /// <summary>The encrypted shares to relay to <paramref name="recipient"/>: those addressed to it by members of U2.</summary>
    public IReadOnlyList<EncryptedShare> SharesFor(int recipient)
    {
        CheckIndex(recipient, ProtocolStage.MaskedInputCollection);
        if (_sharesTo is { } closed)
        {
            return closed.TryGetValue(recipient, out EncryptedShare[]? shares) ? Array.AsReadOnly(shares) : [];
        }

        lock (_gate)
        {
            if (_sharesTo is { } justClosed)
            {
                return justClosed.TryGetValue(recipient, out EncryptedShare[]? shares) ? Array.AsReadOnly(shares) : [];
            }

            // ShareKeys still open: the shares taken so far.
            return [.. _sharesFrom.Values.SelectMany(list => list).Where(s => s.Recipient == recipient).OrderBy(s => s.Sender)];
        }
    }

    // ---- Stage 2 -------------------------------------------------------------------------------------------

    /// <summary>
    /// Adds the complete masked input of <paramref name="sender"/> into the running sum. Every word must be reduced
    /// modulo 2^b and the length must be m. A second input from the same sender is refused (the caller deduplicates
    /// identical retries by digest before calling).
    /// </summary>
    public void AcceptMaskedInput(int sender, ReadOnlySpan<uint> maskedInput)
    {
        ThrowIfSliced();
        lock (_gate)
        {
            Expect(ProtocolStage.MaskedInputCollection, sender);
            if (Array.BinarySearch(_u2Sorted!, sender) < 0)
            {
                throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection, "did not complete ShareKeys in this round", sender);
            }

            if (maskedInput.Length != _p.VectorLength)
            {
                throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection, $"sent a vector of {maskedInput.Length} words; the round's length is {_p.VectorLength}", sender);
            }

            if (_u3.Contains(sender))
            {
                throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection, "already sent its masked input", sender);
            }

            if (_p.BitWidth < 32)
            {
                uint limit = (1u << _p.BitWidth) - 1;
                for (int i = 0; i < maskedInput.Length; i++)
                {
                    if (maskedInput[i] > limit)
                    {
                        throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection, $"word {i} is not reduced modulo 2^{_p.BitWidth}", sender);
                    }
                }
            }

            ModularVector.Add(_sum, maskedInput, _p.BitWidth);
            _u3.Add(sender);
        }
    }

    /// <summary>Ends MaskedInputCollection: U3 = those whose input is in the sum. Aborts below t.</summary>
    public IReadOnlyList<int> CloseMaskedInput()
    {
        lock (_gate)
        {
            Expect(ProtocolStage.MaskedInputCollection, null);
            RequireAtLeastThreshold(_u3.Count, "sent masked inputs");
            _u3Sorted = [.. _u3.Order()];
            Stage = ProtocolStage.ConsistencyCheck;
            return _u3Sorted;
        }
    }

    // ---- Stage 3 -------------------------------------------------------------------------------------------

    /// <summary>Accepts a survivor's signature over U3 (verified here). Returns false for a duplicate.</summary>
    public bool AcceptConsistencySignature(ConsistencySignature signature)
    {
        ArgumentNullException.ThrowIfNull(signature);
        lock (_gate)
        {
            if (Stage > ProtocolStage.ConsistencyCheck && _u4.TryGetValue(signature.Sender, out ConsistencySignature? accepted)
                && signature.Signature is not null && accepted.Signature.AsSpan().SequenceEqual(signature.Signature))
            {
                return false; // a retry whose first copy was accepted before the stage closed (the reply was lost)
            }

            Expect(ProtocolStage.ConsistencyCheck, signature.Sender);
            if (Array.BinarySearch(_u3Sorted!, signature.Sender) < 0)
            {
                throw new ProtocolViolationException(ProtocolStage.ConsistencyCheck, "is not in the survivor set", signature.Sender);
            }

            if (signature.Signature is null || signature.Signature.Length != Ed25519.SignatureSize
                || !Ed25519.Verify(_p[signature.Sender].IdentityPublicKey, ProtocolLabels.ConsistencyTranscript(_p, signature.Sender, _u3Sorted!), signature.Signature))
            {
                throw new ProtocolViolationException(ProtocolStage.ConsistencyCheck, "the consistency signature does not verify", signature.Sender);
            }

            return _u4.TryAdd(signature.Sender, signature);
        }
    }

    /// <summary>
    /// Ends ConsistencyCheck and builds the unmasking request. Aborts below the round's consistency quorum
    /// (<see cref="RoundParameters.QuorumColluders"/>: t under the complete graph unless the aggregator announced more
    /// colluders; a majority sized for the planned corrupt fraction under a sparse one), which honest responders require too.
    /// </summary>
    public UnmaskRequest CloseConsistency()
    {
        lock (_gate)
        {
            Expect(ProtocolStage.ConsistencyCheck, null);
            RequireAtLeastThreshold(_u4.Count, "signed the survivor set");
            int colluders = _p.QuorumColluders;
            int quorum = _p.SignatureQuorum(colluders);
            if (_u4.Count < quorum)
            {
                string why = _p.ConsistencyColluders >= _p.DefaultColluders ? "the round's announced consistency quorum" : "a round over a sparse masking graph";
                Abort(Stage, $"only {_u4.Count} sites signed the survivor set; {why} needs {quorum} of its {_p.CohortSize} "
                    + $"(enough that no two survivor sets can both be signed with {colluders} colluding site{(colluders == 1 ? "" : "s")}; docs/PROTOCOL.md, \"Consistency quorum\")");
            }

            int[] dropped = [.. _u2Sorted!.Where(v => !_u3.Contains(v))];
            _unmaskRequest = new UnmaskRequest(_u3Sorted!, dropped, [.. _u4.Values.OrderBy(s => s.Sender)]);
            Stage = ProtocolStage.Unmasking;
            return _unmaskRequest;
        }
    }

    // ---- Stage 4 -------------------------------------------------------------------------------------------

    /// <summary>
    /// Accepts an unmasking response: b-shares only of survivors, s-shares only of dropped sites, only of owners whose
    /// shares the sender holds, each 40 bytes. Returns false for a duplicate.
    /// </summary>
    public bool AcceptUnmaskResponse(UnmaskResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        lock (_gate)
        {
            int sender = response.Sender;
            if (Stage > ProtocolStage.Unmasking && _u5.ContainsKey(sender))
            {
                return false; // a retry whose first copy was accepted before the stage closed (the reply was lost)
            }

            Expect(ProtocolStage.Unmasking, sender);
            if (!_u4.ContainsKey(sender))
            {
                throw new ProtocolViolationException(ProtocolStage.Unmasking, "did not sign the survivor set", sender);
            }

            var dropped = new HashSet<int>(_unmaskRequest!.Dropped);
            CheckRevealed(sender, response.SelfMaskShares, v => _u3.Contains(v), "b-share", "b-share of a site that is not a survivor");
            CheckRevealed(sender, response.MaskingKeyShares, dropped.Contains, "s-share", "s-share of a site that did not drop");
            CheckComplete(sender, response);
            return _u5.TryAdd(sender, response);
        }
    }

    /// <summary>
    /// Refuses a response that leaves out a share its sender holds. Every member of U2 sent a share to each of its
    /// neighbours in U1, and the sender is in U1 (it signed the survivor set), so an honest responder holds the shares of
    /// every neighbour in U2 and its own: it reveals the b-share of each survivor among them and of itself, and the
    /// s-share of each dropped neighbour (<see cref="ClientRound.Unmask"/>), never fewer. A response with fewer (down to
    /// none) used to be accepted and counted as an answer, towards the t answers <see cref="Finish"/> needs and towards
    /// the t answers after which the aggregator stops waiting for a stage's last member: a site that answered at once
    /// with nothing had a slow honest last member cut, and the reconstruction then lacked shares and aborted the attempt
    /// after the honest sites' charges, with nobody blamed or suspected (hostile-site review, session 50). Call after
    /// <see cref="CheckRevealed"/>: the revealed owners are then distinct, allowed and held, so counting them suffices.
    /// </summary>
    private void CheckComplete(int sender, UnmaskResponse response)
    {
        int bHeld = _u3Sorted!.Count(w => w == sender || _p.Graph.AreNeighbors(sender, w));
        int sHeld = _unmaskRequest!.Dropped.Count(v => _p.Graph.AreNeighbors(sender, v));
        if (response.SelfMaskShares.Count == bHeld && response.MaskingKeyShares.Count == sHeld)
        {
            return;
        }

        var bRevealed = new HashSet<int>(response.SelfMaskShares.Select(s => s.Owner));
        var sRevealed = new HashSet<int>(response.MaskingKeyShares.Select(s => s.Owner));
        int missing = _u3Sorted!.FirstOrDefault(w => (w == sender || _p.Graph.AreNeighbors(sender, w)) && !bRevealed.Contains(w));
        string kind = "b-share";
        if (missing == 0)
        {
            missing = _unmaskRequest!.Dropped.First(v => _p.Graph.AreNeighbors(sender, v) && !sRevealed.Contains(v));
            kind = "s-share";
        }

        throw new ProtocolViolationException(ProtocolStage.Unmasking,
            $"revealed {response.SelfMaskShares.Count} b-shares and {response.MaskingKeyShares.Count} s-shares but holds the shares of {bHeld} survivors (itself included) "
            + $"and of {sHeld} dropped sites: it left out the {kind} of index {missing} ('{_p[missing].Name}'); a response reveals every share its sender holds", sender);
    }

    /// <summary>
    /// Ends Unmasking: rebuilds every survivor's b and every dropped site's s from all revealed shares, accepting a
    /// rebuilt b only when it matches the commitment in the owner's signed advertisement and a rebuilt s only when it
    /// matches the advertised public key. Wrong shares are corrected or left out when enough others are revealed
    /// (<see cref="ShamirDecoder"/>: Berlekamp–Welch, then a search of t-subsets against the commitment) and reported in
    /// <see cref="AggregationResult.RejectedShares"/>; when a secret cannot be rebuilt the round aborts
    /// (<see cref="RoundAbortedException"/> naming the owner), never with another exception. When more than t revealed
    /// shares determine a secret (at most ⌊(n' − t) / 2⌋ of them corrected) that fails the owner's commitment, the owner
    /// dealt shares of another secret and the abort says so (<see cref="RoundAbortedException.AtFault"/> = the owner);
    /// when the shares are too few or too inconsistent to tell a lying dealer from lying responders it names nobody at
    /// fault and lists the owner and the responders as <see cref="RoundAbortedException.Suspects"/>. Then removes all
    /// masks from the running sum.
    /// </summary>
    /// <param name="maxDegreeOfParallelism">Threads for the PRG work; the default uses every core.</param>
    public AggregationResult Finish(int maxDegreeOfParallelism = -1)
    {
        ThrowIfSliced();
        lock (_gate)
        {
            Expect(ProtocolStage.Unmasking, null);
            RequireAtLeastThreshold(_u5.Count, "answered the unmasking request");
            var bOwners = _u3Sorted!;
            var sOwners = _unmaskRequest!.Dropped;
            var selfSeeds = new byte[bOwners.Length][];
            var bShares = IndexShares(r => r.SelfMaskShares);
            var sShares = IndexShares(r => r.MaskingKeyShares);
            var rejected = new List<RejectedShare>();
            var liars = new HashSet<int>();
            var reconstructors = new Dictionary<string, ShamirReconstructor>(StringComparer.Ordinal);
            var droppedKeys = new List<(int Owner, X25519KeyPair Key)>();
            var peerKeys = new Dictionary<int, X25519PeerKey>();
            try
            {
                for (int i = 0; i < bOwners.Length; i++)
                {
                    selfSeeds[i] = RebuildSelfMaskSeed(bOwners[i], bShares, liars, rejected, reconstructors);
                }

                foreach (int v in sOwners)
                {
                    byte[] sk = RebuildMaskingKey(v, sShares, liars, rejected, reconstructors);
                    var key = X25519KeyPair.FromPrivateKey(sk);
                    CryptographicOperations.ZeroMemory(sk);
                    droppedKeys.Add((v, key));
                }

                // Work: remove each survivor's self mask; for each dropped v and surviving neighbour w, remove the
                // pairwise mask w added for v (Δ_{w,v} = +1 when w < v). Each survivor's public key is validated and
                // imported once (not once per dropped neighbour) and each worker agrees through one context per v.
                byte[] pairDomain = ProtocolLabels.PairMaskDomain(_p);
                byte[][] selfDomains = [.. bOwners.Select(u => ProtocolLabels.SelfMaskDomain(_p, u))];
                var pairs = new List<(int DroppedSlot, int Survivor)>();
                for (int slot = 0; slot < droppedKeys.Count; slot++)
                {
                    foreach (int w in _p.Graph.Neighbors(droppedKeys[slot].Owner).Where(_u3.Contains))
                    {
                        pairs.Add((slot, w));
                        if (!peerKeys.ContainsKey(w))
                        {
                            peerKeys[w] = new X25519PeerKey(_u1[w].MaskingPublicKey);
                        }
                    }
                }

                int itemCount = bOwners.Length + pairs.Count;
                RunParallel(itemCount, maxDegreeOfParallelism, (first, step, acc) =>
                {
                    var agreements = new X25519Agreement?[droppedKeys.Count];
                    Span<byte> seed = stackalloc byte[32];
                    try
                    {
                        for (int i = first; i < itemCount; i += step)
                        {
                            if (i < bOwners.Length)
                            {
                                MaskPrg.SubtractFrom(selfSeeds[i], selfDomains[i], _p.BitWidth, acc);
                                continue;
                            }

                            (int slot, int survivor) = pairs[i - bOwners.Length];
                            (int dropped, X25519KeyPair key) = droppedKeys[slot];
                            X25519Agreement agreement = agreements[slot] ??= key.CreateAgreement();
                            ClientRound.PairMaskSeed(_p, agreement, peerKeys[survivor], dropped, survivor, seed);
                            if (survivor < dropped)
                            {
                                MaskPrg.SubtractFrom(seed, pairDomain, _p.BitWidth, acc);
                            }
                            else
                            {
                                MaskPrg.AddTo(seed, pairDomain, _p.BitWidth, acc);
                            }
                        }
                    }
                    finally
                    {
                        CryptographicOperations.ZeroMemory(seed);
                        foreach (X25519Agreement? agreement in agreements)
                        {
                            agreement?.Dispose();
                        }
                    }
                });
            }
            catch (RoundAbortedException ex)
            {
                throw AbortedWhileRebuilding(ex);
            }
            finally
            {
                foreach ((_, X25519KeyPair key) in droppedKeys)
                {
                    key.Dispose();
                }

                foreach (X25519PeerKey peer in peerKeys.Values)
                {
                    peer.Dispose();
                }

                foreach (byte[] seed in selfSeeds)
                {
                    if (seed is not null)
                    {
                        CryptographicOperations.ZeroMemory(seed);
                    }
                }
            }

            Stage = ProtocolStage.Completed;
            return new AggregationResult(
                _sum,
                _u3Sorted!,
                [.. _u1.Keys.Where(v => !_sharesFrom.ContainsKey(v)).Order()],
                sOwners,
                [.. _u3Sorted!.Where(v => !_u5.ContainsKey(v))],
                rejected);
        }
    }

    /// <summary>Abandons the round (e.g. the service is shutting down); nothing further will be revealed.</summary>
    public void Abort(string reason)
    {
        lock (_gate)
        {
            if (Stage is not (ProtocolStage.Completed or ProtocolStage.Aborted))
            {
                AbortReason = reason;
                Stage = ProtocolStage.Aborted;
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/>(first, step, accumulator) on up to <paramref name="maxDegreeOfParallelism"/> workers,
    /// worker w taking items w, w + step, ... into its own partial sum, added into the running sum afterwards (modular
    /// addition is commutative: the result does not depend on the split).
    /// </summary>
    private void RunParallel(int itemCount, int maxDegreeOfParallelism, Action<int, int, uint[]> work)
    {
        int workers = maxDegreeOfParallelism > 0 ? maxDegreeOfParallelism : Environment.ProcessorCount;
        workers = Math.Max(1, Math.Min(workers, itemCount));
        if (workers == 1)
        {
            work(0, 1, _sum);
            return;
        }

        var partials = new uint[workers][];
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, w =>
        {
            uint[] acc = new uint[_p.VectorLength];
            work(w, workers, acc);
            partials[w] = acc;
        });
        foreach (uint[] partial in partials)
        {
            ModularVector.Add(_sum, partial, _p.BitWidth);
        }
    }

    /// <summary>
    /// For each owner, every revealed share of the selected kind in ascending responder order (x = responder index);
    /// built in one pass over the responses instead of one scan per owner.
    /// </summary>
    private Dictionary<int, List<ShamirShare>> IndexShares(Func<UnmaskResponse, IReadOnlyList<RevealedShare>> select)
    {
        var index = new Dictionary<int, List<ShamirShare>>();
        foreach ((int sender, UnmaskResponse response) in _u5.OrderBy(kv => kv.Key))
        {
            foreach (RevealedShare share in select(response))
            {
                if (!index.TryGetValue(share.Owner, out List<ShamirShare>? entry))
                {
                    entry = new List<ShamirShare>(_p.Threshold + 1);
                    index[share.Owner] = entry;
                }

                entry.Add(new ShamirShare(sender, share.Value));
            }
        }

        return index;
    }

    /// <summary>
    /// Rebuilds <paramref name="owner"/>'s secret from its revealed shares and accepts it only if
    /// <paramref name="verify"/> does. Fast path (every honest round): the first t shares by responder order, with the
    /// Lagrange coefficients cached per x-set, and the check; shares beyond the first t are then not examined (a wrong one
    /// there changes nothing). When that secret does not verify, every revealed share goes to
    /// <see cref="ShamirDecoder"/>, which corrects or leaves out the wrong ones and names them. Responders already caught
    /// lying about another secret are left out first (when t shares remain), so one liar costs one full decoding, not one
    /// per owner. Throws <see cref="RoundAbortedException"/> when no verified secret can be rebuilt, without changing the
    /// round's state: <see cref="Finish"/> and <see cref="FinishSliced"/> then abort the round
    /// (<see cref="AbortedWhileRebuilding"/>), <see cref="UnmaskingShortfall"/> only reports it.
    /// </summary>
    /// <summary>A survivor's self-mask seed b_u from its shares, accepted only if it opens u's signed commitment.</summary>
    private byte[] RebuildSelfMaskSeed(int owner, Dictionary<int, List<ShamirShare>> index, HashSet<int> liars, List<RejectedShare> rejected,
        Dictionary<string, ShamirReconstructor> cache)
    {
        byte[] commitment = _u1[owner].SelfMaskCommitment;
        return Rebuild(owner, RevealedShareKind.SelfMaskSeed, index, liars, rejected, cache,
            seed => CryptographicOperations.FixedTimeEquals(ProtocolLabels.SelfMaskCommitment(_p, owner, seed), commitment));
    }

    /// <summary>A dropped site's masking private key from its shares, accepted only if it is clamped and matches the advertised public key.</summary>
    private byte[] RebuildMaskingKey(int owner, Dictionary<int, List<ShamirShare>> index, HashSet<int> liars, List<RejectedShare> rejected,
        Dictionary<string, ShamirReconstructor> cache)
    {
        byte[] publicKey = _u1[owner].MaskingPublicKey;
        return Rebuild(owner, RevealedShareKind.MaskingKey, index, liars, rejected, cache, candidate =>
        {
            // Only the clamped form is shared, so only it is accepted (one string per public key).
            if ((candidate[0] & 7) != 0 || (candidate[31] & 0xC0) != 0x40)
            {
                return false;
            }

            using X25519KeyPair candidateKey = X25519KeyPair.FromPrivateKey(candidate);
            return CryptographicOperations.FixedTimeEquals(candidateKey.PublicKey, publicKey);
        });
    }

    private byte[] Rebuild(int owner, RevealedShareKind kind, Dictionary<int, List<ShamirShare>> index, HashSet<int> liars, List<RejectedShare> rejected,
        Dictionary<string, ShamirReconstructor> cache, SecretVerifier verify)
    {
        string what = kind == RevealedShareKind.SelfMaskSeed ? "self-mask seed" : "masking key";
        List<ShamirShare> all = index.TryGetValue(owner, out List<ShamirShare>? entry) ? entry : [];
        if (all.Count < _p.Threshold)
        {
            throw Unrebuildable($"only {all.Count} shares of the {what} of '{_p[owner].Name}' were revealed; t = {_p.Threshold}");
        }

        List<ShamirShare> trusted = liars.Count == 0 ? all : [.. all.Where(s => !liars.Contains(s.X))];
        if (trusted.Count >= _p.Threshold)
        {
            List<ShamirShare> first = trusted.GetRange(0, _p.Threshold);
            string key = string.Join(',', first.Select(s => s.X));
            if (!cache.TryGetValue(key, out ShamirReconstructor? reconstructor))
            {
                reconstructor = new ShamirReconstructor([.. first.Select(s => s.X)]);
                cache[key] = reconstructor;
            }

            byte[] secret = new byte[32];
            try
            {
                reconstructor.Reconstruct([.. first.Select(s => (ReadOnlyMemory<byte>)s.Value)], secret);
                if (verify(secret))
                {
                    return secret;
                }
            }
            catch (CryptographicException)
            {
                // non-zero padding: some of these shares are wrong; decode from all of them below
            }

            CryptographicOperations.ZeroMemory(secret);
        }

        ShamirDecoding? decoding = null;
        if (trusted.Count >= _p.Threshold && trusted.Count < all.Count)
        {
            try
            {
                decoding = ShamirDecoder.Decode(trusted, _p.Threshold, 32, verify);
            }
            catch (ShamirDecodingException)
            {
                // fall back to every revealed share below
            }
        }

        try
        {
            decoding ??= ShamirDecoder.Decode(all, _p.Threshold, 32, verify);
        }
        catch (ShamirDecodingException ex) when (ex.Consistent)
        {
            // More than t shares agree on one secret (up to ⌊(n' − t) / 2⌋ corrected) and it is not the committed one:
            // unless more responders lied than the decoder corrects, the owner dealt shares of another secret.
            string name = _p[owner].Name;
            throw Unrebuildable(
                $"the {what} of '{name}' cannot be rebuilt: the {all.Count} shares revealed by {string.Join(", ", all.Select(s => $"'{_p[s.X].Name}'"))} "
                + $"determine a secret (at most {ShamirDecoder.CorrectableErrors(all.Count, _p.Threshold)} of them corrected) that does not match what '{name}' "
                + $"advertised, so '{name}' dealt shares of another secret (unless more than that many responders lied): {ex.Message}",
                owner);
        }
        catch (Exception ex) when (ex is ShamirDecodingException or ArgumentException)
        {
            // Too few or too inconsistent to tell a dealer that dealt shares off every polynomial from responders that
            // lied: one of them did, and the coordinator looks for it over the next attempts.
            throw Unrebuildable(
                $"the {what} of '{_p[owner].Name}' cannot be rebuilt from the {all.Count} shares revealed by {string.Join(", ", all.Select(s => $"'{_p[s.X].Name}'"))}: {ex.Message}",
                suspects: [.. all.Select(s => s.X).Append(owner).Distinct().Order()]);
        }

        foreach (int x in decoding.RejectedX)
        {
            liars.Add(x);
            rejected.Add(new RejectedShare(x, owner, kind));
        }

        return decoding.Secret;
    }

    /// <summary>
    /// Why the unmasking answers received so far would not rebuild a secret <see cref="Finish"/> needs that
    /// <paramref name="awaited"/>'s answer could still help rebuild, or null when there is none. Each survivor's b is
    /// checked against its commitment and each dropped site's s against its public key, with the same decoding and the
    /// same reasons as <see cref="Finish"/>. A secret counts only when <paramref name="awaited"/> holds a share of it (a
    /// neighbour of its owner), is not its owner, and the shares in hand do not already show that the owner dealt shares of
    /// another secret (<see cref="RoundAbortedException.AtFault"/>): more shares cannot change those. Changes nothing: the
    /// round stays at Unmasking and takes further answers. Null too when the round is no longer at Unmasking (there is
    /// nothing to wait for).
    /// </summary>
    /// <remarks>
    /// The coordinator asks before it stops waiting for the stage's last member (hostile-site review, session 55): a site
    /// that answered at once with every share but wrong values passed every check on receipt and counted as an answer, so
    /// with t − 1 honest answers the slow honest last member was cut and the attempt aborted for want of a correct share;
    /// with that member's answer the wrong shares are outvoted. Not for the awaited member's own secret: a site that dealt
    /// shares of its b off its commitment and then stays silent would otherwise hold every attempt's unmasking stage to
    /// its deadline (diff review of d7178c7); an honest member's own answer outvotes a liar about its b only with one more
    /// share, which the next attempt's extra answer (<c>StragglerQuorumExtra</c>) brings.
    /// </remarks>
    /// <param name="awaited">The cohort index of the member still to answer.</param>
    public string? UnmaskingShortfall(int awaited)
    {
        lock (_gate)
        {
            if (Stage != ProtocolStage.Unmasking)
            {
                return null;
            }

            CheckIndex(awaited, ProtocolStage.Unmasking);
            if (_u5.Count < _p.Threshold)
            {
                return $"only {_u5.Count} sites answered the unmasking request; the threshold is {_p.Threshold}";
            }

            var bShares = IndexShares(r => r.SelfMaskShares);
            var sShares = IndexShares(r => r.MaskingKeyShares);
            var rejected = new List<RejectedShare>();
            var liars = new HashSet<int>();
            var reconstructors = new Dictionary<string, ShamirReconstructor>(StringComparer.Ordinal);
            bool Helps(int owner) => owner != awaited && _p.Graph.AreNeighbors(awaited, owner);
            foreach (int owner in _u3Sorted!.Where(Helps))
            {
                if (Probe(() => RebuildSelfMaskSeed(owner, bShares, liars, rejected, reconstructors)) is string reason)
                {
                    return reason;
                }
            }

            foreach (int v in _unmaskRequest!.Dropped.Where(Helps))
            {
                if (Probe(() => RebuildMaskingKey(v, sShares, liars, rejected, reconstructors)) is string reason)
                {
                    return reason;
                }
            }

            return null;
        }

        static string? Probe(Func<byte[]> rebuild)
        {
            try
            {
                CryptographicOperations.ZeroMemory(rebuild());
                return null;
            }
            catch (RoundAbortedException ex)
            {
                return ex.AtFault is null ? ex.Reason : null; // a dealer shown at fault: more shares would not change that
            }
        }
    }

    /// <summary>A secret that cannot be rebuilt (<see cref="Rebuild"/>): the exception, with the round's state unchanged.</summary>
    private static RoundAbortedException Unrebuildable(string reason, int? atFault = null, IReadOnlyList<int>? suspects = null)
        => new(ProtocolStage.Unmasking, reason, atFault, suspects);

    /// <summary>Aborts the round for a secret <see cref="Finish"/> or <see cref="FinishSliced"/> could not rebuild; returns the exception to throw.</summary>
    private RoundAbortedException AbortedWhileRebuilding(RoundAbortedException ex)
    {
        AbortReason = ex.Reason;
        Stage = ProtocolStage.Aborted;
        return ex;
    }

    private void CheckRevealed(int sender, IReadOnlyList<RevealedShare> shares, Func<int, bool> allowed, string kind, string what)
    {
        var seen = new HashSet<int>();
        foreach (RevealedShare share in shares)
        {
            if (share.Owner < 1 || share.Owner > _p.CohortSize || !allowed(share.Owner))
            {
                throw new ProtocolViolationException(ProtocolStage.Unmasking, $"revealed a {what} (index {share.Owner})", sender);
            }

            if (share.Owner != sender && !_p.Graph.AreNeighbors(sender, share.Owner))
            {
                throw new ProtocolViolationException(ProtocolStage.Unmasking, $"revealed a share of index {share.Owner}, which it cannot hold", sender);
            }

            if (!seen.Add(share.Owner))
            {
                throw new ProtocolViolationException(ProtocolStage.Unmasking, $"revealed two shares of index {share.Owner}", sender);
            }

            if (share.Value is null || share.Value.Length != ProtocolLabels.ShareValueSize)
            {
                throw new ProtocolViolationException(ProtocolStage.Unmasking, $"revealed a share of {share.Value?.Length ?? 0} bytes; expected {ProtocolLabels.ShareValueSize}", sender);
            }

            int element = ShamirDecoder.FirstNonFieldElement(share.Value);
            if (element >= 0)
            {
                ulong value = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(share.Value.AsSpan(element * Shamir.ElementBytes));
                throw new ProtocolViolationException(ProtocolStage.Unmasking,
                    $"revealed a {kind} of index {share.Owner} ('{_p[share.Owner].Name}') whose element {element} is {value}, not a field element (must be below 2^61 - 1)", sender);
            }
        }
    }

    private void RequireAtLeastThreshold(int count, string what)
    {
        if (count < _p.Threshold)
        {
            Abort(Stage, $"only {count} sites {what}; the threshold is {_p.Threshold}");
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private void Abort(ProtocolStage stage, string reason, int? atFault = null, IReadOnlyList<int>? suspects = null)
    {
        AbortReason = reason;
        Stage = ProtocolStage.Aborted;
        throw new RoundAbortedException(stage, reason, atFault, suspects);
    }

    private void Expect(ProtocolStage stage, int? sender)
    {
        if (sender is int s)
        {
            CheckIndex(s, stage);
        }

        if (Stage != stage)
        {
            string why = Stage == ProtocolStage.Aborted ? $"the round was aborted ({AbortReason})" : $"the round is at stage {Stage}";
            throw new ProtocolViolationException(stage, $"message for stage {stage} is out of order: {why}", sender);
        }
    }

    private void CheckIndex(int index, ProtocolStage stage)
    {
        if (index < 1 || index > _p.CohortSize)
        {
            throw new ProtocolViolationException(stage, $"unknown participant index {index}");
        }
    }
}
