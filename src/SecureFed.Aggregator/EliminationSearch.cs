namespace SecureFed.Aggregator;

/// <summary>
/// Finds, by elimination, the site that keeps aborting attempts in a way one abort cannot pin on anybody (docs/PROTOCOL.md
/// "Blame: by elimination"): a masked input that puts the decoded sum outside its bound (the aggregator sees only the
/// sum), or a secret whose revealed shares cannot be rebuilt (a dealer's shares off every polynomial cannot be told from
/// lying responders). Each such failure comes with the sites that may have caused it (the sum's contributors; the
/// secret's owner and responders). Without this a single hostile site could abort every attempt it joins (and spend the
/// honest sites' privacy budget on each). The search keeps the sites involved in every failure of its kind since it
/// began (the suspects) and holds a random half of them (as many as the next cohort can spare) out of the next attempt:
/// when that attempt fails again, the held-out half is cleared; when it completes, the round made progress and the
/// search goes on. When one suspect is left, it is named (the coordinator blames and excludes it like a dealer at fault).
/// </summary>
/// <remarks>
/// Sound against one hostile site: it is involved in every failure it causes, so it is never cleared, and honest sites
/// alone cause none (an honest input breaks the sum bound with probability at most 2^−40; honest dealers' and
/// responders' shares rebuild). Two or more colluding sites that take turns can leave an honest site as the last suspect
/// (it is then excluded for the blame's attempts: availability, as the framing residual of "Blame"). Holding sites out
/// reveals nothing a dropout does not (each attempt's sum is over its own cohort of at least t sites). Pure and not
/// thread-safe: the coordinator calls it from its one loop.
/// </remarks>
internal sealed class EliminationSearch
{
    private readonly Func<int, int> _random;
    private HashSet<string>? _suspects;

    /// <summary>Creates a search that draws held-out sites with <paramref name="random"/> (an integer in [0, n) for n).</summary>
    public EliminationSearch(Func<int, int>? random = null)
    {
        _random = random ?? System.Security.Cryptography.RandomNumberGenerator.GetInt32;
    }

    /// <summary>The sites still suspected, in ordinal order (empty when no search is under way).</summary>
    public IReadOnlyList<string> Suspects => _suspects is null ? [] : [.. _suspects.Order(StringComparer.Ordinal)];

    /// <summary>
    /// Records an attempt that failed, with the sites involved in the failure, and decides what follows: the site found
    /// (when one suspect is left) or the sites to hold out of the next attempt.
    /// </summary>
    /// <param name="involved">The sites that may have caused the failure (for an out-of-bound sum: the sites whose
    /// masked inputs were in it; for a secret that cannot be rebuilt: its owner and the sites that revealed its shares).</param>
    /// <param name="spare">How many sites the next attempt's cohort can do without (its minimum size, threshold and budget
    /// still met); zero holds nobody out, and the search then narrows only when an attempt's cohort happens to differ.</param>
    public EliminationStep Failed(IReadOnlyCollection<string> involved, int spare)
    {
        ArgumentNullException.ThrowIfNull(involved);
        bool restarted = false;
        if (_suspects is null)
        {
            _suspects = new HashSet<string>(involved, StringComparer.Ordinal);
            restarted = true;
        }
        else
        {
            _suspects.IntersectWith(involved);
            if (_suspects.Count == 0)
            {
                // No site was involved in every failure: more than one site causes them (or one stopped and another
                // began). Start again from this failure's sites.
                _suspects.UnionWith(involved);
                restarted = true;
            }
        }

        if (_suspects.Count == 1)
        {
            string found = _suspects.Single();
            _suspects = null;
            return new EliminationStep(found, [], [found], restarted);
        }

        string[] suspects = [.. _suspects.Order(StringComparer.Ordinal)];
        int hold = Math.Min(suspects.Length / 2, Math.Max(0, spare));
        for (int i = 0; i < hold; i++)
        {
            // A partial Fisher–Yates shuffle: the first `hold` entries are a uniformly random subset.
            int j = i + _random(suspects.Length - i);
            (suspects[i], suspects[j]) = (suspects[j], suspects[i]);
        }

        return new EliminationStep(null, [.. suspects.Take(hold).Order(StringComparer.Ordinal)], Suspects, restarted);
    }
}

/// <summary>What <see cref="EliminationSearch.Failed"/> decided.</summary>
/// <param name="Found">The one site left, or null.</param>
/// <param name="HoldOut">Sites to hold out of the next attempt (empty when <paramref name="Found"/> is set).</param>
/// <param name="Suspects">The suspects after this failure, in ordinal order.</param>
/// <param name="Restarted">True when this failure began a search (the first, or none of the suspects was involved in it).</param>
internal sealed record EliminationStep(string? Found, IReadOnlyList<string> HoldOut, IReadOnlyList<string> Suspects, bool Restarted);
