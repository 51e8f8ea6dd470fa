using SecureFed.Experiments;
using SecureFed.PrivacyAudit.Internal;
using SecureFed.Testing;

namespace SecureFed.PrivacyAudit.Tests;

/// <summary>How many natural sentences the plan audits, and what it says when that is fewer than asked for.</summary>
public sealed class AuditPlanTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-audit-plan-").FullName;

    [Fact]
    public void Create_MoreAuditSentencesThanHalfTheSite_AuditsHalfAndSaysSo()
    {
        ExperimentData data = Split(train: 150); // site-1: 50 sentences

        AuditPlan plan = AuditPlan.Create(data, Options(auditSentences: 400), seed: 1);

        Assert.Equal(25, plan.NaturalSentences.Count);
        Assert.NotNull(plan.Note);
        Assert.Contains("--audit-sentences 400", plan.Note, StringComparison.Ordinal);
        Assert.Contains("site-1's 50 training sentences", plan.Note, StringComparison.Ordinal);
        Assert.Contains("auditing 25 natural sentences", plan.Note, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(20)]
    [InlineData(25)]
    [InlineData(0)]
    public void Create_AuditSentencesWithinHalfTheSite_AuditsThemWithoutANote(int requested)
    {
        ExperimentData data = Split(train: 150);

        AuditPlan plan = AuditPlan.Create(data, Options(requested), seed: 1);

        Assert.Equal(requested, plan.NaturalSentences.Count);
        Assert.Null(plan.Note);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private ExperimentData Split(int train)
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: train, eval: 20);
        return new ExperimentRunner(new ExperimentOptions { DataDirectory = corpus, Sites = 3, Rounds = 1, ConfigName = "tiny" }).LoadSplit(1);
    }

    private PrivacyAuditOptions Options(int auditSentences) => new()
    {
        Experiment = new ExperimentOptions { DataDirectory = _dir, Sites = 3, Rounds = 1, ConfigName = "tiny" },
        Canaries = 2,
        Repeats = 2,
        Candidates = 10,
        AuditCanaries = 4,
        AuditSentences = auditSentences,
        GroupCanaries = 2,
        GroupSize = 2,
    };

    [Fact]
    public void Validate_NoEpsilonAndSkipNoDp_NamesTheOptionsTheUserTyped()
    {
        // The message named "--no-dp-arm off", an option that does not exist (CLI crash hunt, session 57).
        var options = new PrivacyAuditOptions { Experiment = new ExperimentOptions { DataDirectory = _dir, Sites = 3, Rounds = 1, ConfigName = "tiny" }, Epsilons = [], IncludeNoDp = false };

        var ex = Assert.Throws<ArgumentException>(options.Validate);

        Assert.StartsWith("--epsilon none with --skip-no-dp leaves no arm to audit", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("--no-dp-arm", ex.Message, StringComparison.Ordinal);
    }
}
