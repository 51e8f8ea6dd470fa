namespace SecureFed.Aggregator.Operations;

/// <summary>
/// The low-cardinality reason label of <c>securefed.aggregator.refused</c>: one word per kind of refusal, never the
/// refusal's text (which names sites, rounds and sizes; it goes to the log and the audit log).
/// </summary>
internal static class RefusalReasons
{
    public const string MalformedUpload = "malformed_upload";
    public const string OversizedChunk = "oversized_chunk";
    public const string TooManyUploads = "too_many_uploads";
    public const string UploadTooSlow = "upload_too_slow";
    public const string TooManyBulkCalls = "too_many_bulk_calls";
    public const string TooManyCalls = "too_many_calls";

    /// <summary>A model download beyond a site's first of each new version and its bucket of repeats (<see cref="ModelDownloadGate"/>).</summary>
    public const string TooManyDownloads = "too_many_downloads";
    public const string DigestMismatch = "digest_mismatch";
    public const string MissingHeader = "missing_header";
    public const string NoCertificate = "no_certificate";
    public const string UnknownCertificate = "unknown_certificate";
    public const string ForwardedIdentity = "forwarded_identity";
    public const string OversizedField = "oversized_field";

    /// <summary>A request over its type's size limit, refused before it is parsed (<see cref="CheckedRequestBinder"/>).</summary>
    public const string OversizedRequest = "oversized_request";

    /// <summary>A request whose bytes are not its message, or hold an entry shorter than its value, refused before it is parsed.</summary>
    public const string MalformedRequest = "malformed_request";
    public const string WrongFederation = "wrong_federation";
    public const string WrongSender = "wrong_sender";
    public const string WrongStage = "wrong_stage";
    public const string RoundEnded = "round_ended";
    public const string StaleOrReplay = "stale_or_replay";
    public const string NotInCohort = "not_in_cohort";
    public const string Equivocation = "equivocation";
    public const string BadAccusation = "bad_accusation";
    public const string ProtocolViolation = "protocol_violation";
}
