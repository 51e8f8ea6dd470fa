using System.Text;

using SecureFed.Crypto.Internal;

namespace SecureFed.Crypto.Tests;

public sealed class MaskPrgWindowTests
{
    private const int ChunkWords = AesCtrKeystream.ChunkBytes / 4;

    public static TheoryData<int, int, int, int> Windows => new()
    {
        // length, offset, window length, bit width
        { 10, 0, 10, 32 },
        { 10, 3, 5, 17 },
        { 1001, 1, 999, 24 },
        { 1001, 998, 3, 7 },
        { 1001, 1001, 0, 20 },
        { (2 * ChunkWords) + 9, 5, (2 * ChunkWords) + 3, 31 },
        { (3 * ChunkWords) + 2, ChunkWords - 2, ChunkWords + 5, 32 },
    };

    [Theory]
    [MemberData(nameof(Windows))]
    public void AddTo_AnyWindow_EqualsTheSameWordsOfTheFullStream(int length, int offset, int count, int bitWidth)
    {
        byte[] seed = Enumerable.Range(1, 32).Select(i => (byte)(i * 7)).ToArray();
        byte[] domain = Encoding.ASCII.GetBytes("window-test");
        uint[] full = new uint[length];
        MaskPrg.Generate(seed, domain, bitWidth, full);
        uint[] start = Enumerable.Range(0, count).Select(i => (uint)(i * 2654435761u) & ModularVector.Mask(bitWidth)).ToArray();

        uint[] added = (uint[])start.Clone();
        MaskPrgWindow.AddTo(seed, domain, bitWidth, length, offset, added);
        uint[] subtracted = (uint[])start.Clone();
        MaskPrgWindow.SubtractFrom(seed, domain, bitWidth, length, offset, subtracted);

        uint mask = ModularVector.Mask(bitWidth);
        for (int j = 0; j < count; j++)
        {
            Assert.Equal((start[j] + full[offset + j]) & mask, added[j]);
            Assert.Equal((start[j] - full[offset + j]) & mask, subtracted[j]);
        }
    }

    [Fact]
    public void AddTo_SlicesCoveringTheStream_EqualMaskPrgAddTo()
    {
        byte[] seed = new byte[32];
        seed[0] = 42;
        const int Length = 10_007;
        uint[] whole = new uint[Length];
        MaskPrg.AddTo(seed, [], 20, whole);
        uint[] sliced = new uint[Length];
        foreach (int start in new[] { 0, 3333, 6666 })
        {
            int end = Math.Min(Length, start + 3333);
            MaskPrgWindow.AddTo(seed, [], 20, Length, start, sliced.AsSpan(start, end - start));
        }

        MaskPrgWindow.AddTo(seed, [], 20, Length, 9999, sliced.AsSpan(9999));
        Assert.Equal(whole, sliced);
    }

    [Fact]
    public void AddTo_WindowPastTheEnd_ThrowsNamingTheWindow()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => MaskPrgWindow.AddTo(new byte[32], [], 32, 10, 8, new uint[3]));
        Assert.Contains("does not fit in a stream of 10 words", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => MaskPrgWindow.AddTo(new byte[32], [], 32, 10, -1, new uint[1]));
        Assert.Throws<ArgumentException>(() => MaskPrgWindow.AddTo(new byte[31], [], 32, 10, 0, new uint[1]));
    }
}
