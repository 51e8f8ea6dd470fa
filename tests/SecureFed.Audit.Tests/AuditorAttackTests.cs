using System.Text;

using SecureFed.Audit.Internal;
using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>
/// Hostile or impossible logs given to the auditor's tools (review aud31): each gets a verdict naming the log and line,
/// never a crash, a hang or a PASSED that rests on lines no signature covers.
/// </summary>
public sealed class AuditorAttackTests
{
    [Fact]
    public void Verify_LineWithNumberBeyondDouble_FailsNamingTheLine()
    {
        using var log = new TestLog();
        log.Populate(rounds: 1);
        List<string> lines = log.ReadLines();
        lines[2] = lines[2].Replace("\"bytes\":1024", "\"bytes\":1e400", StringComparison.Ordinal);
        log.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(log.Directory, log.VerifierKey);

        Assert.False(result.Ok);
        Assert.StartsWith("line 3 cannot be in canonical form", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_LineWithStringBeyondTheWriterLimit_FailsNamingTheLine()
    {
        using var log = new TestLog();
        log.Populate(rounds: 1);
        using (FileStream file = File.Open(log.LogPath, FileMode.Append))
        {
            file.Write("{\"seq\":5,\"ts\":\"2026-11-29T08:00:00.0000000Z\",\"actor\":\"aggregator\",\"type\":\"error\",\"fields\":{\"message\":\""u8);
            byte[] chunk = new byte[1 << 20];
            Array.Fill(chunk, (byte)'A');
            for (int i = 0; i < 170; i++)
            {
                file.Write(chunk);
            }

            file.Write("\"}}\n"u8);
        }

        AuditVerification result = AuditVerifier.Verify(log.Directory, log.VerifierKey);

        Assert.False(result.Ok);
        Assert.StartsWith("line 5 ", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_LineBeyondDouble_ReportFailsNamingTheLine()
    {
        using var log = new TestLog();
        log.Populate(rounds: 1);
        List<string> lines = log.ReadLines();
        lines[1] = lines[1].Replace("\"threshold\":2", "\"threshold\":1e400", StringComparison.Ordinal);
        log.WriteLines(lines);

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.False(result.Passed);
        Assert.StartsWith("The log of aggregator (", result.Problems[0], StringComparison.Ordinal);
        Assert.Contains("failed verification: line 2 cannot be in canonical form", result.Problems[0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(long.MaxValue, long.MaxValue)]
    [InlineData(-9_000_000_000_000_000_000, 9_000_000_000_000_000_000)]
    public async Task Create_ExtremeRoundNumbersInASignedLog_RendersAndFailsNamingTheRound(long first, long second)
    {
        using var log = new TestLog();
        using (AuditLog site = log.Open(actor: "h1"))
        {
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", first).Add("epsilon", 1.0).Add("budget", 2.0).Add("guarantee", "record"));
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", second).Add("epsilon", 1.5).Add("budget", 2.0).Add("guarantee", "record"));
        }

        AuditReportResult result = await Task.Run(() => AuditReport.Create([log.Directory])).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Contains("id=\"epsilon-chart\"", result.Html, StringComparison.Ordinal);
        Assert.False(result.Passed);
        Assert.Contains(result.Problems, p => p.StartsWith("h1 audit.jsonl line 2: round ", StringComparison.Ordinal) && p.Contains("not a plausible round number", StringComparison.Ordinal));
    }

    /// <summary>One unsigned line is named as one ("line 4 comes after", not "lines 4–4 come after"; auditor review, session 49).</summary>
    [Fact]
    public void Create_OneLineAfterTheNewestCheckpoint_NamedAsOneLine()
    {
        using var log = new TestLog();
        using (AuditLog aggregator = log.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        File.AppendAllText(log.LogPath, Encoding.UTF8.GetString(CanonicalJson.SerializeLine(4, "2026-11-29T08:00:00.0000000Z", TestLog.Actor, AuditEvents.RoundOpened,
            new AuditFields().Add("round", 2).Add("cohort", ["h1", "h2"]).Add("threshold", 2))) + "\n");

        AuditReportResult result = AuditReport.Create([log.Directory], verifierKeys: [log.VerifierKey]);

        Assert.Equal(1, result.UnverifiedLines);
        Assert.StartsWith("UNVERIFIED: aggregator line 4 comes after the newest signed checkpoint", result.Warnings[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Create_RoundsOnlyInLinesAfterTheNewestCheckpoint_CountedInNoFigureAndListedAsUnverified()
    {
        using var log = new TestLog();
        using (AuditLog aggregator = log.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        // Anyone with write access (no key) appends a round after the last signed checkpoint.
        var appended = new StringBuilder();
        appended.Append(Encoding.UTF8.GetString(CanonicalJson.SerializeLine(4, "2026-11-29T08:00:00.0000000Z", TestLog.Actor, AuditEvents.RoundOpened,
            new AuditFields().Add("round", 2).Add("cohort", ["h1", "h2"]).Add("threshold", 2)))).Append('\n');
        appended.Append(Encoding.UTF8.GetString(CanonicalJson.SerializeLine(5, "2026-11-29T08:00:00.0000000Z", TestLog.Actor, AuditEvents.RoundCompleted,
            new AuditFields().Add("round", 2)))).Append('\n');
        File.AppendAllText(log.LogPath, appended.ToString());

        AuditReportResult result = AuditReport.Create([log.Directory], verifierKeys: [log.VerifierKey]);

        Assert.Equal(1, result.RoundsCompleted);
        Assert.Equal(2, result.UnverifiedLines);
        Assert.Contains("1 round completed", result.Verdict, StringComparison.Ordinal);
        Assert.Contains("UNVERIFIED: 2 lines after the newest signed checkpoint (aggregator) left out of every figure.", result.Verdict, StringComparison.Ordinal);
        Assert.StartsWith("UNVERIFIED: aggregator lines 4–5 come after the newest signed checkpoint", result.Warnings[0], StringComparison.Ordinal);
        Assert.Contains("<ol class=\"problems warnings\" id=\"warnings\" aria-label=\"warnings\">\n<li>UNVERIFIED: aggregator lines 4–5", result.Html, StringComparison.Ordinal);
        Assert.Contains("these lines are not yet signed (a running process, a crash, or lines appended).", result.Warnings[0], StringComparison.Ordinal);
        Assert.DoesNotContain("warning", result.Verdict, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_LogSignedByAnotherKey_FailsWhenPinnedAndSaysKeysNotPinnedOtherwise()
    {
        using var log = new TestLog();
        using (var other = Ed25519PrivateKey.FromSeed(new byte[32]))
        using (AuditLog forged = AuditLog.Open(log.Directory, TestLog.Actor, other, TestLog.Origin, false, TestLog.Clock))
        {
            forged.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1"]).Add("threshold", 1));
            forged.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        AuditReportResult unpinned = AuditReport.Create([log.Directory]);
        AuditReportResult pinned = AuditReport.Create([log.Directory], verifierKeys: [log.VerifierKey]);

        Assert.True(unpinned.Passed);
        Assert.Contains("Keys not pinned: each log was checked against its own verifier.key (pin them with --key).", unpinned.Verdict, StringComparison.Ordinal);
        Assert.False(pinned.Passed);
        Assert.Contains("is forged or re-signed", pinned.Problems[0], StringComparison.Ordinal);
        Assert.DoesNotContain("not pinned", pinned.Verdict, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_PinnedKeyOfTheLog_PassesWithoutTheUnpinnedCaveat()
    {
        using var log = new TestLog();
        log.Populate(rounds: 2);

        AuditReportResult result = AuditReport.Create([log.Directory], verifierKeys: [log.VerifierKey]);

        Assert.Equal(0, result.FailedLogs);
        Assert.DoesNotContain("not pinned", result.Verdict, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> ImpossibleLedgers => new()
    {
        { "epsilon-nan", "h1 audit.jsonl line 3: h1 logged ε NaN; a spent ε is a finite number of 0 or more." },
        { "epsilon-negative", "h1 audit.jsonl line 3: h1 logged ε -1; a spent ε is a finite number of 0 or more." },
        { "epsilon-decreases", "h1 audit.jsonl line 3: h1's cumulative ε went down from 5 (h1 audit.jsonl line 2) to 0.5; spent ε can only grow." },
        { "budget-infinite", "h1 audit.jsonl line 3: h1 logged ε budget Infinity; a budget is a finite number above 0." },
        { "bytes-negative", "h1 audit.jsonl line 3: bytes -5 is not a count (a number of 0 or more)." },
    };

    [Theory]
    [MemberData(nameof(ImpossibleLedgers))]
    public void Create_ImpossibleLedgerContent_FailsNamingTheLogAndLine(string kind, string problem)
    {
        using var log = new TestLog();
        using (AuditLog site = log.Open(actor: "h1"))
        {
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("epsilon", 5.0).Add("budget", 6.0).Add("guarantee", "record"));
            site.Append(AuditEvents.PrivacyLedger, f =>
            {
                f.Add("round", 2).Add("guarantee", "record");
                _ = kind switch
                {
                    "epsilon-nan" => f.Add("epsilon", "NaN").Add("budget", 6.0),
                    "epsilon-negative" => f.Add("epsilon", -1.0).Add("budget", 6.0),
                    "epsilon-decreases" => f.Add("epsilon", 0.5).Add("budget", 6.0),
                    "budget-infinite" => f.Add("epsilon", 5.5).Add("budget", "Infinity"),
                    _ => f.Add("epsilon", 5.5).Add("budget", 6.0).Add("bytes", -5),
                };
            });
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.False(result.Passed, result.Verdict);
        Assert.Equal(problem, Assert.Single(result.Problems));
    }

    [Fact]
    public void Create_RoundCompletedButNeverOpenedOrParticipantOutsideTheCohort_Fails()
    {
        using var log = new TestLog();
        using (AuditLog aggregator = log.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            aggregator.Append(AuditEvents.MaskedInputSliceReceived, f => f.Add("round", 1).Add("site", "h1").Add("slice", 0).Add("bytes", 1024));
            aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", 1).Add("participants", ["h1", "mallory"]));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 7));
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.False(result.Passed);
        Assert.Equal(
            [
                "aggregator audit.jsonl line 4: the aggregate of round 1 names participant(s) mallory outside the round's cohort (aggregator audit.jsonl line 2).",
                "aggregator audit.jsonl line 6: round 7 completed, but aggregator never opened it.",
            ],
            result.Problems);
    }

    /// <summary>
    /// A round hidden by its key holder: round.opened and round.completed of round 2 deleted, seq renumbered, re-signed.
    /// Only round.completed was checked against the rounds opened, so the round's aggregate and charge were skipped and
    /// the report passed (review of session 58).
    /// </summary>
    [Fact]
    public void Create_RoundOpenedAndCompletedDeletedAndReSigned_FailsNamingEachLineOfTheRound()
    {
        using var log = new TestLog();
        using (AuditLog aggregator = log.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 2).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", 2).Add("participants", ["h1", "h2"]));
            aggregator.Append(AuditEvents.PrivacySpent, f => f.Add("round", 2).Add("guarantee", "site").Add("epsilon", 1.0).Add("delta", 1e-5).Add("budget", 10));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 2));
        }

        List<string> lines = log.ReadLines();
        Assert.Contains("\"type\":\"round.opened\"", lines[3], StringComparison.Ordinal);
        Assert.Contains("\"type\":\"round.completed\"", lines[6], StringComparison.Ordinal);
        lines.RemoveAt(6);
        lines.RemoveAt(3);
        log.WriteLinesAndResign(lines);
        Assert.True(AuditVerifier.Verify(log.Directory, log.VerifierKey).Ok);

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.False(result.Passed, "the audit passed although round 2's aggregate and charge are in a round the log never opened");
        Assert.Equal(
            [
                "aggregator audit.jsonl line 4: aggregate.produced of round 2, but aggregator never opened that round (no round.opened before this line).",
                "aggregator audit.jsonl line 5: privacy.spent of round 2, but aggregator never opened that round (no round.opened before this line).",
            ],
            result.Problems);
    }

    /// <summary>
    /// An aggregate naming h3, whose masked input no aggregator log shows received in the round (and that the log may
    /// even name as a dropout before its input was taken), passed: participants were checked against the cohort only
    /// (review of session 58). A receipt of a slice (protocol version 4) counts, as masked_input.received does (every
    /// other report test); a dropout after the input (consistency) does not take the site out of the sum.
    /// </summary>
    [Theory]
    [InlineData(null, "no aggregator log given shows h3's masked input of round 1 received (masked_input.received or masked_input.slice_received)")]
    [InlineData("advertise_keys", "the aggregator logged h3 as a dropout of that round at advertise_keys (aggregator audit.jsonl line 5)")]
    [InlineData("share_keys", "the aggregator logged h3 as a dropout of that round at share_keys (aggregator audit.jsonl line 5)")]
    [InlineData("masked_input", "the aggregator logged h3 as a dropout of that round at masked_input (aggregator audit.jsonl line 5)")]
    [InlineData("consistency", null)]
    public void Create_AggregateNamesASiteWithoutReceiptOrDroppedBeforeItsInput_Fails(string? droppedAt, string? problem)
    {
        using var log = new TestLog();
        using (AuditLog aggregator = log.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2", "h3"]).Add("threshold", 2));
            // Slice receipts (protocol version 4): the cross-check matches only whole receipts against agent logs, none given here.
            aggregator.Append(AuditEvents.MaskedInputSliceReceived, f => f.Add("round", 1).Add("site", "h1").Add("slice", 0).Add("bytes", 512));
            aggregator.Append(AuditEvents.MaskedInputSliceReceived, f => f.Add("round", 1).Add("site", "h2").Add("slice", 0).Add("bytes", 512));
            if (droppedAt is not null)
            {
                aggregator.Append(AuditEvents.Dropout, f => f.Add("round", 1).Add("stage", droppedAt).Add("sites", ["h3"]));
            }

            if (droppedAt == "consistency")
            {
                aggregator.Append(AuditEvents.MaskedInputSliceReceived, f => f.Add("round", 1).Add("site", "h3").Add("slice", 0).Add("bytes", 512));
            }

            aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", 1).Add("participants", ["h1", "h2", "h3"]));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        if (problem is null)
        {
            Assert.True(result.Passed, string.Join(" | ", result.Problems));
            return;
        }

        Assert.False(result.Passed, "the audit passed although the aggregate names h3 as a participant");
        int line = droppedAt is null ? 5 : 6;
        Assert.Equal($"aggregator audit.jsonl line {line}: the aggregate of round 1 names h3 as a participant, but {problem}{(droppedAt is null ? ": an input in the sum that no log accounts for." : ", before its masked input could be in the sum.")}", Assert.Single(result.Problems));
    }

    [Fact]
    public void Create_BudgetRaisedBetweenRestartsAndRoundOpenedTwice_WarnsWithoutFailing()
    {
        using var log = new TestLog();
        using (AuditLog site = log.Open(actor: "h1"))
        {
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("epsilon", 5.0).Add("budget", 6.0).Add("guarantee", "record"));
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 2).Add("epsilon", 9.0).Add("budget", 100.0).Add("guarantee", "record"));
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(
            "h1 changed its record-level ε budget from 6 (h1 audit.jsonl line 2) to 100 (h1 audit.jsonl line 3): a restart with another budget setting; judge whether it was allowed.",
            Assert.Single(result.Warnings));
        Assert.Contains(" 1 warning.", result.Verdict, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_SameLogTwiceOrAByteIdenticalCopy_CountedOnce()
    {
        using var log = new TestLog();
        log.Populate(rounds: 2);
        using var copy = new TestLog();
        CopyFolder(log.Directory, copy.Directory);

        AuditReportResult twice = AuditReport.Create([log.Directory, log.Directory + Path.DirectorySeparatorChar]);
        AuditReportResult copied = AuditReport.Create([log.Directory, copy.Directory]);

        Assert.False(twice.Passed);
        Assert.Equal(2, twice.RoundsCompleted);
        Assert.Contains(twice.Problems, p => p.EndsWith("was given twice; it is counted once.", StringComparison.Ordinal));
        Assert.DoesNotContain(copied.Problems, p => p.Contains("same actor", StringComparison.Ordinal) || p.Contains("copy", StringComparison.Ordinal));
        Assert.Equal(twice.Problems.Count - 1, copied.Problems.Count);
        Assert.Equal(2, copied.RoundsCompleted);
        Assert.EndsWith($"is a byte-identical copy of {log.Directory}; it is counted once.", Assert.Single(copied.Warnings), StringComparison.Ordinal);
    }

    [Fact]
    public void ToString_ActorWithEscapeSequencesAndBidiOverride_PrintsNoControlOrFormatCharacter()
    {
        using var log = new TestLog();
        using (AuditLog site = log.Open(actor: "h1\u001b[2J\u001b[H\u001b[32mPASSED\u009b0m\u202e\u007f"))
        {
            site.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        }

        string text = AuditVerifier.Verify(log.Directory).ToString();

        Assert.Contains("actor h1\uFFFD[2J\uFFFD[H\uFFFD[32mPASSED\uFFFD0m\uFFFD\uFFFD, origin", text, StringComparison.Ordinal);
        Assert.DoesNotContain(text, c => c != '\n' && (char.IsControl(c) || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.Format));
    }

    /// <summary>
    /// A site writes its own log and hands it to the auditor: an actor (or any text the report shows) with a right-to-left
    /// override made the browser show the rest of the report's verdict line reversed, and escape sequences reached the page
    /// as they were; the terminal's lines were made printable already (above), the HTML report's were not.
    /// </summary>
    [Fact]
    public void Create_SiteLogActorWithEscapeSequencesAndBidiOverride_HtmlReportHasNoControlOrFormatCharacter()
    {
        using var aggregator = new TestLog();
        aggregator.Populate(rounds: 1);
        using var site = new TestLog();
        const string actor = "h1\u001b[2J\u001b[H\u001b[32mPASSED\u009b0m\u202e\u2066\u200b\u007f";
        using (AuditLog log = site.Open(actor: actor))
        {
            log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1).Add("reason", "ok\u202Esite-b"));
            log.Append(AuditEvents.Refusal, f => f.Add("round", 1).Add("reason", "x\u2067y"));
        }

        AuditReportResult result = AuditReport.Create([aggregator.Directory, site.Directory]);

        Assert.Contains("h1\uFFFD[2J\uFFFD[H\uFFFD[32mPASSED\uFFFD0m\uFFFD\uFFFD\uFFFD\uFFFD", result.Html, StringComparison.Ordinal);
        Assert.DoesNotContain(result.Html, c => c is not '\n' && (char.IsControl(c) || char.GetUnicodeCategory(c) is System.Globalization.UnicodeCategory.Format
            or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator));
    }

    /// <summary>
    /// Tabs and line breaks (LF, CR) in text the HTML report shows are only white space in a page: kept, where they became
    /// U+FFFD (a CRLF in a logged reason showed as "\uFFFD" before each line break); what could reorder, hide or
    /// colour text is still replaced, between them too.
    /// </summary>
    [Fact]
    public void HtmlEncode_TabsAndCrLfInLoggedText_KeptWhileControlAndFormatCharactersAreReplaced()
    {
        Assert.Equal("first\tsecond\r\nthird &lt;b&gt;", Html.Encode("first\tsecond\r\nthird <b>"));
        Assert.Equal("a\uFFFD\tb\r\uFFFD[2Jc\n\uFFFD", Html.Encode("a\u202e\tb\r\u001b[2Jc\n\u2066"));
    }

    private static void CopyFolder(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
