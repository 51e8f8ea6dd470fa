namespace SecureFed.Audit;

/// <summary>Field names used by the <see cref="AuditEvents"/> vocabulary.</summary>
public static class AuditFieldNames
{
    /// <summary>Round number (integer).</summary>
    public const string Round = "round";

    /// <summary>Site id (the agent's actor).</summary>
    public const string Site = "site";

    /// <summary>List of site ids.</summary>
    public const string Sites = "sites";

    /// <summary>SHA-256 digest, lowercase hex.</summary>
    public const string Sha256 = "sha256";

    /// <summary>A masked input uploaded by slice (protocol version 4): the SHA-256 of each slice, by slice.</summary>
    public const string SlicesSha256 = "slices_sha256";

    /// <summary>Size in bytes.</summary>
    public const string Bytes = "bytes";

    /// <summary>Count.</summary>
    public const string Count = "count";

    /// <summary>Protocol stage.</summary>
    public const string Stage = "stage";

    /// <summary>Human-readable reason.</summary>
    public const string Reason = "reason";

    /// <summary>Error message.</summary>
    public const string Message = "message";

    /// <summary>Agent message type, e.g. <see cref="AuditEvents.MaskedInputMessageType"/>.</summary>
    public const string MessageType = "message_type";

    /// <summary>Cohort site ids.</summary>
    public const string Cohort = "cohort";

    /// <summary>Shamir threshold.</summary>
    public const string Threshold = "threshold";

    /// <summary>Bits per quantized coordinate.</summary>
    public const string BitWidth = "bit_width";

    /// <summary>Model vector length.</summary>
    public const string VectorLength = "vector_length";

    /// <summary>Differential-privacy parameters (object).</summary>
    public const string Dp = "dp";

    /// <summary>Surviving sites.</summary>
    public const string Survivors = "survivors";

    /// <summary>Dropped sites.</summary>
    public const string Dropped = "dropped";

    /// <summary>Number of self-mask seed shares returned.</summary>
    public const string BShares = "b_shares";

    /// <summary>Number of pairwise-key shares returned.</summary>
    public const string SShares = "s_shares";

    /// <summary>The sites whose self-mask shares an unmasking response revealed (survivors: their inputs are in the sum).</summary>
    public const string BShareOwners = "b_share_owners";

    /// <summary>Model version.</summary>
    public const string ModelVersion = "model_version";

    /// <summary>Model version (agent side).</summary>
    public const string Version = "version";

    /// <summary>Sites whose inputs are in the aggregate.</summary>
    public const string Participants = "participants";

    /// <summary>Name of a privacy guarantee (e.g. "sample-level", "site-level").</summary>
    public const string Guarantee = "guarantee";

    /// <summary>Epsilon spent so far.</summary>
    public const string Epsilon = "epsilon";

    /// <summary>Delta.</summary>
    public const string Delta = "delta";

    /// <summary>The ε budget the logging actor checks this guarantee against.</summary>
    public const string Budget = "budget";

    /// <summary>The zCDP ρ a site-level charge (privacy.spent, privacy.ledger) adds for its round.</summary>
    public const string Rho = "rho";
}
