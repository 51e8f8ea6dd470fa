using System.Text;

namespace SecureFed.Audit.Tests;

public sealed class AuditFieldsTests
{
    [Fact]
    public void Append_FieldsInAnyOrder_LineIsCanonicalWithSortedKeysAndNoWhitespace()
    {
        using var test = new TestLog();
        using (AuditLog log = test.Open())
        {
            log.Append("test.event", f => f
                .Add("zeta", 1)
                .Add("Alpha", "A")
                .Add("alpha", true)
                .AddObject("nested", n => n.Add("y", 2.5).Add("x", (string?)null))
                .Add("list", ["b", "a"]));
        }

        string line = test.ReadLines()[1];
        Assert.Equal(
            "{\"seq\":2,\"ts\":\"2026-11-29T08:00:00.0000000Z\",\"actor\":\"aggregator\",\"type\":\"test.event\"," +
            "\"fields\":{\"Alpha\":\"A\",\"alpha\":true,\"list\":[\"b\",\"a\"],\"nested\":{\"x\":null,\"y\":2.5},\"zeta\":1}}",
            line);
    }

    [Fact]
    public void Append_StringsNeedingEscapes_AreEscapedAndNonAsciiKeptAsUtf8()
    {
        using var test = new TestLog();
        using (AuditLog log = test.Open())
        {
            log.Append("test.event", f => f.Add("s", "q\"b\\n\nt\tc\u0001 Zürich <b>"));
        }

        byte[] raw = File.ReadAllBytes(test.LogPath);
        string line = Encoding.UTF8.GetString(raw).Split('\n')[1];
        Assert.Contains("\"s\":\"q\\\"b\\\\n\\nt\\tc\\u0001 Zürich <b>\"", line, StringComparison.Ordinal);
        Assert.Equal(2, raw.Count(b => b == (byte)'\n'));
        Assert.True(AuditVerifier.Verify(test.Directory).Ok);
    }

    [Fact]
    public void AddDigest_Sha256_WrittenAsLowercaseHex()
    {
        var fields = new AuditFields();
        byte[] digest = Enumerable.Range(0, 32).Select(i => (byte)(i * 7)).ToArray();
        fields.AddDigest("sha256", digest);
        Assert.Contains(Convert.ToHexStringLower(digest), Serialize(fields), StringComparison.Ordinal);
    }

    [Fact]
    public void Add_InvalidInput_ThrowsNamingTheField()
    {
        var fields = new AuditFields();
        Assert.Throws<ArgumentException>(() => fields.AddDigest("d", new byte[31]));
        Assert.Throws<ArgumentOutOfRangeException>(() => fields.Add("eps", double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => fields.Add("eps", double.PositiveInfinity));
        Assert.Throws<ArgumentException>(() => fields.Add("bad name", 1));
        Assert.Throws<ArgumentException>(() => fields.Add(string.Empty, 1));
        Assert.Throws<ArgumentException>(() => fields.Add("lone", "\ud800"));
        fields.Add("dup", 1);
        ArgumentException duplicate = Assert.Throws<ArgumentException>(() => fields.Add("dup", 2));
        Assert.Contains("dup", duplicate.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Append_InvalidEventType_Throws()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        Assert.Throws<ArgumentException>(() => log.Append("Round Opened", _ => { }));
    }

    private static string Serialize(AuditFields fields)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            fields.WriteTo(writer);
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}
