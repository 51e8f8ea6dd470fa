using System.Globalization;
using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.PrivacyAudit.Internal;

/// <summary>
/// What the audited site (site-1) trains on, and what the auditor knows about it. Three populations:
/// <list type="bullet">
/// <item>exposure canaries: k secret canaries, each inserted r times (always in), and k control canaries drawn the
/// same way but never inserted (their exposure is the chance level under the same model);</item>
/// <item>audit canaries: m canaries, each inserted once with probability ½ (Steinke et al.'s randomised inclusion);</item>
/// <item>group canaries: m_g canaries, each inserted r_g times with probability ½ (all copies or none): the same audit
/// for a group of r_g sentences;</item>
/// <item>natural audit sentences: n of the site's own sentences, each kept in training with probability ½; the ones
/// dropped are the held-out non-members of the membership-inference test.</item>
/// </list>
/// Every other sentence of every site is trained on as usual. The same plan serves every arm of a run.
/// </summary>
internal sealed class AuditPlan
{
    private AuditPlan(ExperimentData data, CanaryGenerator generator, IReadOnlyList<(int Id, int Phrase)> exposure, IReadOnlyList<(int Id, int Phrase)> control,
        IReadOnlyList<(int Id, int Phrase)> audit, IReadOnlyList<bool> auditIncluded, IReadOnlyList<(int Id, int Phrase)> group, IReadOnlyList<bool> groupIncluded,
        IReadOnlyList<Sentence> natural, IReadOnlyList<bool> naturalIncluded, IReadOnlyList<bool> auditEntity, IReadOnlyList<bool> groupEntity)
    {
        AuditCanaryEntity = auditEntity;
        GroupCanaryEntity = groupEntity;
        GroupCanaries = group;
        GroupCanaryIncluded = groupIncluded;
        ControlCanaries = control;
        Data = data;
        Generator = generator;
        ExposureCanaries = exposure;
        AuditCanaries = audit;
        AuditCanaryIncluded = auditIncluded;
        NaturalSentences = natural;
        NaturalIncluded = naturalIncluded;
    }

    /// <summary>
    /// Set when fewer natural sentences are audited than <c>--audit-sentences</c> asked for (at most half of the audited
    /// site's training sentences can be audited): says how many are, so the figures are not read as the requested count.
    /// </summary>
    public string? Note { get; private init; }

    /// <summary>The experiment's data with site-1's training set changed as described.</summary>
    public ExperimentData Data { get; }

    public CanaryGenerator Generator { get; }

    public IReadOnlyList<(int Id, int Phrase)> ExposureCanaries { get; }

    /// <summary>k canaries drawn like the secret ones but never inserted: their exposure is the chance level under the same model.</summary>
    public IReadOnlyList<(int Id, int Phrase)> ControlCanaries { get; }

    public IReadOnlyList<(int Id, int Phrase)> AuditCanaries { get; }

    public IReadOnlyList<bool> AuditCanaryIncluded { get; }

    /// <summary>Canaries each inserted r_g times (all copies or none) with probability ½.</summary>
    public IReadOnlyList<(int Id, int Phrase)> GroupCanaries { get; }

    public IReadOnlyList<bool> GroupCanaryIncluded { get; }

    /// <summary>The random label of each audit canary's name (true: B-&lt;type&gt;, false: O), drawn independently of its inclusion.</summary>
    public IReadOnlyList<bool> AuditCanaryEntity { get; }

    /// <summary>The random label of each group canary's name.</summary>
    public IReadOnlyList<bool> GroupCanaryEntity { get; }

    /// <summary>The labelled sentence of audit canary <paramref name="i"/>.</summary>
    public Sentence AuditSentence(int i) => Generator.Sentence(AuditCanaries[i].Id, AuditCanaries[i].Phrase, AuditCanaryEntity[i]);

    /// <summary>The labelled sentence of group canary <paramref name="i"/>.</summary>
    public Sentence GroupSentence(int i) => Generator.Sentence(GroupCanaries[i].Id, GroupCanaries[i].Phrase, GroupCanaryEntity[i]);

    public IReadOnlyList<Sentence> NaturalSentences { get; }

    public IReadOnlyList<bool> NaturalIncluded { get; }

    /// <summary>The entity type canary names are tagged with (the first of the data's types).</summary>
    public string EntityType => Data.EntityTypes[0];

    public static AuditPlan Create(ExperimentData data, PrivacyAuditOptions options, int seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(options);
        if (data.EntityTypes.Count == 0)
        {
            throw new InvalidDataException("The corpus has no entity type to tag canary names with.");
        }

        var random = new Random(unchecked((seed * 7_919) + 15));
        var generator = new CanaryGenerator(unchecked((seed * 104_729) + 15), data.EntityTypes[0]);
        SiteData target = data.Sites[0];
        int naturalCount = Math.Min(options.AuditSentences, target.Train.Count / 2);
        if (options.AuditSentences > 0 && naturalCount < 2)
        {
            throw new InvalidDataException($"{target.Name} has {target.Train.Count} training sentences: too few to hold half of them out for membership inference.");
        }

        // The natural audit sentences: a random subset of the site's own data, each kept with probability ½.
        int[] shuffled = [.. Enumerable.Range(0, target.Train.Count)];
        random.Shuffle(shuffled);
        var auditIndex = new HashSet<int>(shuffled.Take(naturalCount));
        Sentence[] natural = [.. shuffled.Take(naturalCount).Select(i => target.Train[i])];
        bool[] naturalIn = [.. natural.Select(_ => random.NextDouble() < 0.5)];

        var exposure = new List<(int, int)>();
        for (int i = 0; i < options.Canaries; i++)
        {
            exposure.Add(generator.Next());
        }

        var control = new List<(int, int)>();
        for (int i = 0; i < options.Canaries; i++)
        {
            control.Add(generator.Next());
        }

        var audit = new List<(int, int)>();
        for (int i = 0; i < options.AuditCanaries; i++)
        {
            audit.Add(generator.Next());
        }

        bool[] auditIn = [.. audit.Select(_ => random.NextDouble() < 0.5)];
        var group = new List<(int, int)>();
        for (int i = 0; i < options.GroupCanaries; i++)
        {
            group.Add(generator.Next());
        }

        bool[] groupIn = [.. group.Select(_ => random.NextDouble() < 0.5)];
        // The audit canaries' labels: a fair coin each, independent of inclusion (and of the name).
        var labels = new Random(unchecked((seed * 6_007) + 15));
        bool[] auditEntity = [.. audit.Select(_ => labels.NextDouble() < 0.5)];
        bool[] groupEntity = [.. group.Select(_ => labels.NextDouble() < 0.5)];

        var train = new List<Sentence>();
        train.AddRange(Enumerable.Range(0, target.Train.Count).Where(i => !auditIndex.Contains(i)).Select(i => target.Train[i]));
        train.AddRange(natural.Where((_, i) => naturalIn[i]));
        foreach ((int id, int phrase) in exposure)
        {
            train.AddRange(Enumerable.Repeat(generator.Sentence(id, phrase), options.Repeats));
        }

        train.AddRange(audit.Select((c, i) => (c, i)).Where(x => auditIn[x.i]).Select(x => generator.Sentence(x.c.Item1, x.c.Item2, auditEntity[x.i])));
        for (int i = 0; i < group.Count; i++)
        {
            if (groupIn[i])
            {
                train.AddRange(Enumerable.Repeat(generator.Sentence(group[i].Item1, group[i].Item2, groupEntity[i]), options.GroupSize));
            }
        }

        Sentence[] mixed = [.. train];
        random.Shuffle(mixed);
        string source = string.Create(CultureInfo.InvariantCulture,
            $"{target.Source}; audit: {naturalIn.Count(b => !b)} of its sentences held out, {options.Canaries} canaries × {options.Repeats}, {auditIn.Count(b => b)} of {audit.Count} audit canaries in, {groupIn.Count(b => b)} of {group.Count} group canaries × {options.GroupSize} in");
        var sites = data.Sites.ToList();
        sites[0] = target with { Source = source, Train = mixed };
        string? note = naturalCount < options.AuditSentences
            ? string.Create(CultureInfo.InvariantCulture,
                $"--audit-sentences {options.AuditSentences:N0} is more than half of {target.Name}'s {target.Train.Count:N0} training sentences: auditing {naturalCount:N0} natural sentences (each audited sentence is in training with probability 1/2; the rest of the site's sentences always are)")
            : null;
        return new AuditPlan(data with { Sites = sites }, generator, exposure, control, audit, auditIn, group, groupIn, natural, naturalIn, auditEntity, groupEntity) { Note = note };
    }
}
