namespace SecureFed.Tagger.Tests;

/// <summary>docs/PROTOCOL.md §2 "Parameter count d": the closed formula a second implementation uses equals the model's count.</summary>
public sealed class ParameterCountFormulaTests
{
    public static TheoryData<string, int> Configs => new()
    {
        { "tiny", 5 },
        { "tiny-crf-cnn", 5 },
        { "tiny-2-layers-crf", 1 },
        { "tiny-crf-encoder", 1 },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void ParameterCount_ProtocolFormula_EqualsModel(string name, int entityTypes)
    {
        TaggerConfig config = name switch
        {
            "tiny" => TaggerConfig.Tiny,
            "tiny-crf-cnn" => TaggerConfig.Tiny with { Crf = true, CharCnnFilters = 8, CharEmbDim = 6, CharBuckets = 64, MaxCharsPerToken = 10 },
            "tiny-crf-encoder" => TaggerConfig.TinyCrfEncoder,
            _ => TaggerConfig.Tiny with { Layers = 2, Crf = true },
        };
        LabelSet labels = LabelSet.Create(LabelSet.ClinicalTypes.Take(entityTypes));
        using var model = TaggerModel.Create(config, labels, 1, "cpu");

        Assert.Equal(model.ParameterCount, Formula(config, entityTypes));
    }

    /// <summary>The formula exactly as PROTOCOL.md states it.</summary>
    private static long Formula(TaggerConfig c, int entityTypes)
    {
        long labels = 1 + (2 * entityTypes);
        long h = c.Hidden;
        long d = ((long)c.WordBuckets * c.WordDim) + ((long)c.ShapeBuckets * c.ShapeDim) + ((long)c.CharNgramBuckets * c.CharDim);
        if (c.CharCnnFilters > 0)
        {
            d += ((long)c.CharBuckets * c.CharEmbDim) + ((long)c.CharCnnFilters * c.CharEmbDim * c.CharCnnWidth) + c.CharCnnFilters;
        }

        long input = c.WordDim + c.CharDim + c.ShapeDim + c.CharCnnFilters + (c.Encoder == "minilm-l6-v2" ? 384 : 0);
        for (int layer = 0; layer < c.Layers; layer++)
        {
            long inputWidth = layer == 0 ? input : 2 * h;
            d += 2 * ((4 * h * inputWidth) + (4 * h * h) + (4 * h) + (4 * h));
        }

        d += (labels * 2 * h) + labels;
        if (c.Crf)
        {
            d += (labels * labels) + (2 * labels);
        }

        return d;
    }
}
