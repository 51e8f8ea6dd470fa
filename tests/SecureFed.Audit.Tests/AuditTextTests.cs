namespace SecureFed.Audit.Tests;

/// <summary>
/// <see cref="AuditText.Bound"/>: what a caller supplied reaches an audit line bounded, as valid Unicode, without control
/// characters.
/// </summary>
public sealed class AuditTextTests
{
    [Theory]
    [InlineData("")]
    [InlineData("site-a")]
    [InlineData("héllo wörld 😀")]
    public void Bound_CleanTextWithinBound_Unchanged(string value)
    {
        Assert.Same(value, AuditText.Bound(value, 128));
    }

    [Fact]
    public void Bound_ExactLength_Unchanged()
    {
        string value = new('a', AuditText.ReasonChars);

        Assert.Equal(value, AuditText.Bound(value, AuditText.ReasonChars));
    }

    [Fact]
    public void Bound_Null_Empty()
    {
        Assert.Equal("", AuditText.Bound(null, 10));
    }

    [Fact]
    public void Bound_SurrogatePairAcrossTheBound_PairLeftOutWhole()
    {
        string value = new string('a', 499) + "😀";

        string bound = AuditText.Bound(value, 500);

        Assert.Equal(new string('a', 499) + AuditText.Ellipsis, bound);
        using var log = new TestLog();
        using AuditLog audit = log.Open();
        audit.Append(AuditEvents.Refusal, f => f.Add("reason", bound)); // valid Unicode: no ArgumentException
    }

    [Fact]
    public void Bound_SurrogatePairEndingAtTheBound_Kept()
    {
        string value = new string('a', 498) + "😀" + "b";

        Assert.Equal(new string('a', 498) + "😀" + AuditText.Ellipsis, AuditText.Bound(value, 500));
    }

    [Fact]
    public void Bound_SurrogatePairExactlyAtTheBound_Unchanged()
    {
        string value = new string('a', 498) + "😀";

        Assert.Same(value, AuditText.Bound(value, 500));
    }

    [Fact]
    public void Bound_ControlCharacters_Replaced()
    {
        Assert.Equal("a\uFFFDb\uFFFDc\uFFFD\uFFFD", AuditText.Bound("a\u0001b\nc\u007F\u0085", 128));
    }

    [Fact]
    public void Bound_UnpairedSurrogates_Replaced()
    {
        Assert.Equal("a\uFFFDb\uFFFD", AuditText.Bound("a\uD83Db\uDE00", 128));
    }

    [Fact]
    public void Bound_MillionsOfControlCharacters_AuditLineBounded()
    {
        string value = new('\u0001', 4_000_000);
        using var log = new TestLog();
        using AuditLog audit = log.Open();
        long before = new FileInfo(log.LogPath).Length;

        string bound = AuditText.Bound(value, AuditText.IdentifierChars);
        audit.Append(AuditEvents.Refusal, f => f.Add("reason", bound));

        Assert.Equal(AuditText.IdentifierChars + 1, bound.Length);
        Assert.Equal(new string(AuditText.Replacement, AuditText.IdentifierChars) + AuditText.Ellipsis, bound);
        long grown = new FileInfo(log.LogPath).Length - before;
        Assert.True(grown < 1024, $"the line took {grown} bytes");
    }

    /// <summary>
    /// Format characters (Cf) could make a console or viewer show an audit or log line reversed or with hidden text: a
    /// site's decline reason "\u202Eexcluded site-b" displays as "b-etis dedulcxe". Each becomes U+FFFD (a tag character,
    /// a surrogate pair, becomes one); other text, accented letters and emoji stay.
    /// </summary>
    [Theory]
    [InlineData("ok\u202Esite-b", "ok\uFFFDsite-b")]                        // RIGHT-TO-LEFT OVERRIDE
    [InlineData("a\u2066b\u2069c", "a\uFFFDb\uFFFDc")]                       // isolates
    [InlineData("zero\u200Bwidth\u200E\uFEFF", "zero\uFFFDwidth\uFFFD\uFFFD")] // zero-width space, LRM, BOM
    [InlineData("tag\U000E0041\U000E0042", "tag\uFFFD\uFFFD")]               // tag characters (supplementary plane)
    [InlineData("Zürich \U0001F600 ok", "Zürich \U0001F600 ok")]
    public void Bound_FormatCharacters_Replaced(string value, string expected)
    {
        Assert.Equal(expected, AuditText.Bound(value, 128));
    }

    /// <summary>
    /// The line and paragraph separators (Zl U+2028, Zp U+2029) break a line in some viewers and JavaScript readers of
    /// the log: a decline reason could look like a forged line of its own. Each becomes U+FFFD, as a format character does.
    /// </summary>
    [Theory]
    [InlineData("ok\u2028{\"type\":\"round.completed\"}", "ok\uFFFD{\"type\":\"round.completed\"}")] // LINE SEPARATOR
    [InlineData("a\u2029b", "a\uFFFDb")]                                                           // PARAGRAPH SEPARATOR
    [InlineData("\u2028\u2029", "\uFFFD\uFFFD")]
    public void Bound_LineAndParagraphSeparators_Replaced(string value, string expected)
    {
        Assert.Equal(expected, AuditText.Bound(value, 128));
    }

    [Fact]
    public void Bound_MaxCharsBelowTwo_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => AuditText.Bound("abc", 1));
    }
}
