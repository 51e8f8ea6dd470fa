using SecureFed.Privacy;

namespace SecureFed.Privacy.Tests;

public sealed class UpdateClippingTests
{
    [Fact]
    public void ClipL2_AboveBound_ScalesToBoundAndReturnsOriginalNorm()
    {
        float[] update = [3f, 4f, 0f];

        double before = UpdateClipping.ClipL2(update, 1.0);

        Assert.Equal(5.0, before, 12);
        Assert.Equal(1.0, UpdateClipping.L2Norm(update), 5);
        Assert.Equal(0.6f, update[0], 5);
        Assert.Equal(0.8f, update[1], 5);
    }

    [Fact]
    public void ClipL2_BelowBound_LeavesUpdateUntouched()
    {
        float[] update = [0.1f, -0.2f];
        float[] copy = (float[])update.Clone();

        double before = UpdateClipping.ClipL2(update, 1.0);

        Assert.Equal(Math.Sqrt((0.1f * 0.1f) + (0.2f * 0.2f)), before, 6);
        Assert.Equal(copy, update);
    }

    [Fact]
    public void ClipL2_RandomLargeVectors_NeverExceedBound()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 50; trial++)
        {
            float[] update = Enumerable.Range(0, 10_000).Select(_ => (float)((rng.NextDouble() - 0.5) * 1000)).ToArray();
            double bound = 0.1 + (rng.NextDouble() * 10);

            UpdateClipping.ClipL2(update, bound);

            Assert.True(UpdateClipping.L2Norm(update) <= bound, $"trial {trial}: norm {UpdateClipping.L2Norm(update)} > {bound}");
        }
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void ClipL2_NonFinite_ThrowsNamingIndex(float bad)
    {
        float[] update = [1f, 2f, bad, 4f];

        ArgumentException ex = Assert.Throws<ArgumentException>(() => UpdateClipping.ClipL2(update, 1.0));

        Assert.Contains("index 2", ex.Message, StringComparison.Ordinal);
        Assert.Equal(2f, update[1]);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public void ClipL2_InvalidBound_Throws(double bound)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => UpdateClipping.ClipL2(new float[] { 1f }, bound));
    }
}
