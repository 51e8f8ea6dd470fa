namespace SecureFed.Protocol;

/// <summary>Which secret a revealed share belongs to.</summary>
public enum RevealedShareKind
{
    /// <summary>A share of a survivor's self-mask seed b_u.</summary>
    SelfMaskSeed,

    /// <summary>A share of a dropped site's masking private key s_u^SK.</summary>
    MaskingKey,
}
