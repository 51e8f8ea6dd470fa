using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <c>SecureFed:EvaluationEntityTypes</c> as validated at start-up: distinct types are valid; an empty type, or a type
/// listed twice (a typo the layout would otherwise silently merge), is refused naming the setting and the type.
/// </summary>
public sealed class EvaluationEntityTypesOptionsTests
{
    [Fact]
    public void DistinctTypes_Valid()
    {
        Assert.Empty(Options(["Disease", "Drug", "disease"]).Validate());
    }

    [Fact]
    public void ATypeListedTwice_RefusedNamingTheSettingAndTheType_OnceEach()
    {
        string error = Assert.Single(Options(["Disease", "Drug", "Disease", "Disease"]).Validate());

        Assert.Equal("SecureFed:EvaluationEntityTypes lists \"Disease\" more than once; list each entity type once.", error);
    }

    [Fact]
    public void AnEmptyType_RefusedOnce_NotAlsoAsADuplicate()
    {
        string error = Assert.Single(Options(["Disease", "", " "]).Validate());

        Assert.Equal("SecureFed:EvaluationEntityTypes must not contain an empty type.", error);
    }

    private static AggregatorOptions Options(string[] types) => new()
    {
        Federation = "fed",
        ModelSpecSha256 = new string('a', 64),
        FederatedEvaluation = true,
        EvaluationEntityTypes = types,
    };
}
