using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The sliced mode of <see cref="ServerRound"/> (the aggregator cluster, issue 17): the masked inputs are summed in
/// slices by other holders; this object runs every other stage unchanged and, at the end, hands out the masks to remove
/// instead of removing them from a sum it does not hold.
/// </summary>
public sealed partial class ServerRound
{
    private readonly bool _sliced;

    private ServerRound(RoundParameters parameters, bool sliced)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        _p = parameters;
        _sliced = sliced;
        _sum = sliced ? [] : new uint[parameters.VectorLength];
    }

    /// <summary>
    /// Creates the server side of a round whose masked inputs are summed elsewhere, in slices: it holds no O(m) sum;
    /// <see cref="RecordSlicedMaskedInput"/> replaces <see cref="AcceptMaskedInput"/> and <see cref="FinishSliced"/>
    /// replaces <see cref="Finish"/>.
    /// </summary>
    public static ServerRound ForSlicedInput(RoundParameters parameters) => new(parameters, sliced: true);

    /// <summary>True for a round created by <see cref="ForSlicedInput"/>.</summary>
    public bool IsSliced => _sliced;

    /// <summary>
    /// Records that every slice of <paramref name="sender"/>'s masked input has been checked (length, every word reduced
    /// modulo 2^b) and added into its slice's running sum by the slices' holders. Same rules as
    /// <see cref="AcceptMaskedInput"/> otherwise: only members of U2, only once.
    /// </summary>
    public void RecordSlicedMaskedInput(int sender)
    {
        ThrowIfNotSliced();
        lock (_gate)
        {
            Expect(ProtocolStage.MaskedInputCollection, sender);
            if (Array.BinarySearch(_u2Sorted!, sender) < 0)
            {
                throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection, "did not complete ShareKeys in this round", sender);
            }

            if (!_u3.Add(sender))
            {
                throw new ProtocolViolationException(ProtocolStage.MaskedInputCollection, "already sent its masked input", sender);
            }
        }
    }

    /// <summary>
    /// Ends Unmasking for a sliced round: rebuilds and verifies every survivor's b and every dropped site's s exactly as
    /// <see cref="Finish"/> does (same shares, same checks, same abort reasons), derives the pairwise seeds of each dropped
    /// site with its surviving neighbours, and returns the masks to remove; the caller applies them to each slice.
    /// </summary>
    public SlicedUnmasking FinishSliced()
    {
        ThrowIfNotSliced();
        lock (_gate)
        {
            Expect(ProtocolStage.Unmasking, null);
            RequireAtLeastThreshold(_u5.Count, "answered the unmasking request");
            int[] bOwners = _u3Sorted!;
            IReadOnlyList<int> sOwners = _unmaskRequest!.Dropped;
            var bShares = IndexShares(r => r.SelfMaskShares);
            var sShares = IndexShares(r => r.MaskingKeyShares);
            var rejected = new List<RejectedShare>();
            var liars = new HashSet<int>();
            var reconstructors = new Dictionary<string, ShamirReconstructor>(StringComparer.Ordinal);
            var removals = new List<MaskRemoval>(bOwners.Length);
            bool done = false;
            try
            {
                foreach (int owner in bOwners)
                {
                    byte[] seed = RebuildSelfMaskSeed(owner, bShares, liars, rejected, reconstructors);
                    removals.Add(new MaskRemoval(seed, ProtocolLabels.SelfMaskDomain(_p, owner), Add: false));
                }

                byte[] pairDomain = ProtocolLabels.PairMaskDomain(_p);
                foreach (int v in sOwners)
                {
                    byte[] sk = RebuildMaskingKey(v, sShares, liars, rejected, reconstructors);
                    using X25519KeyPair key = X25519KeyPair.FromPrivateKey(sk);
                    CryptographicOperations.ZeroMemory(sk);
                    foreach (int w in _p.Graph.Neighbors(v).Where(_u3.Contains))
                    {
                        // w added +PRG(s_{w,v}) when w < v and subtracted it when w > v (Δ_{w,v}); undo exactly that.
                        byte[] seed = new byte[MaskPrg.SeedSize];
                        ClientRound.PairMaskSeed(_p, key, _u1[w].MaskingPublicKey, v, w, seed);
                        removals.Add(new MaskRemoval(seed, pairDomain, Add: w > v));
                    }
                }

                done = true;
            }
            catch (RoundAbortedException ex)
            {
                throw AbortedWhileRebuilding(ex);
            }
            finally
            {
                if (!done)
                {
                    foreach (MaskRemoval removal in removals)
                    {
                        CryptographicOperations.ZeroMemory(removal.Seed);
                    }
                }
            }

            Stage = ProtocolStage.Completed;
            return new SlicedUnmasking(
                _p,
                removals,
                _u3Sorted!,
                [.. _u1.Keys.Where(v => !_sharesFrom.ContainsKey(v)).Order()],
                sOwners,
                [.. _u3Sorted!.Where(v => !_u5.ContainsKey(v))],
                rejected);
        }
    }

    private void ThrowIfSliced()
    {
        if (_sliced)
        {
            throw new InvalidOperationException("This round's masked inputs are summed in slices: use RecordSlicedMaskedInput and FinishSliced.");
        }
    }

    private void ThrowIfNotSliced()
    {
        if (!_sliced)
        {
            throw new InvalidOperationException("This round holds its own sum: use AcceptMaskedInput and Finish (ForSlicedInput creates a sliced round).");
        }
    }
}
