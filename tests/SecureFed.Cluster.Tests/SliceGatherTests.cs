namespace SecureFed.Cluster.Tests;

/// <summary>
/// <see cref="ClusterRoundClient.GatherSlice"/>: the unmasked slices go straight into the sum, in any order, and a slice
/// of the wrong length is refused instead of leaving words of the sum unset.
/// </summary>
public sealed class SliceGatherTests
{
    private static readonly SliceLayout Layout = new(2500, 1024);

    [Fact]
    public void GatherSlice_EverySliceInAnyOrder_IsTheWholeVector()
    {
        uint[] whole = [.. Enumerable.Range(0, Layout.VectorLength).Select(i => (uint)((i * 2_654_435_761L) + 1))];
        uint[] sum = new uint[Layout.VectorLength];

        foreach (int k in new[] { 2, 0, 1 })
        {
            ClusterRoundClient.GatherSlice(Layout, k, whole[Layout.Offset(k)..(Layout.Offset(k) + Layout.Length(k))], sum);
        }

        Assert.Equal(whole, sum);
    }

    [Theory]
    [InlineData(0, 1023)]
    [InlineData(0, 1025)]
    [InlineData(2, 451)] // the last slice has 452 words
    [InlineData(2, 1024)]
    [InlineData(1, 0)]
    public void GatherSlice_WrongLength_RoundAbortedAndSumUntouched(int k, int length)
    {
        uint[] sum = new uint[Layout.VectorLength];

        var ex = Assert.Throws<ClusterRoundAbortedException>(() => ClusterRoundClient.GatherSlice(Layout, k, Enumerable.Repeat(7u, length).ToArray(), sum));

        Assert.Contains($"slice {k} returned {length} unmasked words", ex.Message, StringComparison.Ordinal);
        Assert.All(sum, w => Assert.Equal(0u, w));
    }

    [Fact]
    public void GatherSlice_NoSliceOrWrongSum_Refused()
    {
        Assert.Throws<ClusterRoundAbortedException>(() => ClusterRoundClient.GatherSlice(Layout, 1, null, new uint[Layout.VectorLength]));
        Assert.Throws<ArgumentException>(() => ClusterRoundClient.GatherSlice(Layout, 1, new uint[1024], new uint[Layout.VectorLength - 1]));
    }
}
