using SecureFed.Tagger.Internal;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

public sealed class ParameterOptimizerTests
{
    [Theory]
    [InlineData(TaggerOptimizer.Adam, 0.003)]
    [InlineData(TaggerOptimizer.Adam, 0.5)]
    [InlineData(TaggerOptimizer.Sgd, 0.1)]
    public void Step_SameGradientsAsTorchSharpOptimizer_GivesBitIdenticalParameters(TaggerOptimizer kind, double lr)
    {
        // Same arithmetic in the same order as torch.optim.Adam / SGD, so the tagger's results did not move when the
        // optimizer was replaced; the learning rate changes half-way as the trainer's decay does.
        torch.random.manual_seed(7);
        Parameter[] ours = [new Parameter(torch.randn(4, 3)), new Parameter(torch.randn(5)), new Parameter(torch.randn(2, 2))];
        Parameter[] theirs = [.. ours.Select(p => new Parameter(p.detach().clone()))];
        using var optimizer = new ParameterOptimizer(ours, kind, lr);
        using optim.Optimizer reference = kind == TaggerOptimizer.Adam ? optim.Adam(theirs, lr) : optim.SGD(theirs, lr);

        for (int step = 0; step < 6; step++)
        {
            if (step == 3)
            {
                optimizer.LearningRate = lr / 2;
                foreach (var group in reference.ParamGroups)
                {
                    group.LearningRate = lr / 2;
                }
            }

            for (int i = 0; i < ours.Length; i++)
            {
                Tensor g = torch.randn(ours[i].shape);
                ours[i].grad = g.clone();
                theirs[i].grad = g.clone();
            }

            optimizer.Step();
            reference.step();
        }

        for (int i = 0; i < ours.Length; i++)
        {
            Assert.Equal(theirs[i].data<float>().ToArray(), ours[i].data<float>().ToArray());
        }
    }

    [Theory]
    [InlineData(TaggerOptimizer.Adam, 0.01, 0.05)]
    [InlineData(TaggerOptimizer.Sgd, 2.0, 0.005)]
    [InlineData(TaggerOptimizer.Sgd, 0.1, 0.3)]
    public void Step_WithWeightDecay_MatchesTorchSharpAdamWAndSgdWeightDecay(TaggerOptimizer kind, double lr, double weightDecay)
    {
        // Decoupled decay: AdamW's rule exactly (p·(1 − lr·λ), then Adam); for SGD the same step as torch's coupled
        // λ·p added to the gradient, up to float rounding (the order of the products differs).
        torch.random.manual_seed(11);
        Parameter[] ours = [new Parameter(torch.randn(4, 3)), new Parameter(torch.randn(5))];
        Parameter[] theirs = [.. ours.Select(p => new Parameter(p.detach().clone()))];
        using var optimizer = new ParameterOptimizer(ours, kind, lr, weightDecay);
        using optim.Optimizer reference = kind == TaggerOptimizer.Adam
            ? optim.AdamW(theirs, lr, weight_decay: weightDecay)
            : optim.SGD(theirs, lr, weight_decay: weightDecay);

        for (int step = 0; step < 6; step++)
        {
            for (int i = 0; i < ours.Length; i++)
            {
                Tensor g = torch.randn(ours[i].shape);
                ours[i].grad = g.clone();
                theirs[i].grad = g.clone();
            }

            optimizer.Step();
            reference.step();
        }

        for (int i = 0; i < ours.Length; i++)
        {
            float[] expected = theirs[i].data<float>().ToArray();
            float[] actual = ours[i].data<float>().ToArray();
            for (int j = 0; j < expected.Length; j++)
            {
                if (kind == TaggerOptimizer.Adam)
                {
                    Assert.Equal(expected[j], actual[j]);
                }
                else
                {
                    Assert.Equal(expected[j], actual[j], 1e-5f * Math.Max(1f, Math.Abs(expected[j])));
                }
            }
        }
    }

    [Fact]
    public void Step_WithWeightDecayAndZeroGradient_ShrinksOnlyParametersWithAGradient()
    {
        // A coordinate no example pulls on (zero gradient, as for noise no signal opposes) decays geometrically
        // toward zero: after n steps it is (1 − lr·λ)^n of where it started. A frozen parameter (no gradient) stays.
        Parameter[] ps = [new Parameter(torch.full(3, 2f)), new Parameter(torch.full(2, 2f))];
        using var optimizer = new ParameterOptimizer(ps, TaggerOptimizer.Sgd, 0.5, 0.1);
        for (int step = 0; step < 10; step++)
        {
            ps[0].grad = torch.zeros(3);
            optimizer.Step();
        }

        double expected = 2 * Math.Pow(1 - (0.5 * 0.1), 10);
        Assert.All(ps[0].data<float>().ToArray(), x => Assert.Equal(expected, x, 1e-5));
        Assert.Equal([2f, 2f], ps[1].data<float>().ToArray());
    }

    [Theory]
    [InlineData(-0.01)]
    [InlineData(double.NaN)]
    [InlineData(0.5)] // lr 2 × 0.5 = 1 would zero the weights every step
    public void TrainOptions_WeightDecayOutOfRange_NamesIt(double weightDecay)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new TrainOptions { LearningRate = 2, WeightDecay = weightDecay }.Validate());
        Assert.Equal(nameof(TrainOptions.WeightDecay), ex.ParamName);
    }

    [Fact]
    public void Constructor_NegativeWeightDecay_IsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new ParameterOptimizer([new Parameter(torch.ones(1))], TaggerOptimizer.Sgd, 0.1, -0.01));

    [Fact]
    public void Step_ParameterWithoutGradient_IsLeftUnchanged()
    {
        Parameter[] ps = [new Parameter(torch.ones(3)), new Parameter(torch.ones(2))];
        using var optimizer = new ParameterOptimizer(ps, TaggerOptimizer.Adam, 0.1);
        ps[0].grad = torch.ones(3);

        optimizer.Step();

        Assert.All(ps[0].data<float>().ToArray(), x => Assert.True(x < 1f));
        Assert.Equal([1f, 1f], ps[1].data<float>().ToArray());
    }

    [Fact]
    public void ZeroGrad_ZeroesEveryExistingGradient()
    {
        Parameter[] ps = [new Parameter(torch.ones(3)), new Parameter(torch.ones(2))];
        ps[0].grad = torch.ones(3);
        using var optimizer = new ParameterOptimizer(ps, TaggerOptimizer.Adam, 0.1);

        optimizer.ZeroGrad();

        Assert.All(ps[0].grad!.data<float>().ToArray(), x => Assert.Equal(0f, x));
        Assert.Null(ps[1].grad);
    }
}
