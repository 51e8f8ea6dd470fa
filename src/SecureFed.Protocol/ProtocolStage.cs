namespace SecureFed.Protocol;

/// <summary>The stages of one secure-aggregation round (Bonawitz et al. 2017, active-adversary variant).</summary>
public enum ProtocolStage
{
    /// <summary>Round 0: every site advertises two signed X25519 public keys.</summary>
    AdvertiseKeys = 0,

    /// <summary>Round 1: every site sends encrypted Shamir shares of b_u and s_u to its neighbours.</summary>
    ShareKeys = 1,

    /// <summary>Round 2: every site uploads its masked input y_u.</summary>
    MaskedInputCollection = 2,

    /// <summary>Round 3: survivors sign the set of sites whose masked input arrived.</summary>
    ConsistencyCheck = 3,

    /// <summary>Round 4: survivors reveal b-shares of survivors and s-shares of dropped sites.</summary>
    Unmasking = 4,

    /// <summary>The sum has been reconstructed.</summary>
    Completed = 5,

    /// <summary>The round was abandoned; nothing was revealed after the abort.</summary>
    Aborted = 6,
}
