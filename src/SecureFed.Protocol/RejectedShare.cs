namespace SecureFed.Protocol;

/// <summary>
/// A revealed share the aggregator did not use because it is not on the polynomial of the rebuilt (and verified)
/// secret of <see cref="Owner"/>. The aggregator cannot tell who made it wrong: <see cref="Responder"/> revealed
/// another value than it received, or the owner dealt it a wrong one (the share envelope is sealed to the responder
/// and the dealer signs no per-holder commitment). So it names both and penalises neither (docs/PROTOCOL.md, "Blame").
/// </summary>
public sealed record RejectedShare(int Responder, int Owner, RevealedShareKind Kind)
{
    /// <summary>
    /// For logs and the audit log: "the share of b:'owner' that 'responder' revealed is off the polynomial of the other
    /// revealed shares: 'responder' or the dealer 'owner' lied".
    /// </summary>
    public string Describe(RoundParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        string responder = parameters[Responder].Name;
        string owner = parameters[Owner].Name;
        string kind = Kind == RevealedShareKind.SelfMaskSeed ? "b" : "s";
        return $"the share of {kind}:'{owner}' that '{responder}' revealed is off the polynomial of the other revealed shares: '{responder}' or the dealer '{owner}' lied";
    }
}
