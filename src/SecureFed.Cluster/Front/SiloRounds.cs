namespace SecureFed.Cluster.Front;

/// <summary>
/// The rounds whose slices this silo opened (a singleton of each silo; the slice grains placed here report each round they
/// open, <see cref="Grains.ISliceGrain.OpenAsync"/>), so the silo's front can refuse a slice upload naming any other round
/// before it calls a grain (docs/cluster.md §6): a round grain is activated by any call to its key, so a site naming
/// round after round would otherwise make the cluster activate a grain for each. A round opens its slices before its
/// announcement goes out, so an honest upload always finds its round here. The <see cref="Kept"/> highest rounds of each
/// federation are kept (the open one and recent ones, whose round grains have released their state, docs/cluster.md §2).
/// </summary>
public sealed class SiloRounds
{
    /// <summary>Rounds kept per federation (the highest opened here).</summary>
    public const int Kept = 16;

    /// <summary>Federations kept (a silo serves one; the bound only keeps the set finite).</summary>
    private const int MaxFederations = 16;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, SortedSet<long>> _rounds = new(StringComparer.Ordinal);

    /// <summary>Records that a slice of <paramref name="round"/> of <paramref name="federation"/> was opened on this silo.</summary>
    public void Opened(string federation, long round)
    {
        ArgumentNullException.ThrowIfNull(federation);
        lock (_gate)
        {
            if (!_rounds.TryGetValue(federation, out SortedSet<long>? rounds))
            {
                if (_rounds.Count >= MaxFederations)
                {
                    _rounds.Remove(_rounds.MinBy(r => r.Value.Max).Key);
                }

                rounds = [];
                _rounds.Add(federation, rounds);
            }

            rounds.Add(round);
            while (rounds.Count > Kept)
            {
                rounds.Remove(rounds.Min);
            }
        }
    }

    /// <summary>Whether a slice of <paramref name="round"/> was opened on this silo (and is among the <see cref="Kept"/> highest).</summary>
    public bool Has(string federation, long round)
    {
        ArgumentNullException.ThrowIfNull(federation);
        lock (_gate)
        {
            return _rounds.TryGetValue(federation, out SortedSet<long>? rounds) && rounds.Contains(round);
        }
    }
}
