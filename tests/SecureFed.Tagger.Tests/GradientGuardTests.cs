using SecureFed.Tagger.Internal;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

public sealed class GradientGuardTests
{
    [Theory]
    [InlineData(0.0)]
    [InlineData(5.0)]
    public void ClipAndCheck_NaNGradient_ReportedNotFiniteWithTheClipOnOrOff(double clip)
    {
        // With GradientClip = 0 the norm was not computed at all, so a NaN gradient behind a finite loss was taken
        // and every weight it touched became NaN.
        Parameter[] parameters = [new Parameter(torch.ones(3)), new Parameter(torch.ones(2))];
        parameters[0].grad = torch.tensor(new float[] { 1, float.NaN, 0 });
        parameters[1].grad = torch.zeros(2);

        Assert.False(GradientGuard.ClipAndCheck(parameters, clip));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(5.0)]
    public void ClipAndCheck_InfiniteGradient_ReportedNotFinite(double clip)
    {
        Parameter[] parameters = [new Parameter(torch.ones(2))];
        parameters[0].grad = torch.tensor(new float[] { float.PositiveInfinity, 1 });

        Assert.False(GradientGuard.ClipAndCheck(parameters, clip));
    }

    [Fact]
    public void ClipAndCheck_NoClip_FiniteGradientLeftExactlyAsItWas()
    {
        Parameter[] parameters = [new Parameter(torch.ones(3))];
        float[] gradient = [30, -40, 0.125f];
        parameters[0].grad = torch.tensor(gradient);

        Assert.True(GradientGuard.ClipAndCheck(parameters, 0));
        Assert.Equal(gradient, parameters[0].grad!.data<float>().ToArray());
    }

    [Fact]
    public void ClipAndCheck_Clip_FiniteGradientScaledToTheBound()
    {
        Parameter[] parameters = [new Parameter(torch.ones(2))];
        parameters[0].grad = torch.tensor(new float[] { 30, 40 }); // norm 50

        Assert.True(GradientGuard.ClipAndCheck(parameters, 5));
        float[] clipped = parameters[0].grad!.data<float>().ToArray();
        Assert.Equal(3f, clipped[0], 3);
        Assert.Equal(4f, clipped[1], 3);
    }
}
