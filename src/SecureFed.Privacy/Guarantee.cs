namespace SecureFed.Privacy;

/// <summary>Which privacy guarantee a ledger entry is accounted against.</summary>
public enum Guarantee
{
    /// <summary>Patient (record) level: DP-SGD inside each site's local training.</summary>
    Record,

    /// <summary>Site (update) level: distributed DP on the aggregated model updates.</summary>
    Site,

    /// <summary>
    /// Patient (record) level if the aggregator and every other site collude: the same DP-SGD steps accounted at the
    /// noise this site added itself. Equal to <see cref="Record"/> except in rounds with split patient-level noise
    /// (docs/PROTOCOL.md, "Split patient-level noise"), where a site adds only σ/√k. In the ledger a
    /// <see cref="Record"/> entry also counts here unless the entry just before it is a <see cref="RecordCollusion"/>
    /// entry of the same round (which then replaces it for this guarantee).
    /// </summary>
    RecordCollusion,
}
