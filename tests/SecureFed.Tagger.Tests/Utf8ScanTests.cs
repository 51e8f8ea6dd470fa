using System.Text;

namespace SecureFed.Tagger.Tests;

/// <summary>
/// <see cref="Utf8Scan.FirstInvalid"/>: the first byte that is not UTF-8, with its line and column, across the scan's
/// read blocks; nothing for valid text, multi-byte characters counted as one column each, a cut-off sequence at the end
/// invalid at its first byte, and a byte order mark taking no column.
/// </summary>
public sealed class Utf8ScanTests
{
    [Fact]
    public void FirstInvalid_ValidTextWithMultiByteCharacters_Null()
    {
        Assert.Null(Utf8Scan.FirstInvalid(new MemoryStream(Encoding.UTF8.GetBytes("Caf\u00e9\tO\n\u00e4\u00df\u20ac \U0001F600\tB-Drug\n"))));
        Assert.Null(Utf8Scan.FirstInvalid(new MemoryStream([])));
    }

    [Fact]
    public void FirstInvalid_LoneByteAfterMultiByteCharactersOnALaterLine_LineColumnOffsetAndValue()
    {
        // "é€\n" is 2 + 3 + 1 bytes; line 2 holds "ab€" (5 bytes) then 0xFF.
        byte[] bytes = [.. "\u00e9\u20ac\n"u8, .. "ab\u20ac"u8, 0xFF, .. "\tO\n"u8];

        Utf8Scan.Position at = Assert.IsType<Utf8Scan.Position>(Utf8Scan.FirstInvalid(new MemoryStream(bytes)));

        Assert.Equal((2L, 4L, 11L, (byte)0xFF), (at.Line, at.Column, at.Offset, at.Value));
        Assert.Equal("byte 0xFF at column 4, byte offset 11", at.Describe());
    }

    [Fact]
    public void FirstInvalid_SequenceCutOffByTheEnd_InvalidAtItsFirstByte()
    {
        Utf8Scan.Position at = Assert.IsType<Utf8Scan.Position>(Utf8Scan.FirstInvalid(new MemoryStream([.. "ok\n"u8, 0xE2, 0x82])));

        Assert.Equal((2L, 1L, 3L, (byte)0xE2), (at.Line, at.Column, at.Offset, at.Value));
    }

    [Fact]
    public void FirstInvalid_ByteOrderMark_TakesNoColumn()
    {
        Utf8Scan.Position at = Assert.IsType<Utf8Scan.Position>(Utf8Scan.FirstInvalid(new MemoryStream([0xEF, 0xBB, 0xBF, .. "Caf"u8, 0xE9])));

        Assert.Equal((1L, 4L, 6L), (at.Line, at.Column, at.Offset));
    }

    [Theory]
    [InlineData(65_534)]
    [InlineData(65_535)]
    [InlineData(65_536)]
    [InlineData(131_071)]
    public void FirstInvalid_AcrossReadBlocks_ThreeByteCharactersSplitByABlockEdgeStayValid(int asciiBefore)
    {
        // Exactly asciiBefore ASCII bytes (lines of 10, then a partial line), then "€" characters (3 bytes each), the
        // first of them cut by the 64 KiB read block's edge for these sizes, then a bad byte: the carried partial sequence
        // must be completed, not refused, and the line and column counts kept across blocks.
        string prefix = string.Concat(Enumerable.Repeat("abcdefghi\n", asciiBefore / 10)) + new string('x', asciiBefore % 10);
        byte[] bytes = [.. Encoding.UTF8.GetBytes(prefix + new string('\u20ac', 10)), 0xC0, 0x80];
        Assert.Equal(asciiBefore + 30 + 2, bytes.Length);

        Utf8Scan.Position at = Assert.IsType<Utf8Scan.Position>(Utf8Scan.FirstInvalid(new MemoryStream(bytes)));

        Assert.Equal(((asciiBefore / 10) + 1L, (asciiBefore % 10) + 11L, asciiBefore + 30L, (byte)0xC0), (at.Line, at.Column, at.Offset, at.Value));
    }
}
