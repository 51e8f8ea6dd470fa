using SecureFed.Tagger;

namespace SecureFed.PrivacyAudit.Internal;

/// <summary>
/// Every sentence the attacks score, fixed for a run: per exposure canary (secret or control) the canary followed by
/// its candidates, the audit canaries, the group canaries and the natural audit sentences.
/// </summary>
internal sealed class AttackTargets
{
    public AttackTargets(IReadOnlyList<(bool Inserted, Sentence[] Sentences)> exposure, Sentence[] audit, Sentence[] group, Sentence[] natural)
    {
        Exposure = exposure;
        Audit = audit;
        Group = group;
        Natural = natural;
    }

    public IReadOnlyList<(bool Inserted, Sentence[] Sentences)> Exposure { get; }

    public Sentence[] Audit { get; }

    public Sentence[] Group { get; }

    public Sentence[] Natural { get; }

    public int Count => Exposure.Sum(e => e.Sentences.Length) + Audit.Length + Group.Length + Natural.Length;

    /// <summary>log p(tags | tokens) of every target under <paramref name="model"/>.</summary>
    public AttackScores Score(TaggerModel model, CancellationToken cancellationToken)
    {
        var exposure = new double[Exposure.Count][];
        for (int i = 0; i < exposure.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            exposure[i] = TaggerScorer.LogLikelihoods(model, Exposure[i].Sentences);
        }

        cancellationToken.ThrowIfCancellationRequested();
        return new AttackScores(exposure, TaggerScorer.LogLikelihoods(model, Audit), TaggerScorer.LogLikelihoods(model, Group), TaggerScorer.LogLikelihoods(model, Natural));
    }
}
