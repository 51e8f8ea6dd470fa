namespace SecureFed.Tagger.Tests;

/// <summary>
/// Layer scales (docs/PROTOCOL.md, "Layer scales"): the per-tensor public factors as one number per tensor, and their
/// expansion back into the per-parameter preconditioner an agent trains with.
/// </summary>
public sealed class TaggerLayerScalesTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    [Fact]
    public void LayerScalesFromPublicData_RealModel_OnePerTensorAndExpandEqualsThePerTensorPreconditioner()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 2, device: "cpu");
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 40, seed: 3).ToList();

        float[] scales = TaggerPreconditioner.LayerScalesFromPublicData(model, data, batchSize: 8);
        float[] perParameter = TaggerPreconditioner.FromPublicData(model, data, batchSize: 8, perTensor: true);

        Assert.Equal(model.ParameterLayout.Count, scales.Length);
        Assert.All(scales, f => Assert.True(f > 0 && float.IsFinite(f)));
        Assert.True(scales.Distinct().Count() > 1, "one factor for every tensor would change nothing");
        Assert.Equal(perParameter, TaggerPreconditioner.ExpandLayerScales(model.ParameterLayout, scales));
    }

    [Fact]
    public void ExpandLayerScales_TwoTensors_EachParameterGetsItsTensorsFactor()
    {
        ParameterInfo[] layout = [new("a.weight", [2, 3]), new("a.bias", [2])];

        float[] expanded = TaggerPreconditioner.ExpandLayerScales(layout, [0.5f, 4f]);

        Assert.Equal([0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 4f, 4f], expanded);
    }

    [Fact]
    public void ExpandLayerScales_WrongCount_ThrowsNamingBothCounts()
    {
        ParameterInfo[] layout = [new("a.weight", [2, 3]), new("a.bias", [2])];

        var ex = Assert.Throws<ArgumentException>(() => TaggerPreconditioner.ExpandLayerScales(layout, [1f]));

        Assert.Contains("1 layer scales for a model of 2 parameter tensors", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void ExpandLayerScales_NotPositiveFinite_ThrowsNamingTheTensor(float bad)
    {
        ParameterInfo[] layout = [new("a.weight", [2, 3]), new("a.bias", [2])];

        var ex = Assert.Throws<ArgumentException>(() => TaggerPreconditioner.ExpandLayerScales(layout, [1f, bad]));

        Assert.Contains("layer scale 1 (a.bias)", ex.Message, StringComparison.Ordinal);
    }
}
