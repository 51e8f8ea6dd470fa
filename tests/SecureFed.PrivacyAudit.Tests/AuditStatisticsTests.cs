namespace SecureFed.PrivacyAudit.Tests;

public sealed class AuditStatisticsTests
{
    [Fact]
    public void Auc_HandCaseWithTies_CountsTiesAsHalf()
    {
        // Pairs: 2>1, 2=2 (½), 3>1, 3>2 → 3.5 of 4.
        Assert.Equal(0.875, AuditStatistics.Auc([2, 3], [1, 2]), 12);
    }

    [Fact]
    public void Auc_SeparatedReversedAndTied_AreOneZeroAndHalf()
    {
        Assert.Equal(1, AuditStatistics.Auc([5, 6, 7], [1, 2]));
        Assert.Equal(0, AuditStatistics.Auc([1, 2], [5, 6, 7]));
        Assert.Equal(0.5, AuditStatistics.Auc([3, 3], [3, 3, 3]));
    }

    [Fact]
    public void Auc_RandomScores_EqualsBruteForcePairCount()
    {
        var random = new Random(3);
        double[] members = [.. Enumerable.Range(0, 57).Select(_ => Math.Round(random.NextDouble() * 20))];
        double[] nonMembers = [.. Enumerable.Range(0, 43).Select(_ => Math.Round(random.NextDouble() * 18))];
        double pairs = 0;
        foreach (double m in members)
        {
            foreach (double n in nonMembers)
            {
                pairs += m > n ? 1 : m == n ? 0.5 : 0;
            }
        }

        Assert.Equal(pairs / (members.Length * nonMembers.Length), AuditStatistics.Auc(members, nonMembers), 12);
    }

    [Fact]
    public void TruePositiveRateAt_OnePercentOfHundred_AllowsOneFalsePositive()
    {
        double[] nonMembers = [.. Enumerable.Range(0, 100).Select(i => (double)i)];

        // One non-member (99) may lie above the threshold 98: members 99.5 and 98.5 pass, 50 does not.
        Assert.Equal(2.0 / 3, AuditStatistics.TruePositiveRateAt([99.5, 98.5, 50], nonMembers, 0.01), 12);
        // At 0 % only members above every non-member count.
        Assert.Equal(1.0 / 3, AuditStatistics.TruePositiveRateAt([99.5, 98.5, 50], nonMembers, 0), 12);
        Assert.Equal(1, AuditStatistics.TruePositiveRateAt([-5], nonMembers, 1));
    }

    [Fact]
    public void TruePositiveRateAt_MembersLikeNonMembers_IsAboutTheFalsePositiveRate()
    {
        var random = new Random(4);
        double[] members = [.. Enumerable.Range(0, 20_000).Select(_ => random.NextDouble())];
        double[] nonMembers = [.. Enumerable.Range(0, 20_000).Select(_ => random.NextDouble())];

        Assert.InRange(AuditStatistics.TruePositiveRateAt(members, nonMembers, 0.01), 0.007, 0.013);
        Assert.InRange(AuditStatistics.Auc(members, nonMembers), 0.49, 0.51);
    }

    [Fact]
    public void RocCurve_RunsFromOriginToOneOneAndNeverFalls()
    {
        var roc = AuditStatistics.RocCurve([3, 4, 1], [2, 0.5]);

        Assert.Equal((0.0, 0.0), roc[0]);
        Assert.Equal((1.0, 1.0), roc[^1]);
        for (int i = 1; i < roc.Count; i++)
        {
            Assert.True(roc[i].FalsePositiveRate >= roc[i - 1].FalsePositiveRate && roc[i].TruePositiveRate >= roc[i - 1].TruePositiveRate);
        }
    }

    [Fact]
    public void Exposure_RankAmongSampledCandidates_IsMinusLog2OfTheRankFraction()
    {
        double[] candidates = [.. Enumerable.Range(0, 1023).Select(i => (double)i)];

        Assert.Equal(10, AuditStatistics.Exposure(5000, candidates), 12); // above all: log2(1024)
        Assert.Equal(0, AuditStatistics.Exposure(-1, candidates), 12); // below all
        Assert.Equal(1, AuditStatistics.Exposure(511.5, candidates), 12); // 511 above it: (511 + 1) / 1024 = ½
        Assert.Equal(1, AuditStatistics.Exposure(512, candidates), 12); // a tie counts against the canary
    }

    [Fact]
    public void Exposure_CanaryFromTheCandidatesDistribution_AveragesOneOverLn2Bits()
    {
        // No memorisation: the canary's score is one more draw from the candidates' distribution, its rank is
        // uniform, and E[−log₂ U] = 1 / ln 2 ≈ 1.44 bits: the chance level the table quotes.
        var random = new Random(6);
        double sum = 0;
        const int Trials = 4000;
        for (int t = 0; t < Trials; t++)
        {
            double[] candidates = [.. Enumerable.Range(0, 200).Select(_ => random.NextDouble())];
            sum += AuditStatistics.Exposure(random.NextDouble(), candidates);
        }

        Assert.InRange(sum / Trials, 1.38, 1.50);
    }

    [Fact]
    public void ExtrapolatedExposure_NormalFit_MatchesNormalTailProbabilities()
    {
        var random = new Random(5);
        double[] candidates = [.. Enumerable.Range(0, 50_000).Select(_ => Gaussian(random))];
        double mean = candidates.Average();
        double sd = Math.Sqrt(candidates.Sum(c => (c - mean) * (c - mean)) / (candidates.Length - 1));

        Assert.Equal(1, AuditStatistics.ExtrapolatedExposure(mean, candidates), 5); // Q(0) = ½
        Assert.Equal(-Math.Log2(0.05), AuditStatistics.ExtrapolatedExposure(mean + (1.6448536 * sd), candidates), 4);
        Assert.Equal(-Math.Log2(2.866515719e-7), AuditStatistics.ExtrapolatedExposure(mean + (5 * sd), candidates), 3); // Q(5)
        Assert.Equal(-Math.Log2(1 - 0.05), AuditStatistics.ExtrapolatedExposure(mean - (1.6448536 * sd), candidates), 5);
    }

    [Fact]
    public void Auc_EmptySide_ThrowsNamingTheCounts()
    {
        var ex = Assert.Throws<ArgumentException>(() => AuditStatistics.Auc([1], []));

        Assert.Contains("0", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CenteredByLabel_SubtractsEachLabelsMedian()
    {
        double[] centred = AuditStatistics.CenteredByLabel([1.0, 2.0, 9.0, -5.0, -3.0], [true, true, true, false, false]);

        Assert.Equal([-1.0, 0.0, 7.0, -1.0, 1.0], centred);
    }

    [Fact]
    public void CenteredByLabel_LabelPriorLargerThanMembership_RestoresTheAuc()
    {
        // Label B scores around 5, label O around 0, independent of membership; members gain 1. Uncentred, the
        // ranking is mostly by label (AUC near 0.75 at best); centred per label it is by membership.
        var random = new Random(9);
        var scores = new List<double>();
        var labels = new List<bool>();
        var members = new List<bool>();
        for (int i = 0; i < 400; i++)
        {
            bool b = random.NextDouble() < 0.5;
            bool member = random.NextDouble() < 0.5;
            labels.Add(b);
            members.Add(member);
            scores.Add((b ? 5 : 0) + (member ? 1 : 0) + (0.2 * Gaussian(random)));
        }

        double[] centred = AuditStatistics.CenteredByLabel(scores, labels);
        double raw = AuditStatistics.Auc([.. scores.Where((_, i) => members[i])], [.. scores.Where((_, i) => !members[i])]);
        double fixedAuc = AuditStatistics.Auc([.. centred.Where((_, i) => members[i])], [.. centred.Where((_, i) => !members[i])]);

        Assert.InRange(raw, 0.6, 0.8);
        Assert.True(fixedAuc > 0.95, $"centred AUC {fixedAuc}");
    }

    private static double Gaussian(Random random) =>
        Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    [Fact]
    public void Calibrated_SubtractsTheReferenceScore()
    {
        Assert.Equal([-1.0, 0.5], AuditStatistics.Calibrated([-3.0, -0.5], [-2.0, -1.0]));
    }

    [Fact]
    public void Calibrated_DifferentLengthsOrNaN_Throw()
    {
        Assert.Throws<ArgumentException>(() => AuditStatistics.Calibrated([1.0], [1.0, 2.0]));
        Assert.Throws<ArgumentException>(() => AuditStatistics.Calibrated([double.NaN], [1.0]));
    }

    [Fact]
    public void Calibrated_ExamplesOfVaryingDifficulty_RecoversTheMembershipSignalTheRawLossHides()
    {
        // Each example's log-likelihood is mostly its difficulty (spread 3, the same under both models); training
        // raised members' by 0.5. Ranked by the raw score, members hardly stand out; minus the reference, they do.
        var random = new Random(5);
        var members = new List<(double Target, double Reference)>();
        var nonMembers = new List<(double Target, double Reference)>();
        for (int i = 0; i < 400; i++)
        {
            double difficulty = -10 + (3 * Gaussian(random));
            bool member = i % 2 == 0;
            double reference = difficulty + (0.1 * Gaussian(random));
            double target = difficulty + (member ? 0.5 : 0) + (0.1 * Gaussian(random));
            (member ? members : nonMembers).Add((target, reference));
        }

        double raw = AuditStatistics.Auc([.. members.Select(m => m.Target)], [.. nonMembers.Select(m => m.Target)]);
        double calibrated = AuditStatistics.Auc(
            AuditStatistics.Calibrated([.. members.Select(m => m.Target)], [.. members.Select(m => m.Reference)]),
            AuditStatistics.Calibrated([.. nonMembers.Select(m => m.Target)], [.. nonMembers.Select(m => m.Reference)]));

        Assert.InRange(raw, 0.4, 0.65);
        Assert.True(calibrated > 0.95, $"calibrated AUC {calibrated}");
    }
}
