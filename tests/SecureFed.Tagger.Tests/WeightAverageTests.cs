using SecureFed.Tagger.Internal;
using TorchSharp;
using TorchSharp.Modules;

namespace SecureFed.Tagger.Tests;

public sealed class WeightAverageTests
{
    [Fact]
    public void Update_ThreeSteps_MatchesWarmedUpExponentialAverage()
    {
        using var p = new Parameter(torch.tensor(new float[] { 1f, -2f }));
        using var average = new WeightAverage([p], decay: 0.9);
        double[] expected = [1, -2];
        float[][] values = [[3f, 0f], [5f, 4f], [-1f, 2f]];

        for (int n = 1; n <= values.Length; n++)
        {
            using (torch.no_grad())
            {
                using var v = torch.tensor(values[n - 1]);
                p.copy_(v);
            }

            average.Update();
            double d = Math.Min(0.9, (1.0 + n) / (10.0 + n));
            expected = [.. expected.Select((e, i) => (d * e) + ((1 - d) * values[n - 1][i]))];
        }

        average.CopyTo([p]);
        float[] actual = p.data<float>().ToArray();
        Assert.Equal(expected[0], actual[0], 4);
        Assert.Equal(expected[1], actual[1], 4);
    }

    [Fact]
    public void TrainOptions_WeightAverageDecayOne_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainOptions { WeightAverageDecay = 1 }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new TrainOptions { LearningRateDecay = -0.1 }.Validate());
    }
}
