using System.Security.Cryptography;

using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>
/// "Who took part" reads the aggregate first: a decline does not take a site out of the attempt (PROTOCOL.md §3
/// "Declines"), so a site that declined and whose masked input is in the aggregate took part, and the verdict notes it;
/// one that declined and is not in the aggregate is shown as declined. Review 31.
/// </summary>
public sealed class AuditReportDeclineTests : IDisposable
{
    private static readonly string[] Sites = ["h1", "h2"];
    private readonly string _root = Path.Combine(Path.GetTempPath(), "securefed-audit-decline-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public void Create_SiteDeclinedButInAggregate_MatrixShowsParticipantAndVerdictNotesIt()
    {
        string[] dirs = Log(contributors: Sites, declined: "h2", droppedAfterInput: "h1");

        AuditReportResult result = AuditReport.Create(dirs);

        // A note, not a problem (only the aggregator's log is given, so the cross-check has problems of its own).
        Assert.DoesNotContain(result.Problems, p => p.Contains("declined", StringComparison.Ordinal));
        string html = result.Html;
        Assert.Contains("<td class=\"in\" title=\"h2 is a participant of the aggregate of round 1 — aggregator audit.jsonl line", html, StringComparison.Ordinal);
        Assert.Contains("; it also declined the round: no dev data this week — aggregator audit.jsonl line", html, StringComparison.Ordinal);
        Assert.Contains(">✓ declined</td>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"declined\"", html, StringComparison.Ordinal);
        string notes = html[html.IndexOf("<ul class=\"notes\"", StringComparison.Ordinal)..html.IndexOf("</section>", StringComparison.Ordinal)];
        Assert.Contains("<li>h2 declined round 1 (no dev data this week — aggregator audit.jsonl line", notes, StringComparison.Ordinal);
        Assert.Contains("but its masked input is in the aggregate (aggregator audit.jsonl line", notes, StringComparison.Ordinal);

        // h1 was logged as dropped at the consistency check after its masked input was taken: in the sum all the same.
        Assert.Contains("<td class=\"in\" title=\"h1 is a participant of the aggregate of round 1", html, StringComparison.Ordinal);
        Assert.Contains("; it was logged as dropped at consistency after its masked input was taken", html, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"drop\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_SiteDeclinedAndNotInAggregate_MatrixShowsDeclinedWithoutNote()
    {
        string[] dirs = Log(contributors: ["h1"], declined: "h2", droppedAfterInput: null);

        AuditReportResult result = AuditReport.Create(dirs);

        string html = result.Html;
        Assert.Contains("<td class=\"declined\" title=\"h2 declined round 1: no dev data this week — aggregator audit.jsonl line", html, StringComparison.Ordinal);
        Assert.DoesNotContain("but its masked input is in the aggregate", html, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>An aggregator log of one completed round of h1 and h2 in which <paramref name="declined"/> declined.</summary>
    private string[] Log(string[] contributors, string declined, string? droppedAfterInput)
    {
        string[] dirs = [Path.Combine(_root, "aggregator")];
        using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
        using AuditLog aggregator = AuditLog.Open(dirs[0], "aggregator", key, "securefed.test/aggregator");
        aggregator.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("session", "s1").Add("cohort", Sites).Add("threshold", 2)
            .Add("bit_width", 32).Add("vector_length", 1000).Add("model_version", 0)
            .AddObject("dp", d => d.Add("dp_sgd_noise_multiplier", 1.1).Add("l2_clip", 1.0)));

        // As AggregationService.DeclineRound writes it; the site's masked input may still be taken.
        aggregator.Append(AuditEvents.Refusal, f => f.Add("round", 1).Add("site", declined).Add("reason", "site declined: no dev data this week"));
        foreach (string site in contributors)
        {
            aggregator.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", 1).Add("site", site).Add("bytes", 4000)
                .AddDigest("sha256", SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(site))));
        }

        if (droppedAfterInput is not null)
        {
            aggregator.Append(AuditEvents.Dropout, f => f.Add("round", 1).Add("stage", "consistency").Add("sites", [droppedAfterInput]));
        }

        aggregator.Append(AuditEvents.AggregateProduced, f => f.Add("round", 1).Add("model_version", 1).AddDigest("sha256", new byte[32]).Add("participants", contributors));
        aggregator.Append(AuditEvents.RoundCompleted, f => f.Add("round", 1));
        aggregator.Checkpoint();
        return dirs;
    }
}
