namespace SecureFed.Protocol;

/// <summary>
/// A message or request that the protocol does not allow: the offending input is not used and the reason is given
/// in words a log reader understands. On the client this is also how it refuses a malicious aggregator.
/// </summary>
public sealed class ProtocolViolationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ProtocolViolationException(ProtocolStage stage, string reason, int? party = null)
        : base(party is null ? $"{stage}: {reason}" : $"{stage}: party {party}: {reason}")
    {
        Stage = stage;
        Reason = reason;
        Party = party;
    }

    /// <summary>The stage at which the violation was detected.</summary>
    public ProtocolStage Stage { get; }

    /// <summary>The human-readable reason.</summary>
    public string Reason { get; }

    /// <summary>The protocol index of the offending party, when one is to blame.</summary>
    public int? Party { get; }
}
