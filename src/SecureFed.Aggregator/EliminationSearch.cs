namespace SecureFed.Aggregator;

/// <summary>
/// Finds, by elimination, the site that keeps aborting attempts in a way one abort cannot pin on anybody (docs/PROTOCOL.md
/// "Blame: by elimination"): a masked input that puts the decoded sum outside its bound (the aggregator sees only the
/// sum), or a secret whose revealed shares cannot be rebuilt (a dealer's shares off every polynomial cannot be told from
/// lying responders). Each such failure comes with the sites that may have caused it (the sum's contributors; the
/// secret's owner and responders). Without this a single hostile site could abort every attempt it joins (and spend the
/// honest sites' privacy budget on each). The search keeps the sites involved in every failure of its kind since it
/// began (the suspects) and, while it lasts, holds a fresh random half of them (as many as the cohort can spare) out of
/// every attempt: when an attempt fails again, its held-out half is cleared; when it completes, the round made progress.
/// So a site that attacks only when nobody is held out (it sees the cohort in the announcement) gets no such attempt
/// while the search lasts. When one suspect is left, it is named (the coordinator blames and excludes it like a dealer
/// at fault). A search that sees no failure in a window of completed attempts in a row ends (the hold-outs cost the
/// honest sites rounds); the window doubles with each search that ends so, so a site that waits each one out aborts
/// O(log A) of A attempts.
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
    /// <summary>The longest quiet window, in completed attempts.</summary>
    public const int MaxQuietAttempts = 10_000;

    private readonly Func<int, int> _random;
    private HashSet<string>? _suspects;
    private int _quietWindow;
    private int _quiet;

    /// <summary>
    /// Creates a search that draws held-out sites with <paramref name="random"/> (an integer in [0, n) for n) and ends
    /// after <paramref name="firstQuietWindow"/> completed attempts in a row without a failure (doubled for each search
    /// that ends so).
    /// </summary>
    public EliminationSearch(Func<int, int>? random = null, int firstQuietWindow = 10)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(firstQuietWindow, 1);
        _random = random ?? System.Security.Cryptography.RandomNumberGenerator.GetInt32;
        _quietWindow = Math.Min(firstQuietWindow, MaxQuietAttempts);
    }

    /// <summary>The sites still suspected, in ordinal order (empty when no search is under way).</summary>
    public IReadOnlyList<string> Suspects => _suspects is null ? [] : [.. _suspects.Order(StringComparer.Ordinal)];

    /// <summary>Whether <paramref name="site"/> is among the suspects (false when no search is under way).</summary>
    public bool IsSuspect(string site) => _suspects?.Contains(site) == true;

    /// <summary>Completed attempts in a row without a failure that end the current (or next) search.</summary>
    public int QuietWindow => _quietWindow;

    /// <summary>
    /// The suspects to hold out of the attempt about to open: a uniformly random ⌊k/2⌋ of the k suspects among
    /// <paramref name="eligible"/>, at most <paramref name="max"/> (what the cohort can spare), in ordinal order; empty when
    /// no search is under way.
    /// </summary>
    public IReadOnlyList<string> DrawHoldOut(IEnumerable<string> eligible, int max)
    {
        ArgumentNullException.ThrowIfNull(eligible);
        if (_suspects is null || max <= 0)
        {
            return [];
        }

        string[] candidates = [.. eligible.Where(_suspects.Contains).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        int hold = Math.Min(candidates.Length / 2, max);
        for (int i = 0; i < hold; i++)
        {
            // A partial Fisher–Yates shuffle: the first `hold` entries are a uniformly random subset.
            int j = i + _random(candidates.Length - i);
            (candidates[i], candidates[j]) = (candidates[j], candidates[i]);
        }

        return [.. candidates.Take(hold).Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// Records an attempt that failed, with the sites involved in the failure, and names the site found when one
    /// suspect is left (the search then ends).
    /// </summary>
    /// <param name="involved">The sites that may have caused the failure (for an out-of-bound sum: the sites whose
    /// masked inputs were in it; for a secret that cannot be rebuilt: its owner and the sites that revealed its shares).
    /// Sites held out of the attempt are not among them, so they are cleared.</param>
    public EliminationStep Failed(IReadOnlyCollection<string> involved)
    {
        ArgumentNullException.ThrowIfNull(involved);
        _quiet = 0;
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
            return new EliminationStep(found, [found], restarted);
        }

        return new EliminationStep(null, Suspects, restarted);
    }

    /// <summary>
    /// Records an attempt that completed. Returns the suspects when this ends the search (the quiet window passed
    /// without a failure; the next search's window is twice as long), else null.
    /// </summary>
    public IReadOnlyList<string>? Completed()
    {
        if (_suspects is null || ++_quiet < _quietWindow)
        {
            return null;
        }

        IReadOnlyList<string> ended = Suspects;
        _suspects = null;
        _quiet = 0;
        _quietWindow = (int)Math.Min(2L * _quietWindow, MaxQuietAttempts);
        return ended;
    }
}

/// <summary>What <see cref="EliminationSearch.Failed"/> decided.</summary>
/// <param name="Found">The one site left, or null.</param>
/// <param name="Suspects">The suspects after this failure, in ordinal order.</param>
/// <param name="Restarted">True when this failure began a search (the first, or none of the suspects was involved in it).</param>
internal sealed record EliminationStep(string? Found, IReadOnlyList<string> Suspects, bool Restarted);
