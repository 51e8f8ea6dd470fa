namespace SecureFed.Reliability.Tests;

/// <summary>What the fake aggregator does wrong in its second round (the first round is always honest).</summary>
public enum AggregatorMisbehaviour
{
    /// <summary>Honest: every message as a real aggregator would send it.</summary>
    None,

    /// <summary>The unmasking request lists a peer as survivor and as dropped (asks for its b-share and its s-share).</summary>
    BothSharesOfPeer,

    /// <summary>The unmasking request carries another survivor set than the one the agent signed.</summary>
    UnsignedSurvivorSet,

    /// <summary>The unmasking request carries fewer than t consistency signatures.</summary>
    TooFewSignatures,

    /// <summary>One of the consistency signatures in the unmasking request is forged.</summary>
    ForgedSignature,

    /// <summary>The announced model is streamed with more parameters than the site's model has.</summary>
    ModelWrongLength,

    /// <summary>The streamed model differs from the announced SHA-256.</summary>
    ModelWrongDigest,

    /// <summary>AdvertiseKeys fails with an unhandled exception on the aggregator (grpc-dotnet answers Unknown).</summary>
    ServerError,

    /// <summary>The round is announced with protocol version 1 (no self-mask commitment).</summary>
    OldProtocolVersion,

    /// <summary>
    /// The round is announced over a sparse (Harary) masking graph of degree 2 with t = 2 instead of the complete graph:
    /// each site's secrets would be shared with only two neighbours, so two colluding sites could unmask it.
    /// </summary>
    SmallSparseGraph,

    /// <summary>Split patient-level noise as an honest aggregator would announce it: 2 shares, 1 DP-SGD step (bound into the digest).</summary>
    SplitNoise,

    /// <summary>Split patient-level noise (2 shares) with no step cap: a site's several local steps would each carry only its share.</summary>
    SplitNoiseManySteps,

    /// <summary>Split patient-level noise into 4 shares with t = 3: a sum of t sites would carry less than σ.</summary>
    SplitNoiseAboveThreshold,

    /// <summary>
    /// The agent is announced split noise (2 shares, 1 step) but the round's digest, which the simulated peers sign, binds
    /// neither (as if the other sites had been shown the whole σ): the agent's context differs, so the round must fail.
    /// </summary>
    SplitNoiseHiddenFromPeers,

    /// <summary>Layer scales as an honest aggregator announces them: one per tensor of the agent's model (<see cref="MaliciousAggregatorTests.AnnouncedLayerScales"/>), bound into the digest.</summary>
    LayerScales,

    /// <summary>Layer scales with one factor fewer than the agent's model has tensors.</summary>
    LayerScalesWrongCount,

    /// <summary>Layer scales with a factor of 1e9 (outside [1e-6, 1e6]).</summary>
    LayerScalesOutOfRange,

    /// <summary>Layer scales announced to the agent but not bound into the digest the simulated peers sign.</summary>
    LayerScalesHiddenFromPeers,
}
