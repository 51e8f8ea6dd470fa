using SecureFed.Agent;
using SecureFed.Protocol;
using SecureFed.Tagger;

namespace SecureFed.Reliability.Tests;

/// <summary>A site's side of federated evaluation: conlleval counts and the dev prefix that keeps them within the cap.</summary>
public sealed class DevEvaluationTests
{
    [Fact]
    public void Counts_ConllevalResult_TruePositivesFalsePositivesFalseNegativesPerType()
    {
        Sentence gold = new(["a", "b", "c", "d"], ["B-Drug", "I-Drug", "O", "B-Disease"]);
        IReadOnlyList<string> predicted = ["B-Drug", "O", "B-Disease", "B-Disease"];

        EvaluationCounts counts = DevEvaluation.Counts(TaggerEvaluator.Score([gold], [predicted]));

        // Drug: gold a–b, predicted a only: 0 TP, 1 FP, 1 FN. Disease: gold d, predicted c and d: 1 TP, 1 FP, 0 FN.
        Assert.Equal(new EntityCounts(1, 2, 1), counts.Overall);
        Assert.Equal(new EntityCounts(0, 1, 1), counts.PerType["Drug"]);
        Assert.Equal(new EntityCounts(1, 1, 0), counts.PerType["Disease"]);
    }

    [Theory]
    [InlineData(100, 3)]
    [InlineData(9, 3)]
    [InlineData(8, 2)]
    [InlineData(3, 1)]
    [InlineData(2, 0)]
    public void WithinCap_TokenBudget_LongestPrefixWithAtMostCapTokens(int cap, int expected)
    {
        Sentence[] dev = [new(["a", "b", "c"], ["O", "O", "O"]), new(["d", "e", "f", "g", "h"], ["O", "O", "O", "O", "O"]), new(["i"], ["O"])];

        IReadOnlyList<Sentence> prefix = DevEvaluation.WithinCap(dev, cap);

        Assert.Equal(dev.Take(expected), prefix);
    }
}
