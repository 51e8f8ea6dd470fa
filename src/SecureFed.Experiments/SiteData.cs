using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>One site's training data.</summary>
/// <param name="Name">Site name (site-1, site-2, …).</param>
/// <param name="Source">Where its sentences come from (corpus folder and share).</param>
/// <param name="Train">Its training sentences; no other site sees them.</param>
/// <param name="EntityTypes">The entity types annotated in its data.</param>
public sealed record SiteData(string Name, string Source, IReadOnlyList<Sentence> Train, IReadOnlyList<string> EntityTypes);
