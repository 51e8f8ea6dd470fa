namespace SecureFed.Tagger.Tests;

public sealed class SyntheticClinicalCorpusTests
{
    [Fact]
    public void Generate_SameSeed_IsDeterministic()
    {
        var a = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 50, 9);
        var b = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 50, 9);

        Assert.Equal(a.Select(s => string.Join(' ', s.Tokens) + "|" + string.Join(' ', s.Tags)),
                     b.Select(s => string.Join(' ', s.Tokens) + "|" + string.Join(' ', s.Tags)));
    }

    [Fact]
    public void Profiles_HaveAtLeastThreeDistinctSitesWithDifferentStyles()
    {
        var names = SyntheticClinicalCorpus.Profiles.Select(p => p.Name).ToList();

        Assert.Contains("site-de", names);
        Assert.Contains("site-fr", names);
        Assert.Contains("site-jp", names);
        Assert.Equal(3, SyntheticClinicalCorpus.Profiles.Select(p => p.DateFormat).Distinct().Count());
    }

    [Fact]
    public void CreateProfiles_MoreSites_DeterministicUniqueNames()
    {
        var a = SyntheticClinicalCorpus.CreateProfiles(7);
        var b = SyntheticClinicalCorpus.CreateProfiles(7);

        Assert.Equal(7, a.Select(p => p.Name).Distinct().Count());
        Assert.Equal(a, b, (x, y) => x.Name == y.Name && x.TypeWeights.SequenceEqual(y.TypeWeights) && x.DateFormat == y.DateFormat);
    }

    [Fact]
    public void Generate_AllFiveTypesAppearAsValidIob2()
    {
        var sentences = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[2], 400, 1);

        var types = sentences.SelectMany(s => s.Tags).Where(t => t != "O").Select(t => t[2..]).ToHashSet();
        Assert.Equal(LabelSet.ClinicalTypes.OrderBy(t => t, StringComparer.Ordinal), types.OrderBy(t => t, StringComparer.Ordinal));
        foreach (Sentence s in sentences)
        {
            Assert.Equal(s.Tokens.Count, s.Tags.Count);
            for (int i = 0; i < s.Tags.Count; i++)
            {
                if (s.Tags[i].StartsWith("I-", StringComparison.Ordinal))
                {
                    Assert.True(i > 0 && s.Tags[i - 1] != "O" && s.Tags[i - 1][2..] == s.Tags[i][2..]);
                }
            }
        }
    }

    [Fact]
    public void Generate_SitesDifferInSpelling()
    {
        string fr = string.Join(' ', SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[1], 1500, 1).SelectMany(s => s.Tokens));
        string jp = string.Join(' ', SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[2], 1500, 1).SelectMany(s => s.Tokens));

        Assert.Matches("(oedema|anaemia|dyspnoea|diarrhoea|paracetamol|leukaemia)", fr);
        Assert.DoesNotMatch("(oedema|anaemia|dyspnoea|diarrhoea|paracetamol|leukaemia)", jp);
    }
}
