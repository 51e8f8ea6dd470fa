using SecureFed.Protocol;

namespace SecureFed.Cluster;

/// <summary>
/// What the round grain needs to open a round: the round's parameters (as the single-process aggregator builds them,
/// federated-evaluation layout and DP-SGD bindings included, so the round digest is the same) and the slice size, in
/// words, that cuts the input vector into slices.
/// </summary>
[GenerateSerializer]
[Alias("securefed.ClusterRoundSpec")]
public sealed record ClusterRoundSpec(
    [property: Id(0)] string Federation,
    [property: Id(1)] long Round,
    [property: Id(2)] string SessionId,
    [property: Id(3)] Participant[] Participants,
    [property: Id(4)] int Threshold,
    [property: Id(5)] int GraphDegree,
    [property: Id(6)] int VectorLength,
    [property: Id(7)] int BitWidth,
    [property: Id(8)] int SliceSize,
    [property: Id(9)] string[]? EvaluationEntityTypes = null,
    [property: Id(10)] int EvaluationCountCap = 0,
    [property: Id(11)] int DpSgdMaxSteps = 0,
    [property: Id(12)] int DpSgdNoiseShares = 0,
    [property: Id(13)] float[]? DpSgdLayerScales = null,
    [property: Id(14)] int ConsistencyColluders = 0)
{
    /// <summary>The spec of a round with <paramref name="parameters"/>, cut into slices of <paramref name="sliceSize"/> words.</summary>
    public static ClusterRoundSpec From(RoundParameters parameters, int sliceSize)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var spec = new ClusterRoundSpec(parameters.FederationId, parameters.Round, parameters.SessionId, [.. parameters.Participants], parameters.Threshold,
            parameters.GraphDegree, parameters.VectorLength, parameters.BitWidth, sliceSize,
            parameters.Evaluation is null ? null : [.. parameters.Evaluation.EntityTypes], parameters.Evaluation?.CountCap ?? 0,
            parameters.DpSgdMaxSteps, parameters.DpSgdNoiseShares, parameters.DpSgdLayerScales.Count == 0 ? null : [.. parameters.DpSgdLayerScales],
            parameters.ConsistencyColluders);

        // Every signature of the round binds the parameters' digest: a spec that lost a bound parameter (one added to
        // RoundParameters but not here) would make the round grain refuse every honest message, so refuse it here, by name.
        if (!spec.ToParameters().Digest.AsSpan().SequenceEqual(parameters.Digest))
        {
            throw new ArgumentException($"round {parameters.Round}: the cluster's round spec does not carry every parameter bound into the round digest (ClusterRoundSpec must gain the missing one)", nameof(parameters));
        }

        return spec;
    }

    /// <summary>The round parameters (validated by <see cref="RoundParameters"/>; its digest binds every message of the round).</summary>
    public RoundParameters ToParameters() => new(Federation, Round, SessionId, Participants, Threshold, GraphDegree, VectorLength, BitWidth,
        EvaluationEntityTypes is null ? null : EvaluationLayout.Create(EvaluationEntityTypes, EvaluationCountCap), DpSgdMaxSteps, DpSgdNoiseShares, DpSgdLayerScales,
        ConsistencyColluders);

    /// <summary>The slices of this round's vector.</summary>
    public SliceLayout Layout => new(VectorLength, SliceSize);
}
