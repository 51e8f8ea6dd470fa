namespace SecureFed.Aggregator.Operations;

/// <summary>A cohort member's state in a round: only participation facts, never anything about its update.</summary>
/// <param name="State">What the site did.</param>
/// <param name="Stage">The stage it dropped at (for <see cref="SiteState.Dropped"/>).</param>
/// <param name="Reason">The reason it gave (for <see cref="SiteState.Declined"/>).</param>
internal sealed record ConsoleSite(SiteState State, string? Stage, string? Reason);
