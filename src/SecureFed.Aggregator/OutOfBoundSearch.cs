namespace SecureFed.Aggregator;

/// <summary>
/// Finds, by elimination, the site whose masked input keeps putting the decoded sum outside its bound (a wrapped weight
/// slot, a coordinate far outside the clip: docs/PROTOCOL.md "The sum bound"). Secure aggregation shows the aggregator
/// only the sum, so such an abort blames nobody, and without this a single hostile site could abort every attempt it
/// joins (and spend the honest sites' privacy budget on each). The search keeps the sites that contributed to every
/// out-of-bound sum since it began (the suspects) and holds a random half of them (as many as the next cohort can spare)
/// out of the next attempt: when that attempt breaks the bound again, the held-out half is cleared; when it completes,
/// the round made progress and the search goes on. When one suspect is left, it is named (the coordinator blames and
/// excludes it like a dealer at fault, docs/PROTOCOL.md "Blame").
/// </summary>
/// <remarks>
/// Sound against one hostile site: it is among the contributors of every out-of-bound sum it causes, so it is never
/// cleared, and an honest site's clipped input breaks the bound with probability at most 2^−40. Two or more colluding
/// sites that take turns can leave an honest site as the last suspect (it is then excluded for the blame's attempts:
/// availability, as the framing residual of "Blame"). Only out-of-bound aborts narrow the suspects; holding sites out
/// reveals nothing a dropout does not (each attempt's sum is over its own cohort of at least t sites). Pure and not
/// thread-safe: the coordinator calls it from its one loop.
/// </remarks>
internal sealed class OutOfBoundSearch
{
    private readonly Func<int, int> _random;
    private HashSet<string>? _suspects;

    /// <summary>Creates a search that draws held-out sites with <paramref name="random"/> (an integer in [0, n) for n).</summary>
    public OutOfBoundSearch(Func<int, int>? random = null)
    {
        _random = random ?? System.Security.Cryptography.RandomNumberGenerator.GetInt32;
    }

    /// <summary>The sites still suspected, in ordinal order (empty when no search is under way).</summary>
    public IReadOnlyList<string> Suspects => _suspects is null ? [] : [.. _suspects.Order(StringComparer.Ordinal)];

    /// <summary>
    /// Records an attempt whose decoded sum was out of bound, with the sites whose inputs were in it, and decides what
    /// follows: the site found (when one suspect is left) or the sites to hold out of the next attempt.
    /// </summary>
    /// <param name="contributors">The sites whose masked inputs were in the out-of-bound sum.</param>
    /// <param name="spare">How many sites the next attempt's cohort can do without (its minimum size, threshold and budget
    /// still met); zero holds nobody out, and the search then narrows only when an attempt's cohort happens to differ.</param>
    public OutOfBoundStep OutOfBound(IReadOnlyCollection<string> contributors, int spare)
    {
        ArgumentNullException.ThrowIfNull(contributors);
        bool restarted = false;
        if (_suspects is null)
        {
            _suspects = new HashSet<string>(contributors, StringComparer.Ordinal);
            restarted = true;
        }
        else
        {
            _suspects.IntersectWith(contributors);
            if (_suspects.Count == 0)
            {
                // No site was in every out-of-bound sum: more than one site breaks the bound (or one stopped and another
                // began). Start again from this sum's contributors.
                _suspects.UnionWith(contributors);
                restarted = true;
            }
        }

        if (_suspects.Count == 1)
        {
            string found = _suspects.Single();
            _suspects = null;
            return new OutOfBoundStep(found, [], [found], restarted);
        }

        string[] suspects = [.. _suspects.Order(StringComparer.Ordinal)];
        int hold = Math.Min(suspects.Length / 2, Math.Max(0, spare));
        for (int i = 0; i < hold; i++)
        {
            // A partial Fisher–Yates shuffle: the first `hold` entries are a uniformly random subset.
            int j = i + _random(suspects.Length - i);
            (suspects[i], suspects[j]) = (suspects[j], suspects[i]);
        }

        return new OutOfBoundStep(null, [.. suspects.Take(hold).Order(StringComparer.Ordinal)], Suspects, restarted);
    }
}

/// <summary>What <see cref="OutOfBoundSearch.OutOfBound"/> decided.</summary>
/// <param name="Found">The one site left, or null.</param>
/// <param name="HoldOut">Sites to hold out of the next attempt (empty when <paramref name="Found"/> is set).</param>
/// <param name="Suspects">The suspects after this sum, in ordinal order.</param>
/// <param name="Restarted">True when this sum began a search (the first, or none of the suspects was in it).</param>
internal sealed record OutOfBoundStep(string? Found, IReadOnlyList<string> HoldOut, IReadOnlyList<string> Suspects, bool Restarted);
