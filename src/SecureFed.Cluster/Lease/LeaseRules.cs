using System.Globalization;
namespace SecureFed.Cluster.Lease;

/// <summary>
/// The coordinator lease's decisions, without I/O (the SQL of <see cref="PostgresCoordinatorLease"/> applies the same
/// rules atomically in the database; these are what the holder decides locally and how a refusal is explained).
/// </summary>
public static class LeaseRules
{
    /// <summary>
    /// The holder's next step, <paramref name="sinceGrant"/> after it sent the statement of its last successful
    /// acquisition or renewal: lost once <see cref="LeaseTerms.LocalValidity"/> has passed (whatever a renewal in flight
    /// may still answer), renew once <see cref="LeaseTerms.RenewInterval"/> has passed, else hold.
    /// </summary>
    public static LeaseStep Next(LeaseTerms terms, TimeSpan sinceGrant)
    {
        ArgumentNullException.ThrowIfNull(terms);
        if (sinceGrant < TimeSpan.Zero || sinceGrant >= terms.LocalValidity)
        {
            // A negative age means a clock that went backwards: trust nothing.
            return LeaseStep.Lost;
        }

        return sinceGrant >= terms.RenewInterval ? LeaseStep.Renew : LeaseStep.Hold;
    }

    /// <summary>How long the holder may still drive rounds (zero when lost); also the longest a renewal may take.</summary>
    public static TimeSpan Remaining(LeaseTerms terms, TimeSpan sinceGrant)
    {
        ArgumentNullException.ThrowIfNull(terms);
        return Next(terms, sinceGrant) == LeaseStep.Lost ? TimeSpan.Zero : terms.LocalValidity - sinceGrant;
    }

    /// <summary>
    /// Whether a silo may take the lease given the current row (null: none yet): only when nobody holds an unexpired
    /// lease. The silo that held it takes it again only through a new acquisition (a new epoch), never by reviving an
    /// expired one, so writes of its old epoch stay refused.
    /// </summary>
    public static bool MayAcquire(CoordinatorLeaseRecord? current, DateTimeOffset databaseNow)
        => current is null || current.ExpiresUtc <= databaseNow;

    /// <summary>The epoch a successful acquisition gets: one more than the row's (1 for the first).</summary>
    public static long NextEpoch(CoordinatorLeaseRecord? current) => current is null ? 1 : checked(current.Epoch + 1);

    /// <summary>
    /// The fencing rule for a write by <paramref name="holder"/> with <paramref name="epoch"/>: null when the write may
    /// go ahead (the row names this holder and epoch and has not expired), else the reason it is refused.
    /// </summary>
    public static string? Fence(CoordinatorLeaseRecord? current, string holder, long epoch, DateTimeOffset databaseNow)
    {
        ArgumentException.ThrowIfNullOrEmpty(holder);
        if (current is null)
        {
            return "no coordinator lease exists for this federation";
        }

        if (current.Epoch != epoch)
        {
            return $"the coordinator lease is at epoch {current.Epoch} (held by {current.Holder}), this writer holds epoch {epoch}";
        }

        if (!string.Equals(current.Holder, holder, StringComparison.Ordinal))
        {
            return $"the coordinator lease of epoch {epoch} is held by {current.Holder}, not {holder}";
        }

        if (current.ExpiresUtc <= databaseNow)
        {
            return string.Create(CultureInfo.InvariantCulture, $"the coordinator lease of epoch {epoch} expired at {current.ExpiresUtc:O}");
        }

        return null;
    }
}
