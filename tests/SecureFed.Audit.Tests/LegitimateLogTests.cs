using System.Text;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit.Tests;

/// <summary>
/// Logs an honest federation writes that the report must not fail (review rev31b): a hostile caller's round number in a
/// refusal, a δ changed between agent restarts, a counterpart of the cross-check still in the other log's unverified
/// tail, two logs of one actor.
/// </summary>
public sealed class LegitimateLogTests
{
    private static readonly string Digest = new('a', 64);

    [Fact]
    public void Create_RefusalOfACallersHugeRound_PassesAndRenders()
    {
        using var aggregatorLog = new TestLog();
        using var siteLog = new TestLog();
        using (AuditLog aggregator = aggregatorLog.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1"]).Add("threshold", 1));
            // AggregationService.RefuseCall logs the round of the caller's header (up to 2^64 - 1, clamped to long).
            aggregator.Append(AuditEvents.Refusal, f => f.Add("round", long.MaxValue).Add("site", "h9").Add("status", "FailedPrecondition").Add("reason", "stale"));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        using (AuditLog site = siteLog.Open(actor: "h1"))
        {
            site.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("epsilon", 1.0).Add("budget", 2.0).Add("guarantee", "record"));
            site.Append(AuditEvents.Refusal, f => f.Add("round", long.MaxValue).Add("reason", "the aggregator announced an impossible round"));
        }

        AuditReportResult result = AuditReport.Create([aggregatorLog.Directory, siteLog.Directory]);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Contains("id=\"epsilon-chart\"", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_OwnRoundBeyond2To53_StillFails()
    {
        using var log = new TestLog();
        using (AuditLog aggregator = log.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", long.MaxValue).Add("cohort", ["h1"]).Add("threshold", 1));
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.Contains(result.Problems, p => p.StartsWith("aggregator audit.jsonl line 2: round ", StringComparison.Ordinal) && p.Contains("not a plausible round number", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_DeltaChangedBetweenRestarts_LowerEpsilonIsAWarningNotAProblem()
    {
        using var log = new TestLog();
        using (AuditLog site = log.Open(actor: "h1"))
        {
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("guarantee", "record").Add("epsilon", 3.0).Add("delta", 1e-5).Add("budget", 10.0));
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 2).Add("guarantee", "record").Add("epsilon", 2.6).Add("delta", 1e-3).Add("budget", 10.0));
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        string warning = Assert.Single(result.Warnings);
        Assert.StartsWith("h1 changed its record-level δ from 1E-05 (h1 audit.jsonl line 2) to ", warning, StringComparison.Ordinal);
        Assert.Contains(" 1 warning.", result.Verdict, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_EpsilonDownAtTheSameDeltaAfterADeltaChange_StillFails()
    {
        using var log = new TestLog();
        using (AuditLog site = log.Open(actor: "h1"))
        {
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("guarantee", "record").Add("epsilon", 3.0).Add("delta", 1e-5).Add("budget", 10.0));
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 2).Add("guarantee", "record").Add("epsilon", 2.6).Add("delta", 1e-3).Add("budget", 10.0));
            site.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 3).Add("guarantee", "record").Add("epsilon", 2.0).Add("delta", 1e-3).Add("budget", 10.0));
        }

        AuditReportResult result = AuditReport.Create([log.Directory]);

        Assert.Contains(result.Problems, p => p.StartsWith("h1 audit.jsonl line 4: h1's cumulative ε at δ ", StringComparison.Ordinal) && p.Contains("went down from 2.6 (h1 audit.jsonl line 3) to 2", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_AgentKilledAfterUpload_SentLineOnlyInItsUnverifiedTail_IsAWarning()
    {
        using var aggregatorLog = new TestLog();
        using var siteLog = new TestLog();
        using (AuditLog site = siteLog.Open(actor: "h1"))
        {
            site.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        }

        // Killed after the upload: its message.sent line was written, no checkpoint after it.
        AppendUnsigned(siteLog, "h1", AuditEvents.MessageSent,
            new AuditFields().Add("round", 1).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 8).Add("sha256", Digest));
        using (AuditLog aggregator = aggregatorLog.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            aggregator.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", 1).Add("site", "h1").Add("bytes", 8).Add("sha256", Digest));
            aggregator.Append(AuditEvents.RoundAborted, f => f.Add("round", 1).Add("stage", "unmasking").Add("reason", "dropout"));
        }

        AuditReportResult result = AuditReport.Create([aggregatorLog.Directory, siteLog.Directory]);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(0, result.CrossCheckMismatches);
        Assert.Contains(result.Warnings, w => w.Contains("counterpart in the unverified tail of h1 (h1 audit.jsonl line 3)", StringComparison.Ordinal));
        Assert.Contains("(1 only against lines no signature covers yet)", result.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_RunningAggregator_ReceiptOnlyInItsUnverifiedTail_IsAWarning()
    {
        using var aggregatorLog = new TestLog();
        using var siteLog = new TestLog();
        using (AuditLog aggregator = aggregatorLog.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1"]).Add("threshold", 1));
        }

        // A single-process aggregator checkpoints at round completion: during the round its receipt is not signed yet.
        AppendUnsigned(aggregatorLog, TestLog.Actor, AuditEvents.MaskedInputReceived, new AuditFields().Add("round", 1).Add("site", "h1").Add("bytes", 8).Add("sha256", Digest));
        using (AuditLog site = siteLog.Open(actor: "h1"))
        {
            site.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
            site.Append(AuditEvents.MessageSent, f => f.Add("round", 1).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 8).Add("sha256", Digest));
        }

        AuditReportResult result = AuditReport.Create([aggregatorLog.Directory, siteLog.Directory]);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(0, result.CrossCheckMismatches);
        Assert.Contains(result.Warnings, w => w.Contains("counterpart in the unverified tail of aggregator (aggregator audit.jsonl line 3)", StringComparison.Ordinal));
    }

    [Fact]
    public void Create_OtherDigestInTheUnverifiedTail_StillADiscrepancy()
    {
        using var aggregatorLog = new TestLog();
        using var siteLog = new TestLog();
        using (AuditLog site = siteLog.Open(actor: "h1"))
        {
            site.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        }

        AppendUnsigned(siteLog, "h1", AuditEvents.MessageSent,
            new AuditFields().Add("round", 1).Add("message_type", AuditEvents.MaskedInputMessageType).Add("bytes", 8).Add("sha256", new string('b', 64)));
        using (AuditLog aggregator = aggregatorLog.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1"]).Add("threshold", 1));
            aggregator.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", 1).Add("site", "h1").Add("bytes", 8).Add("sha256", Digest));
        }

        AuditReportResult result = AuditReport.Create([aggregatorLog.Directory, siteLog.Directory]);

        Assert.False(result.Passed);
        Assert.Equal(1, result.CrossCheckMismatches);
    }

    [Fact]
    public void Create_TwoDifferentLogsOfOneActor_PassesWithAWarning()
    {
        using var dead = new TestLog();
        using var successor = new TestLog();
        using (AuditLog aggregator = dead.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("cohort", ["h1"]).Add("threshold", 1));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        }

        using (AuditLog aggregator = successor.Open())
        {
            aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 2).Add("cohort", ["h1"]).Add("threshold", 1));
            aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 2));
        }

        AuditReportResult result = AuditReport.Create([dead.Directory, successor.Directory]);

        Assert.True(result.Passed, string.Join("\n", result.Problems));
        Assert.Equal(2, result.RoundsCompleted);
        Assert.StartsWith("Two different logs name the same actor aggregator", Assert.Single(result.Warnings), StringComparison.Ordinal);
    }

    /// <summary>Appends a well-formed line after the newest signed checkpoint, as a process that has not signed it yet leaves it.</summary>
    private static void AppendUnsigned(TestLog log, string actor, string type, AuditFields fields)
    {
        long seq = log.ReadLines().Count + 1;
        File.AppendAllText(log.LogPath, Encoding.UTF8.GetString(CanonicalJson.SerializeLine(seq, "2026-11-29T08:00:00.0000000Z", actor, type, fields)) + "\n");
    }
}
