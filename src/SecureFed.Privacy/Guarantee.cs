namespace SecureFed.Privacy;

/// <summary>Which privacy guarantee a ledger entry is accounted against.</summary>
public enum Guarantee
{
    /// <summary>Patient (record) level: DP-SGD inside each site's local training.</summary>
    Record,

    /// <summary>Site (update) level: distributed DP on the aggregated model updates.</summary>
    Site,
}
