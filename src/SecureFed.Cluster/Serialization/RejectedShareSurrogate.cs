using SecureFed.Protocol;

namespace SecureFed.Cluster.Serialization;

/// <summary>The Orleans wire form of <see cref="RejectedShare"/> (the protocol types stay free of Orleans).</summary>
[GenerateSerializer]
[Alias("securefed.RejectedShare")]
public struct RejectedShareSurrogate
{
    /// <summary>RejectedShare.Responder.</summary>
    [Id(0)]
    public int Responder { get; set; }

    /// <summary>RejectedShare.Owner.</summary>
    [Id(1)]
    public int Owner { get; set; }

    /// <summary>RejectedShare.Kind.</summary>
    [Id(2)]
    public int Kind { get; set; }
}
