using System.Globalization;
using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// Everything the parties of one round must agree on. Its <see cref="Digest"/> is bound into every signature,
/// key derivation and associated data of the round, so an aggregator that shows different sites different cohorts,
/// thresholds or graphs makes the round fail instead of gaining anything.
/// </summary>
public sealed class RoundParameters
{
    private MaskingGraph? _graph;

    /// <summary>Creates and validates round parameters.</summary>
    /// <param name="federationId">Federation name.</param>
    /// <param name="round">Round number (≥ 1).</param>
    /// <param name="sessionId">Fresh random identifier chosen by the aggregator for this attempt of the round (hex).</param>
    /// <param name="participants">The cohort; indices must be exactly 1..n.</param>
    /// <param name="threshold">t.</param>
    /// <param name="graphDegree">Neighbours per site; n-1 for the complete graph.</param>
    /// <param name="vectorLength">m, words per input vector (update plus weight slot).</param>
    /// <param name="bitWidth">b: inputs and masks live in Z/2^b.</param>
    /// <param name="evaluation">
    /// The federated-evaluation slots of the input vector (null = none); bound into the digest so that an aggregator
    /// cannot show one site a different cap or type list than the others (docs/PROTOCOL.md, "Federated evaluation").
    /// </param>
    /// <param name="dpSgdMaxSteps">
    /// The announced cap of DP-SGD steps per round (0 = no cap: local epochs × 1/q); bound into the digest together with
    /// <paramref name="dpSgdNoiseShares"/> when either is non-zero (docs/PROTOCOL.md, "Split patient-level noise").
    /// </param>
    /// <param name="dpSgdNoiseShares">
    /// k: 0 or 1 = every site adds the whole DP-SGD noise; k ≥ 2 = every site adds 1/k of its variance (needs
    /// <paramref name="dpSgdMaxSteps"/> = 1 and k ≤ <paramref name="threshold"/>).
    /// </param>
    /// <param name="dpSgdLayerScales">
    /// The announced layer-wise DP-SGD preconditioner, one positive finite factor per parameter tensor (null or empty =
    /// none); bound into the digest when non-empty (docs/PROTOCOL.md, "Layer scales").
    /// </param>
    /// <param name="consistencyColluders">
    /// The colluding sites the round's consistency quorum is announced for (0 = the graph's own,
    /// <see cref="DefaultColluders"/>); at most t − 1, since t colluders rebuild any site's secrets from their own shares.
    /// Bound into the digest when non-zero (docs/PROTOCOL.md, "Consistency quorum").
    /// </param>
    public RoundParameters(string federationId, long round, string sessionId, IReadOnlyList<Participant> participants,
        int threshold, int graphDegree, int vectorLength, int bitWidth, EvaluationLayout? evaluation = null, int dpSgdMaxSteps = 0, int dpSgdNoiseShares = 0,
        IReadOnlyList<float>? dpSgdLayerScales = null, int consistencyColluders = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(federationId);
        ArgumentException.ThrowIfNullOrEmpty(sessionId);
        ArgumentNullException.ThrowIfNull(participants);
        ArgumentOutOfRangeException.ThrowIfLessThan(round, 1);
        int n = participants.Count;
        if (n < 2)
        {
            throw new ArgumentException($"A round needs at least 2 participants, got {n}.", nameof(participants));
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        var sorted = participants.OrderBy(p => p.Index).ToArray();
        for (int i = 0; i < n; i++)
        {
            Participant p = sorted[i];
            if (p.Index != i + 1)
            {
                throw new ArgumentException($"Participant indices must be exactly 1..{n}; found {p.Index} at position {i + 1}.", nameof(participants));
            }

            if (string.IsNullOrEmpty(p.Name) || !names.Add(p.Name))
            {
                throw new ArgumentException($"Participant names must be non-empty and distinct; '{p.Name}' is not.", nameof(participants));
            }

            if (p.IdentityPublicKey is null || p.IdentityPublicKey.Length != Ed25519.PublicKeySize)
            {
                throw new ArgumentException($"Participant '{p.Name}' has an identity key that is not {Ed25519.PublicKeySize} bytes.", nameof(participants));
            }
        }

        if (graphDegree < 2 && n > 2)
        {
            throw new ArgumentOutOfRangeException(nameof(graphDegree), graphDegree, "The graph degree must be at least 2.");
        }

        graphDegree = Math.Min(graphDegree, n - 1);
        if (graphDegree < n - 1 && graphDegree % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(graphDegree), graphDegree, "A Harary graph degree must be even.");
        }

        int holders = graphDegree + 1;
        if (threshold < 2 || threshold > holders)
        {
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, $"The threshold must be in [2, {holders}] (degree {graphDegree} + 1).");
        }

        if (2 * threshold <= holders)
        {
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold,
                $"The threshold must exceed half of the {holders} share holders, or a malicious aggregator could split the cohort.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(dpSgdMaxSteps);
        ArgumentOutOfRangeException.ThrowIfNegative(dpSgdNoiseShares);
        if (dpSgdNoiseShares >= 2 && dpSgdMaxSteps != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(dpSgdMaxSteps), dpSgdMaxSteps,
                $"Split patient-level noise ({dpSgdNoiseShares} shares) needs exactly 1 DP-SGD step per round.");
        }

        if (dpSgdNoiseShares > threshold)
        {
            throw new ArgumentOutOfRangeException(nameof(dpSgdNoiseShares), dpSgdNoiseShares,
                $"The patient-level noise cannot be split into more shares than the threshold t = {threshold}: a sum of t sites would carry less than the announced noise.");
        }

        float[] layerScales = dpSgdLayerScales is null ? [] : [.. dpSgdLayerScales];
        for (int i = 0; i < layerScales.Length; i++)
        {
            if (!(layerScales[i] > 0) || float.IsInfinity(layerScales[i]))
            {
                throw new ArgumentOutOfRangeException(nameof(dpSgdLayerScales), layerScales[i], $"Layer scale {i} must be a positive finite number.");
            }
        }

        if (consistencyColluders < 0 || consistencyColluders >= threshold)
        {
            throw new ArgumentOutOfRangeException(nameof(consistencyColluders), consistencyColluders,
                $"The consistency quorum can be announced for 0 to t − 1 = {threshold - 1} colluding sites: t colluders rebuild any site's secrets from their own shares, whatever the quorum.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(vectorLength, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(bitWidth, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bitWidth, 32);

        FederationId = federationId;
        Round = round;
        SessionId = sessionId;
        Participants = sorted;
        Threshold = threshold;
        GraphDegree = graphDegree;
        VectorLength = vectorLength;
        BitWidth = bitWidth;
        Evaluation = evaluation;
        DpSgdMaxSteps = dpSgdMaxSteps;
        DpSgdNoiseShares = dpSgdNoiseShares;
        DpSgdLayerScales = layerScales;
        ConsistencyColluders = consistencyColluders;
        Digest = ComputeDigest();
        Context = Convert.ToHexStringLower(Digest);
    }

    /// <summary>Federation name.</summary>
    public string FederationId { get; }

    /// <summary>Round number.</summary>
    public long Round { get; }

    /// <summary>Aggregator-chosen random identifier of this attempt.</summary>
    public string SessionId { get; }

    /// <summary>The cohort ordered by index (index i at position i-1).</summary>
    public IReadOnlyList<Participant> Participants { get; }

    /// <summary>t.</summary>
    public int Threshold { get; }

    /// <summary>Graph degree k.</summary>
    public int GraphDegree { get; }

    /// <summary>m.</summary>
    public int VectorLength { get; }

    /// <summary>b.</summary>
    public int BitWidth { get; }

    /// <summary>The federated-evaluation slots announced for the round, or null.</summary>
    public EvaluationLayout? Evaluation { get; }

    /// <summary>The announced cap of DP-SGD steps per round (0 = none).</summary>
    public int DpSgdMaxSteps { get; }

    /// <summary>The announced number of patient-level noise shares k (0 or 1 = not split).</summary>
    public int DpSgdNoiseShares { get; }

    /// <summary>The smallest layer scale an aggregator announces and an agent accepts (docs/PROTOCOL.md, "Layer scales").</summary>
    public const float MinLayerScale = 1e-6f;

    /// <summary>The largest layer scale an aggregator announces and an agent accepts.</summary>
    public const float MaxLayerScale = 1e6f;

    /// <summary>The announced layer-wise DP-SGD preconditioner (empty = none).</summary>
    public IReadOnlyList<float> DpSgdLayerScales { get; }

    /// <summary>
    /// The colluding sites the aggregator announced the consistency quorum for (0 = none beyond the graph's own
    /// <see cref="DefaultColluders"/>); every party guards against <see cref="QuorumColluders"/>.
    /// </summary>
    public int ConsistencyColluders { get; }

    /// <summary>SHA-256 of the canonical encoding (see docs/PROTOCOL.md).</summary>
    public byte[] Digest { get; }

    /// <summary>Lowercase hex of <see cref="Digest"/>: the session context bound into every label.</summary>
    public string Context { get; }

    /// <summary>n.</summary>
    public int CohortSize => Participants.Count;

    /// <summary>
    /// The consistency signatures a responder requires before it reveals a share, so that an aggregator together with up
    /// to <paramref name="colluders"/> sites cannot have two different survivor sets signed: max(t, ⌊(n + c)/2⌋ + 1).
    /// Each honest site signs one set; two sets each signed by q of the n sites share at least 2q − n signers, all of
    /// them colluders when the views differ, so q &gt; (n + c)/2 rules the split out. With only t signatures (c = 0, the
    /// protocol's minimum) the split needs c ≥ 2t − n colluders: one site when n is odd and t = ⌊n/2⌋ + 1, and one
    /// holder of the target under a sparse graph (docs/PROTOCOL.md, "Consistency quorum"; threat model C3).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="colluders"/> is negative.</exception>
    public int SignatureQuorum(int colluders)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(colluders);
        return Math.Max(Threshold, (int)Math.Min(((long)CohortSize + colluders) / 2 + 1, int.MaxValue));
    }

    /// <summary>
    /// The colluding sites every party of the round guards against at the consistency check: none beyond the protocol's
    /// t under the complete graph; under a sparse graph ⌈γ·n⌉ for the planner's assumed corrupt fraction γ
    /// (<see cref="GraphPlanner.DefaultCorruptFraction"/>), at most t − 1, since there t counts one site's k + 1 holders
    /// and t signatures out of the whole cohort would let one colluding holder split the view.
    /// </summary>
    public int DefaultColluders => GraphDegree >= CohortSize - 1
        ? 0
        : Math.Min((int)Math.Ceiling(GraphPlanner.DefaultCorruptFraction * CohortSize), Threshold - 1);

    /// <summary>
    /// The colluding sites every party of the round guards against at the consistency check: the announced
    /// <see cref="ConsistencyColluders"/> or the graph's <see cref="DefaultColluders"/>, whichever is larger. The
    /// aggregator moves to unmasking only with <see cref="SignatureQuorum"/> of them signed, and every responder requires
    /// as many (or more, for a site that guards against more: <c>ClientRound.Colluders</c>).
    /// </summary>
    public int QuorumColluders => Math.Max(ConsistencyColluders, DefaultColluders);

    /// <summary>
    /// How many colluding sites a quorum of <paramref name="signers"/> consistency signatures keeps from splitting the
    /// cohort's view of the survivors (2q − n − 1, negative when none), before the t − 1 bound of the shares themselves.
    /// </summary>
    public int SplitViewColluders(int signers) => (2 * signers) - CohortSize - 1;

    /// <summary>The masking graph (derived deterministically from the digest).</summary>
    public MaskingGraph Graph => _graph ??= GraphDegree >= CohortSize - 1
        ? MaskingGraph.Complete(CohortSize)
        : MaskingGraph.Harary(CohortSize, GraphDegree, SHA256.HashData(DomainLabel.Encode("graph-seed", Context)));

    /// <summary>The participant with <paramref name="index"/>.</summary>
    public Participant this[int index] => Participants[index - 1];

    /// <summary>Finds a participant by name.</summary>
    public Participant? Find(string name) => Participants.FirstOrDefault(p => p.Name == name);

    private byte[] ComputeDigest()
    {
        var fields = new List<string>
        {
            FederationId,
            Round.ToString(CultureInfo.InvariantCulture),
            SessionId,
            CohortSize.ToString(CultureInfo.InvariantCulture),
            Threshold.ToString(CultureInfo.InvariantCulture),
            GraphDegree.ToString(CultureInfo.InvariantCulture),
            VectorLength.ToString(CultureInfo.InvariantCulture),
            BitWidth.ToString(CultureInfo.InvariantCulture),
        };
        foreach (Participant p in Participants)
        {
            fields.Add(p.Index.ToString(CultureInfo.InvariantCulture));
            fields.Add(p.Name);
            fields.Add(Convert.ToHexStringLower(p.IdentityPublicKey));
        }

        if (Evaluation is not null)
        {
            fields.AddRange(Evaluation.DigestFields());
        }

        // Absent when both are 0, so the digests of rounds without a step cap or split noise are unchanged.
        if (DpSgdMaxSteps != 0 || DpSgdNoiseShares != 0)
        {
            fields.Add("dp-sgd");
            fields.Add(DpSgdMaxSteps.ToString(CultureInfo.InvariantCulture));
            fields.Add(DpSgdNoiseShares.ToString(CultureInfo.InvariantCulture));
        }

        // Absent when empty, so the digests of rounds without layer scales are unchanged.
        if (DpSgdLayerScales.Count > 0)
        {
            fields.Add("layer-scales");
            fields.Add(DpSgdLayerScales.Count.ToString(CultureInfo.InvariantCulture));
            fields.Add(LayerScalesSha256(DpSgdLayerScales));
        }

        // Absent when 0, so the digests of rounds without an announced consistency quorum are unchanged.
        if (ConsistencyColluders != 0)
        {
            fields.Add("consistency-colluders");
            fields.Add(ConsistencyColluders.ToString(CultureInfo.InvariantCulture));
        }

        return SHA256.HashData(DomainLabel.Encode("round-parameters", fields.ToArray()));
    }

    /// <summary>Lowercase hex SHA-256 of the scales as IEEE-754 binary32, little-endian, in order (docs/PROTOCOL.md, "Layer scales").</summary>
    /// <param name="scales">The layer scales.</param>
    /// <returns>64 hex digits.</returns>
    public static string LayerScalesSha256(IReadOnlyList<float> scales)
    {
        ArgumentNullException.ThrowIfNull(scales);
        byte[] bytes = new byte[scales.Count * sizeof(float)];
        for (int i = 0; i < scales.Count; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), scales[i]);
        }

        return Convert.ToHexStringLower(SHA256.HashData(bytes));
    }
}
