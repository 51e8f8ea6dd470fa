using SecureFed.Protocol;

namespace SecureFed.Aggregator;

/// <summary>Where a round attempt is: its stage, who is expected there and who has delivered.</summary>
/// <param name="Stage">The stage collecting messages.</param>
/// <param name="Expected">Parties expected at this stage (the previous stage's survivors).</param>
/// <param name="Delivered">Parties that delivered for this stage.</param>
public sealed record RoundServerStatus(ProtocolStage Stage, IReadOnlyCollection<int> Expected, IReadOnlyCollection<int> Delivered);
