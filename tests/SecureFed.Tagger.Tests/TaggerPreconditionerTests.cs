namespace SecureFed.Tagger.Tests;

/// <summary>The public-data preconditioner of DP-SGD (AdaDPS): its factors, their bounds and what it leaves alone.</summary>
public sealed class TaggerPreconditionerTests
{
    private static readonly LabelSet Labels = LabelSet.Create(LabelSet.ClinicalTypes);

    [Fact]
    public void Factors_MedianIsOneLargeGradientsGetSmallFactorsUntouchedAreBounded()
    {
        // RMS 0 (never touched), 1, 2, 4, 8 (squares over 1 batch).
        double[] squares = [0, 1, 4, 16, 64];

        float[] a = TaggerPreconditioner.Factors(squares, batches: 1, floorRatio: 0.1);

        // √v = 0, 1, 2, 4, 8; median of the touched (upper median of 1, 2, 4, 8) = 4, floor 0.4;
        // 1 / max(√v, 0.4) = 2.5, 1, 0.5, 0.25, 0.125; their median 0.5.
        Assert.Equal([5f, 2f, 1f, 0.5f, 0.25f], a);
    }

    [Fact]
    public void FromPublicData_RealModel_OneFactorPerParameterPositiveFiniteAndModelUnchanged()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 2, device: "cpu");
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 40, seed: 3).ToList();
        float[] before = model.Flatten();

        float[] a = TaggerPreconditioner.FromPublicData(model, data, batchSize: 8);

        Assert.Equal(model.ParameterCount, a.Length);
        Assert.All(a, f => Assert.True(f > 0 && float.IsFinite(f)));
        Assert.Equal(before, model.Flatten());
        float[] sorted = [.. a.Order()];
        Assert.Equal(1f, sorted[sorted.Length / 2], 3);
        Assert.True(sorted[^1] > sorted[0], "a preconditioner with one factor everywhere would change nothing");
        Assert.True(sorted[^1] / sorted[sorted.Length / 2] <= 10.0001f, "no factor may exceed 1/floorRatio times the median");
    }

    [Fact]
    public void FromPublicData_PerTensor_OneFactorPerWeightTensor()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 2, device: "cpu");
        var data = SyntheticClinicalCorpus.Generate(SyntheticClinicalCorpus.Profiles[0], 40, seed: 3).ToList();

        float[] a = TaggerPreconditioner.FromPublicData(model, data, batchSize: 8, perTensor: true);

        Assert.Equal(model.ParameterCount, a.Length);
        int offset = 0;
        var perTensor = new List<float>();
        foreach (var parameter in model.Parameters)
        {
            int count = checked((int)parameter.Tensor.numel());
            float first = a[offset];
            Assert.All(a.AsSpan(offset, count).ToArray(), f => Assert.Equal(first, f));
            perTensor.Add(first);
            offset += count;
        }

        Assert.Equal(a.Length, offset);
        Assert.True(perTensor.Distinct().Count() > 1, "layer-wise factors must differ between tensors, or they change nothing");
    }

    [Fact]
    public void FromPublicData_NoSentence_Throws()
    {
        using var model = TaggerModel.Create(TaggerConfig.Tiny, Labels, seed: 2, device: "cpu");

        var e = Assert.Throws<ArgumentException>(() => TaggerPreconditioner.FromPublicData(model, []));
        Assert.Contains("public data", e.Message, StringComparison.Ordinal);
    }
}
