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
