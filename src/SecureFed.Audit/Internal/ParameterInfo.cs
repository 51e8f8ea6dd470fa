namespace SecureFed.Audit.Internal;

/// <summary>How the report names a round parameter logged in round.opened: a label, a unit and what it means.</summary>
internal sealed record ParameterInfo(string Label, string Unit, string Meaning)
{
    private static readonly Dictionary<string, ParameterInfo> Known = new(StringComparer.Ordinal)
    {
        [AuditFieldNames.Threshold] = new("threshold t", "sites", "sites whose shares are needed to unmask the sum (Shamir threshold)"),
        ["graph_degree"] = new("masking graph degree k", "neighbours", "pairwise masks each site shares"),
        ["graph_policy"] = new("masking graph policy", "complete or sparse", "complete: complete graph up to 512 sites; sparse: SecAgg+ Harary graph wherever the planner allows"),
        ["consistency_colluders"] = new("consistency quorum's colluders c", "sites", "unmasking waits for max(t, ⌊(n + c)/2⌋ + 1) signatures on the survivor set, so the aggregator and c colluding sites cannot have two survivor sets signed (absent: the graph's own)"),
        [AuditFieldNames.BitWidth] = new("bit width", "bits", "per quantized coordinate of the masked vector"),
        [AuditFieldNames.VectorLength] = new("vector length", "coordinates", "model parameters plus one weight coordinate"),
        ["dp.l2_clip"] = new("site update clip S", "L2 norm", "each site's model update is clipped to this norm"),
        ["dp.site_noise_multiplier"] = new("site-level noise multiplier z", "× S", "distributed discrete Gaussian noise of the summed update"),
        ["dp.sigma_site_quantized"] = new("per-site noise σ", "quantization steps", "discrete Gaussian each site adds before masking"),
        ["dp.scale"] = new("quantization scale", "steps per unit", "fixed-point scale of the quantized update"),
        ["dp.delta"] = new("δ", "probability", "δ of both privacy guarantees"),
        ["dp.dp_sgd_noise_multiplier"] = new("DP-SGD noise multiplier σ", "× C", "Gaussian noise added to each batch's summed clipped gradients"),
        ["dp.dp_sgd_max_grad_norm"] = new("DP-SGD gradient clip C", "L2 norm", "each example's gradient is clipped to this norm"),
        ["dp.dp_sgd_sample_rate"] = new("DP-SGD sampling rate q", "fraction per step", "Poisson sampling probability of each record"),
        ["dp.local_epochs"] = new("local epochs", "epochs", "local training passes over the site's data per round"),
        ["dp.dp_sgd_max_steps"] = new("DP-SGD step cap", "steps per round", "most DP-SGD steps a site takes in a round (local epochs × round(1/q), at most this; 0: no cap)"),
        ["dp.dp_sgd_noise_shares"] = new("patient-level noise shares k", "shares", "0: each site adds the whole DP-SGD noise; k ≥ 2: each adds σ/√k (split noise: ε holds against the aggregator only while secure aggregation holds)"),
        ["dp.dp_sgd_layer_scales"] = new("DP-SGD layer scales", "factors", "layer-wise factors each example's gradient is scaled by before clipping (0: none; ε unchanged)"),
        ["dp.dp_sgd_layer_scales_sha256"] = new("DP-SGD layer scales SHA-256", "digest", "of the announced layer-wise factors (empty: none)"),
        ["federated_evaluation"] = new("federated evaluation", "true or false", "sites score the round's starting model on their own dev data, summed with secure aggregation"),
    };

    /// <summary>Fields of round.opened that differ per round by nature and are shown in the rounds table instead.</summary>
    public static readonly HashSet<string> PerRound = new(StringComparer.Ordinal)
    {
        AuditFieldNames.Round, "session", AuditFieldNames.Cohort, AuditFieldNames.ModelVersion,
    };

    public static ParameterInfo For(string path) =>
        Known.TryGetValue(path, out ParameterInfo? info) ? info : new ParameterInfo(path, string.Empty, string.Empty);
}
