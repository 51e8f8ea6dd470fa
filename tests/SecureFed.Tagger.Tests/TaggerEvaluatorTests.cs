namespace SecureFed.Tagger.Tests;

public sealed class TaggerEvaluatorTests
{
    private static EvaluationResult Score(string[][] gold, string[][] predicted) =>
        TaggerEvaluator.Score(
            [.. gold.Select(g => new Sentence([.. g.Select((_, i) => "t" + i)], g))],
            [.. predicted.Select(p => (IReadOnlyList<string>)p)]);

    [Fact]
    public void Score_IdenticalTags_IsPerfect()
    {
        var r = Score([["B-Disease", "I-Disease", "O", "B-Drug"]], [["B-Disease", "I-Disease", "O", "B-Drug"]]);

        Assert.Equal(1.0, r.F1);
        Assert.Equal(2, r.Overall.TruePositives);
    }

    [Fact]
    public void Score_TruncatedSpan_IsNotAMatch()
    {
        var r = Score([["B-Disease", "I-Disease", "O"]], [["B-Disease", "O", "O"]]);

        Assert.Equal(0, r.Overall.TruePositives);
        Assert.Equal(1, r.Overall.Gold);
        Assert.Equal(1, r.Overall.Predicted);
        Assert.Equal(0.0, r.F1);
    }

    [Fact]
    public void Score_IAfterO_StartsChunkLikeConlleval()
    {
        // conlleval: "O I-X I-X" contains the chunk [1,3) of type X.
        var r = Score([["O", "B-Disease", "I-Disease"]], [["O", "I-Disease", "I-Disease"]]);

        Assert.Equal(1.0, r.F1);
    }

    [Fact]
    public void Score_IOfOtherType_SplitsChunk()
    {
        // Predicted "B-Disease I-Drug" is two chunks (Disease [0,1), Drug [1,2)); neither equals gold Disease [0,2).
        var r = Score([["B-Disease", "I-Disease"]], [["B-Disease", "I-Drug"]]);

        Assert.Equal(0, r.Overall.TruePositives);
        Assert.Equal(2, r.Overall.Predicted);
        Assert.Equal(1, r.Overall.Gold);
        Assert.Equal(1, r.PerType["Drug"].Predicted);
    }

    [Fact]
    public void Score_TwoSentences_MicroAndPerTypeMatchHandComputation()
    {
        // Gold: Disease x2 (sentence 1), Symptom x1 (sentence 2). Predicted: one Disease right, Symptom right.
        var r = Score(
            [["B-Disease", "O", "B-Disease"], ["B-Symptom", "I-Symptom"]],
            [["B-Disease", "O", "O"], ["B-Symptom", "I-Symptom"]]);

        Assert.Equal(1.0, r.Precision, 12);
        Assert.Equal(2.0 / 3.0, r.Recall, 12);
        Assert.Equal(0.8, r.F1, 12);
        Assert.Equal(1.0, r.PerType["Disease"].Precision, 12);
        Assert.Equal(0.5, r.PerType["Disease"].Recall, 12);
        Assert.Equal(2.0 / 3.0, r.PerType["Disease"].F1, 12);
        Assert.Equal(1.0, r.PerType["Symptom"].F1, 12);
        Assert.Equal(4.0 / 5.0, r.TokenAccuracy, 12);
    }

    [Fact]
    public void Score_AdjacentSameTypeChunks_AreSeparatedByB()
    {
        var r = Score([["B-Drug", "B-Drug", "I-Drug"]], [["B-Drug", "I-Drug", "I-Drug"]]);

        Assert.Equal(2, r.Overall.Gold);
        Assert.Equal(1, r.Overall.Predicted);
        Assert.Equal(0, r.Overall.TruePositives);
    }

    [Fact]
    public void Score_LengthMismatch_Throws()
    {
        Assert.Throws<ArgumentException>(() => Score([["O", "O"]], [["O"]]));
    }
}
