using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The canonical description of the aggregator's round-affecting settings (<see cref="RoundSettings"/>), which a cluster
/// coordinator saves and a successor compares with its own: every round-affecting setting changes the digest, the others
/// do not, every setting of <see cref="AggregatorOptions"/> is classified, and the text is sorted and culture-invariant.
/// </summary>
public sealed class RoundSettingsTests
{
    /// <summary>Each round-affecting setting with a change of it (adam rule with a noise variance, so every server hyper-parameter is read).</summary>
    public static TheoryData<string, Action<AggregatorOptions>> RoundAffecting => new()
    {
        { "Rounds", o => o.Rounds = 11 },
        { "MinSites", o => o.MinSites = 3 },
        { "Threshold", o => o.Threshold = 3 },
        { "Graph", o => o.Graph = "sparse" },
        { "BlameExclusionRounds", o => o.BlameExclusionRounds = 4 },
        { "WeightCap", o => o.WeightCap = 9_999 },
        { "EpsilonBudget", o => o.EpsilonBudget = 8 },
        { "Delta", o => o.Delta = 1e-6 },
        { "L2Clip", o => o.L2Clip = 0.5 },
        { "SiteNoiseMultiplier", o => o.SiteNoiseMultiplier = 0.6 },
        { "ServerOptimizer", o => o.ServerOptimizer = "momentum" },
        { "ServerLearningRate", o => o.ServerLearningRate = 0.03 },
        { "ServerBeta1", o => o.ServerBeta1 = 0.8 },
        { "ServerBeta2", o => o.ServerBeta2 = 0.999 },
        { "ServerTau", o => o.ServerTau = 1e-7 },
        { "ServerNoiseVariance", o => o.ServerNoiseVariance = 2e-4 },
        { "ServerNoiseFloor", o => o.ServerNoiseFloor = 2 },
        { "DpSgdNoiseMultiplier", o => o.DpSgdNoiseMultiplier = 1.0 },
        { "DpSgdMaxGradNorm", o => o.DpSgdMaxGradNorm = 4 },
        { "DpSgdSampleRate", o => o.DpSgdSampleRate = 0.2 },
        { "LocalEpochs", o => o.LocalEpochs = 3 },
        { "DpSgdMaxSteps", o => o.DpSgdMaxSteps = 1 },
        { "DpSgdNoiseShares", o => o.DpSgdNoiseShares = 2 },
        { "ConsistencyColluders", o => o.ConsistencyColluders = 1 },
        { "DpSgdLayerScales", o => o.DpSgdLayerScales = [1f, 0.5f] },
        { "ModelSpecSha256", o => o.ModelSpecSha256 = new string('b', 64) },
        { "FederatedEvaluation", o => o.FederatedEvaluation = false },
        { "EvaluationEntityTypes", o => o.EvaluationEntityTypes = ["PROBLEM", "DRUG"] },
        { "EvaluationCountCap", o => o.EvaluationCountCap = 5_000 },
    };

    /// <summary>Each setting that is not round-affecting with a change of it.</summary>
    public static TheoryData<string, Action<AggregatorOptions>> NotRoundAffecting => new()
    {
        { "Federation", o => o.Federation = "other" },
        { "Listen", o => o.Listen = "https://127.0.0.1:9443" },
        { "KitDirectory", o => o.KitDirectory = "/elsewhere/kit" },
        { "DataDirectory", o => o.DataDirectory = "/elsewhere/data" },
        { "RepairTornAuditTail", o => o.RepairTornAuditTail = true },
        { "AcceptReadableKeys", o => o.AcceptReadableKeys = true },
        { "TrainingTimeoutSeconds", o => o.TrainingTimeoutSeconds = 60 },
        { "StageTimeoutSeconds", o => o.StageTimeoutSeconds = 30 },
        { "ProgressIntervalSeconds", o => o.ProgressIntervalSeconds = 5 },
        { "ProgressSilenceSeconds", o => o.ProgressSilenceSeconds = 120 },
        { "StragglerWaitFactor", o => o.StragglerWaitFactor = 0 },
        { "StragglerMinWaitSeconds", o => o.StragglerMinWaitSeconds = 300 },
        { "StageStragglerMinWaitSeconds", o => o.StageStragglerMinWaitSeconds = 5 },
        { "JoinTimeoutSeconds", o => o.JoinTimeoutSeconds = 30 },
        { "JoinGraceSeconds", o => o.JoinGraceSeconds = 5 },
        { "MaxRetryPauseSeconds", o => o.MaxRetryPauseSeconds = 5 },
        { "MaxConcurrentUploads", o => o.MaxConcurrentUploads = 16 },
        { "MinUploadWordsPerSecond", o => o.MinUploadWordsPerSecond = 0 },
        { "UploadGraceSeconds", o => o.UploadGraceSeconds = 5 },
        { "ModelDownloadBurst", o => o.ModelDownloadBurst = 2 },
        { "ModelDownloadRefillSeconds", o => o.ModelDownloadRefillSeconds = 5 },
        { "MaxBulkCallsPerSite", o => o.MaxBulkCallsPerSite = 4 },
        { "MaxCallsPerSite", o => o.MaxCallsPerSite = 32 },
        { "MaxConnectionsPerSite", o => o.MaxConnectionsPerSite = 16 },
        { "KeepModelVersions", o => o.KeepModelVersions = 5 },
        { "InitialModel", o => o.InitialModel = "/elsewhere/initial.bin" },
        { "ModelParameterCount", o => o.ModelParameterCount = 837 },
        { "AdminListen", o => o.AdminListen = "http://127.0.0.1:9090" },
        { "OperatorTokenVerifier", o => o.OperatorTokenVerifier = "/elsewhere/token.sha256" },
        { "OtlpEndpoint", o => o.OtlpEndpoint = "http://127.0.0.1:4317" },
    };

    [Theory]
    [MemberData(nameof(RoundAffecting))]
    public void Of_RoundAffectingSettingChanged_DigestChangesAndTheOnlyChangeNamesIt(string name, Action<AggregatorOptions> change)
    {
        AggregatorOptions before = Adam();
        AggregatorOptions after = Adam();
        change(after);

        RoundSettings saved = RoundSettings.Of(before);
        RoundSettings current = RoundSettings.Of(after);

        Assert.True(saved.Sha256 != current.Sha256, $"a change of {name} should change the digest, both are {saved.Sha256}");
        IReadOnlyList<RoundSettingChange> changes = current.ChangesFrom(saved);
        Assert.Contains(new RoundSettingChange(name, saved.Values[name], current.Values[name]), changes);
        // Another rule also stops reading adam's own hyper-parameters (they become "(unused)"); any other change is alone.
        string[] expected = name == "ServerOptimizer" ? ["ServerBeta2", "ServerNoiseFloor", "ServerNoiseVariance", "ServerOptimizer", "ServerTau"] : [name];
        Assert.Equal(expected, changes.Select(c => c.Name));
    }

    [Theory]
    [MemberData(nameof(NotRoundAffecting))]
    public void Of_SettingThatIsNotRoundAffectingChanged_SameDigestNoChanges(string name, Action<AggregatorOptions> change)
    {
        AggregatorOptions changed = Adam();
        change(changed);

        RoundSettings settings = RoundSettings.Of(changed);

        Assert.True(RoundSettings.Of(Adam()).Sha256 == settings.Sha256, $"a change of {name} should not change the digest");
        Assert.Empty(settings.ChangesFrom(RoundSettings.Of(Adam())));
        Assert.DoesNotContain(name, settings.Values.Keys);
    }

    [Fact]
    public void Names_EverySettingOfAggregatorOptionsClassifiedOnce_NoneForgotten()
    {
        string[] settable = [.. typeof(AggregatorOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanWrite).Select(p => p.Name).Order(StringComparer.Ordinal)];
        string[] classified = [.. RoundSettings.Names.Concat(RoundSettings.IgnoredNames).Order(StringComparer.Ordinal)];

        Assert.Equal(settable, classified);
        Assert.Equal(RoundAffecting.Select(r => (string)r[0]).Order(StringComparer.Ordinal), RoundSettings.Names);
        Assert.Equal(NotRoundAffecting.Select(r => (string)r[0]).Order(StringComparer.Ordinal), RoundSettings.IgnoredNames.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Canonical_DefaultSettings_SortedLinesAndDigestOfTheirUtf8Bytes()
    {
        RoundSettings settings = RoundSettings.Of(new AggregatorOptions { ModelSpecSha256 = new string('A', 64) });

        string[] lines = settings.Canonical.Split('\n');
        Assert.Equal("", lines[^1]); // every line ends with \n
        string[] names = [.. lines[..^1].Select(l => l[..l.IndexOf('=', StringComparison.Ordinal)])];
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(settings.Canonical))), settings.Sha256);
        Assert.Contains("Delta=1E-05\n", settings.Canonical, StringComparison.Ordinal);
        Assert.Contains("ServerOptimizer=average\n", settings.Canonical, StringComparison.Ordinal);
        Assert.Contains("ServerBeta1=(unused)\n", settings.Canonical, StringComparison.Ordinal);
        Assert.Contains("Graph=complete\n", settings.Canonical, StringComparison.Ordinal);
        Assert.Contains("ModelSpecSha256=" + new string('a', 64) + "\n", settings.Canonical, StringComparison.Ordinal);
        Assert.Equal(RoundSettings.Names.Count, names.Length);
    }

    [Fact]
    public void Of_UnderAnotherCulture_SameTextAndDigest()
    {
        CultureInfo original = CultureInfo.CurrentCulture;
        RoundSettings invariant = RoundSettings.Of(Adam());
        try
        {
            // A decimal comma and another minus sign (the tests run in globalization-invariant mode: no named cultures).
            var comma = (CultureInfo)CultureInfo.InvariantCulture.Clone();
            comma.NumberFormat.NumberDecimalSeparator = ",";
            comma.NumberFormat.NumberGroupSeparator = ".";
            comma.NumberFormat.NegativeSign = "\u2212";
            CultureInfo.CurrentCulture = comma;
            Assert.True(1.5.ToString(CultureInfo.CurrentCulture) == "1,5", "the test's culture should write 1.5 with a decimal comma");
            RoundSettings german = RoundSettings.Of(Adam());

            Assert.Equal(invariant.Canonical, german.Canonical);
            Assert.Equal(invariant.Sha256, german.Sha256);
            Assert.Contains("ServerLearningRate=0.02\n", german.Canonical, StringComparison.Ordinal);
            Assert.Contains("DpSgdLayerScales=1.5,0.25\n", german.Canonical, StringComparison.Ordinal);
        }
        finally
        {
            CultureInfo.CurrentCulture = original;
        }
    }

    [Fact]
    public void Of_SpellingsOfTheSameRuleAndGraph_SameDigest()
    {
        AggregatorOptions spelled = Adam();
        spelled.ServerOptimizer = "FedAdam";
        spelled.ModelSpecSha256 = spelled.ModelSpecSha256.ToUpperInvariant();

        Assert.Equal(RoundSettings.Of(Adam()).Sha256, RoundSettings.Of(spelled).Sha256);
    }

    [Fact]
    public void Of_AverageRule_HyperParametersItDoesNotReadDoNotCount()
    {
        var average = new AggregatorOptions { ServerOptimizer = "average" };
        var changed = new AggregatorOptions { ServerOptimizer = "average", ServerBeta1 = 0.5, ServerBeta2 = 0.5, ServerTau = 0.5, ServerNoiseVariance = 0.5, ServerNoiseFloor = 3 };

        Assert.Empty(RoundSettings.Of(changed).ChangesFrom(RoundSettings.Of(average)));
    }

    [Fact]
    public void Parse_CanonicalText_RoundTripsAndCompares()
    {
        RoundSettings settings = RoundSettings.Of(Adam());

        RoundSettings parsed = RoundSettings.Parse(settings.Canonical);

        Assert.Equal(settings.Canonical, parsed.Canonical);
        Assert.Equal(settings.Sha256, parsed.Sha256);
        Assert.Empty(settings.ChangesFrom(parsed));
    }

    [Fact]
    public void Of_EntityTypesWithSeparators_EscapedSoTheListsStayApart()
    {
        var one = new AggregatorOptions { EvaluationEntityTypes = ["A,B"] };
        var two = new AggregatorOptions { EvaluationEntityTypes = ["A", "B"] };
        var newline = new AggregatorOptions { EvaluationEntityTypes = ["A\nRounds=1"] };

        Assert.NotEqual(RoundSettings.Of(one).Sha256, RoundSettings.Of(two).Sha256);
        Assert.Equal("A\\u002cB", RoundSettings.Of(one).Values["EvaluationEntityTypes"]);
        Assert.Equal(RoundSettings.Names.Count, RoundSettings.Parse(RoundSettings.Of(newline).Canonical).Values.Count);
    }

    [Fact]
    public void ChangesFrom_SavedByAnEarlierVersion_MissingSettingCountsAsItsDefault()
    {
        RoundSettings current = RoundSettings.Of(new AggregatorOptions());
        string withoutCap = string.Concat(current.Canonical.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("EvaluationCountCap=", StringComparison.Ordinal)).Select(l => l + "\n"));
        RoundSettings earlier = RoundSettings.Parse(withoutCap + "Retired=7\n");

        IReadOnlyList<RoundSettingChange> changes = current.ChangesFrom(earlier);
        IReadOnlyList<RoundSettingChange> capChanged = RoundSettings.Of(new AggregatorOptions { EvaluationCountCap = 5 }).ChangesFrom(earlier);

        Assert.Equal([new RoundSettingChange("Retired", "7", RoundSettings.NotRecorded)], changes);
        Assert.Contains(new RoundSettingChange("EvaluationCountCap", "100000", "5"), capChanged);
    }

    [Fact]
    public void Describe_Changes_NamesEachWithBothValues()
    {
        RoundSettings saved = RoundSettings.Of(new AggregatorOptions { ServerLearningRate = 0.02, DpSgdNoiseMultiplier = 1.2 });
        RoundSettings current = RoundSettings.Of(new AggregatorOptions { ServerLearningRate = 0.03, DpSgdNoiseMultiplier = 1.0, DpSgdLayerScales = [2f] });

        string described = RoundSettings.Describe(current.ChangesFrom(saved));

        Assert.Equal("DpSgdLayerScales (none) → 2; DpSgdNoiseMultiplier 1.2 → 1; ServerLearningRate 0.02 → 0.03", described);
    }

    [Fact]
    public void Parse_LineWithoutName_RefusedNamingTheLine()
    {
        var ex = Assert.Throws<InvalidDataException>(() => RoundSettings.Parse("Rounds=10\n=3\n"));

        Assert.Contains("line 2", ex.Message, StringComparison.Ordinal);
    }

    private static AggregatorOptions Adam() => new()
    {
        ServerOptimizer = "adam",
        ServerLearningRate = 0.02,
        ServerNoiseVariance = 1e-4,
        DpSgdLayerScales = [1.5f, 0.25f],
        ModelSpecSha256 = new string('a', 64),
    };
}
