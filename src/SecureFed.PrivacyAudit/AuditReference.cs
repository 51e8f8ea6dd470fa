namespace SecureFed.PrivacyAudit;

/// <summary>The reference model the attacks calibrate each example's score against (its log-likelihood is subtracted).</summary>
public enum AuditReference
{
    /// <summary>
    /// Per arm, the same training (same recipe, same ε, same initial model) of the federation without the audited site:
    /// a model that never saw any target but saw the same distribution and recipe (one "out" reference model, as in LiRA's offline variant).
    /// </summary>
    WithoutSite,

    /// <summary>The arms' initial model (random, or the public warm start): cheap, but a poor reference once training moved far from it.</summary>
    Initial,
}
