using System.Globalization;
namespace SecureFed.Cluster.Lease;

/// <summary>
/// How long a coordinator lease lasts and when its holder renews it. The database sets the expiry from its own clock
/// (<c>clock_timestamp() + Duration</c>); the holder counts from the moment it <em>sent</em> the acquire or renew
/// statement, on its own monotonic clock, and stops <see cref="SafetyMargin"/> before that, so it stops driving rounds
/// before any other silo can take the lease (as long as the two clocks run at about the same rate; the margin covers
/// drift and a pause of the holder between its check and its write, and writes are fenced by the epoch anyway).
/// </summary>
/// <param name="Duration">Lease length, as written into the database on acquire and every renewal.</param>
/// <param name="RenewInterval">The holder renews once this much time has passed since its last successful renewal.</param>
/// <param name="SafetyMargin">The holder considers the lease lost this long before it would expire.</param>
public sealed record LeaseTerms(TimeSpan Duration, TimeSpan RenewInterval, TimeSpan SafetyMargin)
{
    /// <summary>15 s leases renewed every 3 s, given up 3 s early: about 4 renewal attempts before a holder stops.</summary>
    public static LeaseTerms Default { get; } = new(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(3));

    /// <summary>How long after sending an acquire or renew statement the holder may still drive rounds.</summary>
    public TimeSpan LocalValidity => Duration - SafetyMargin;

    /// <summary>Every problem with these terms, naming the setting (empty when valid).</summary>
    public IReadOnlyList<string> Validate(string prefix)
    {
        var problems = new List<string>();
        if (Duration < TimeSpan.FromSeconds(1) || Duration > TimeSpan.FromMinutes(10))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}LeaseSeconds must be between 1 and 600, got {Duration.TotalSeconds:0.###}."));
        }

        if (SafetyMargin <= TimeSpan.Zero || SafetyMargin >= Duration)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}LeaseSafetyMarginSeconds must be above 0 and below LeaseSeconds ({Duration.TotalSeconds:0.###}), got {SafetyMargin.TotalSeconds:0.###}."));
        }
        else if (RenewInterval <= TimeSpan.Zero || RenewInterval >= Duration - SafetyMargin)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{prefix}LeaseRenewSeconds must be above 0 and below LeaseSeconds − LeaseSafetyMarginSeconds ({(Duration - SafetyMargin).TotalSeconds:0.###}), got {RenewInterval.TotalSeconds:0.###}."));
        }

        return problems;
    }
}
