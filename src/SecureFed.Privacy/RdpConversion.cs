namespace SecureFed.Privacy;

/// <summary>How Rényi-DP guarantees are converted to an (epsilon, delta) statement.</summary>
public enum RdpConversion
{
    /// <summary>
    /// Mironov 2017, Proposition 3: <c>epsilon = rdp - log(delta) / (alpha - 1)</c> (TF-Privacy's classic <c>compute_eps</c>).
    /// </summary>
    Classic,

    /// <summary>
    /// Balle et al. 2020, Theorem 21 (Opacus <c>get_privacy_spent</c>, dp_accounting):
    /// <c>epsilon = rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)</c>.
    /// </summary>
    Improved,
}
