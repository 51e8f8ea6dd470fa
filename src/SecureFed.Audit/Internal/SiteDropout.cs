namespace SecureFed.Audit.Internal;

/// <summary>A site the aggregator logged as dropped at a protocol stage of a round.</summary>
internal sealed record SiteDropout(string Site, string Stage, LogRef Source);
