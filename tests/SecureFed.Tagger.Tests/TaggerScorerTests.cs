namespace SecureFed.Tagger.Tests;

public sealed class TaggerScorerTests
{
    private static readonly LabelSet OneType = LabelSet.Create(["Disease"]);

    // Every IOB2-valid tag sequence of two tokens with one type (O, B-Disease, I-Disease).
    private static readonly string[][] ValidPaths =
    [
        ["O", "O"], ["O", "B-Disease"], ["B-Disease", "O"], ["B-Disease", "B-Disease"], ["B-Disease", "I-Disease"],
    ];

    [Fact]
    public void LogLikelihoods_CrfHead_ValidPathsSumToOne()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny with { Crf = true }, OneType, seed: 3, device: "cpu");
        Sentence[] paths = [.. ValidPaths.Select(tags => new Sentence(["fever", "persists"], tags))];

        double[] logLikelihoods = TaggerScorer.LogLikelihoods(model, paths);

        Assert.All(logLikelihoods, l => Assert.True(l < 0, $"log-likelihood {l} is not negative"));
        // Invalid paths carry the CRF's -10000 constraint, so the valid ones hold all the probability.
        Assert.Equal(1.0, logLikelihoods.Sum(Math.Exp), 4);
    }

    [Fact]
    public void LogLikelihoods_SoftmaxHead_FactorsOverTokens()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, OneType, seed: 3, device: "cpu");
        string[] tokens = ["fever", "persists"];
        double Score(string a, string b) => TaggerScorer.LogLikelihoods(model, [new Sentence(tokens, [a, b])])[0];

        // Independent tokens: changing the second tag changes the score by the same amount whatever the first tag is.
        double viaO = Score("O", "B-Disease") - Score("O", "O");
        double viaB = Score("B-Disease", "B-Disease") - Score("B-Disease", "O");

        Assert.Equal(viaO, viaB, 5);
        Assert.NotEqual(0, viaO);
    }

    [Fact]
    public void LogLikelihoods_Batched_EqualsOneAtATimeInInputOrder()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny with { Crf = true }, OneType, seed: 5, device: "cpu");
        Sentence[] sentences =
        [
            new(["a", "long", "sentence", "about", "anaemia", "here"], ["O", "O", "O", "O", "B-Disease", "O"]),
            new(["short"], ["O"]),
            new([], []),
            new(["two", "words"], ["B-Disease", "I-Disease"]),
        ];

        double[] batched = TaggerScorer.LogLikelihoods(model, sentences, batchSize: 3);
        double[] single = [.. sentences.Select(s => TaggerScorer.LogLikelihoods(model, [s])[0])];

        Assert.Equal(0, batched[2]);
        for (int i = 0; i < sentences.Length; i++)
        {
            Assert.Equal(single[i], batched[i], 4);
        }
    }

    [Fact]
    public void LogLikelihoods_TagsTokensMismatch_ThrowsNamingTheSentence()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, OneType, seed: 1, device: "cpu");

        var ex = Assert.Throws<ArgumentException>(() => TaggerScorer.LogLikelihoods(model, [new Sentence(["a", "b"], ["O"])]));

        Assert.Contains("sentence 0", ex.Message, StringComparison.Ordinal);
    }
}
