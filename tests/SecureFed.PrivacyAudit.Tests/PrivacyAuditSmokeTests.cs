using System.Text.Json;
using SecureFed.Experiments;
using SecureFed.Testing;

namespace SecureFed.PrivacyAudit.Tests;

/// <summary>The whole audit on a small synthetic corpus (tiny model, 2 rounds, a few canaries): outputs, not power.</summary>
public sealed class PrivacyAuditSmokeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-privacy-audit-smoke-").FullName;

    [Fact]
    public void Run_TinyNoDpAndEpsilonEight_WritesJsonChartsAndBoundsBelowTheClaim()
    {
        string corpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "corpus"), train: 150, eval: 40);
        var options = new PrivacyAuditOptions
        {
            Experiment = new ExperimentOptions { DataDirectory = corpus, Sites = 3, Rounds = 2, SampleRate = 0.2, ConfigName = "tiny" },
            Epsilons = [8],
            Canaries = 3,
            Repeats = 5,
            Candidates = 40,
            AuditCanaries = 20,
            AuditSentences = 20,
            GroupCanaries = 6,
            GroupSize = 2,
            OutputDirectory = Path.Combine(_dir, "out"),
        };
        var progress = new List<string>();

        PrivacyAuditReport report = new PrivacyAuditRunner(options, progress.Add).Run();

        Assert.Equal(2, report.Arms.Count);
        PrivacyAuditArm noDp = report.Arms[0];
        PrivacyAuditArm dp = report.Arms[1];
        Assert.Null(noDp.Epsilon);
        Assert.Null(noDp.EpsilonSpent);
        Assert.Equal(8, dp.Epsilon);
        Assert.InRange(dp.EpsilonSpent!.Value, 0.1, 8.0);
        foreach (PrivacyAuditArm arm in report.Arms)
        {
            Assert.Equal(3, arm.Exposures.Count);
            Assert.Equal(3, arm.ControlExposures.Count);
            Assert.All(arm.Exposures, e => Assert.InRange(e, 0, Math.Log2(41) + 1e-9));
            Assert.InRange(arm.MiaAuc!.Value, 0, 1);
            Assert.InRange(arm.MiaTprAt1PctFpr!.Value, 0, 1);
            Assert.Equal(20, arm.CanaryAudit!.Examples);
            Assert.Equal(20, arm.NaturalAudit!.Examples); // min(20, half of site-1's 50)
            Assert.Equal(6, arm.GroupAudit!.Audit.Examples);
            Assert.Equal(2, arm.GroupAudit.GroupSize);
            Assert.InRange(arm.MiaAucUncalibrated!.Value, 0, 1);
        }

        Assert.Null(noDp.GroupAudit!.ClaimedEpsilon);
        Assert.False(noDp.GroupAudit.Vacuous);
        // ε ≤ 8 for a group of 2: δ_2 = 2·e^ε·δ ≤ 0.06 < 1, so the claim is 2·ε_spent at that δ.
        Assert.False(dp.GroupAudit!.Vacuous);
        Assert.Equal(2 * dp.EpsilonSpent.Value, dp.GroupAudit!.ClaimedEpsilon!.Value, 9);
        Assert.True(dp.GroupAudit.Audit.EpsilonLowerBound <= dp.GroupAudit.ClaimedEpsilon.Value);

        Assert.False(dp.BoundExceedsClaim, $"bound {dp.EmpiricalEpsilonLowerBound} above the claimed {dp.EpsilonSpent}");
        Assert.Contains(progress, l => l.Contains("site-1", StringComparison.Ordinal) && l.Contains("canaries × 5", StringComparison.Ordinal) && l.Contains("group canaries × 2", StringComparison.Ordinal));

        using JsonDocument json = JsonDocument.Parse(File.ReadAllText(report.JsonPath!));
        JsonElement[] arms = [.. json.RootElement.GetProperty("arms").EnumerateArray()];
        Assert.Equal(JsonValueKind.Null, arms[0].GetProperty("epsilon").ValueKind);
        Assert.Equal(8, arms[1].GetProperty("epsilon").GetDouble());
        Assert.All(arms, a => Assert.True(a.GetProperty("mia_roc").GetArrayLength() >= 2));
        using JsonDocument line = JsonDocument.Parse(PrivacyAuditJson.SummaryLine(report));
        JsonElement first = line.RootElement.GetProperty("arms")[0];
        foreach (string key in new[] { "epsilon", "exposure_mean", "mia_auc", "mia_tpr_at_1pct_fpr", "empirical_epsilon_lower_bound" })
        {
            Assert.True(first.TryGetProperty(key, out _), key);
        }

        foreach (string png in new[] { report.RocChartPath!, report.ExposureChartPath! })
        {
            byte[] bytes = File.ReadAllBytes(png);
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        }

        string table = PrivacyAuditTable.Format(report);
        Assert.Contains("federated + DP-SGD ε=8", table, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_ZeroRepeats_NamesTheOption()
    {
        var options = new PrivacyAuditOptions { Experiment = new ExperimentOptions { DataDirectory = _dir }, Repeats = 0 };

        var ex = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Contains("--repeats", ex.Message, StringComparison.Ordinal);
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
}
