using System.Text.Json;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Crypto;

namespace SecureFed.Federation.Tests;

/// <summary>
/// <see cref="RefusalAudit"/>: a caller's refusal lines come from a token bucket; the ones beyond it are counted and
/// summarised in one <see cref="AuditEvents.RefusalsSuppressed"/> line, so the number of lines is bounded and no refusal
/// goes uncounted. Deterministic: the clock is a <see cref="FakeTimeProvider"/>.
/// </summary>
public sealed class RefusalAuditTests : IDisposable
{
    private const int Burst = 5;
    private static readonly TimeSpan Refill = TimeSpan.FromSeconds(10);
    private readonly TempDirectory _dir = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 2, 9, 0, 0, TimeSpan.Zero));
    private readonly AuditLog _audit;
    private readonly RefusalAudit _refusals;

    public RefusalAuditTests()
    {
        _audit = AuditLog.Open(_dir.Combine("audit"), "aggregator", Ed25519PrivateKey.FromSeed(new byte[32]), "securefed.test/aggregator", _time);
        _refusals = new RefusalAudit(_audit, _time, null, Burst, Refill);
    }

    [Fact]
    public void Append_ThousandRefusalsAtOnce_BurstWrittenRestCountedInOneSummary()
    {
        int written = Refuse("site-x", 1_000);

        Assert.Equal(Burst, written);
        Assert.Equal(Burst, Lines(AuditEvents.Refusal).Count);
        Assert.Empty(Lines(AuditEvents.RefusalsSuppressed));

        _time.Advance(Refill); // one line back: the timer writes the summary
        JsonElement summary = Assert.Single(Lines(AuditEvents.RefusalsSuppressed));
        Assert.Equal("site-x", summary.GetProperty("site").GetString());
        Assert.Equal(1_000 - Burst, summary.GetProperty("suppressed").GetInt64());
        Assert.Equal(1_000 - Burst, summary.GetProperty("categories").GetProperty("wrong_federation").GetInt64());
        Assert.Equal("2026-12-02T09:00:00.0000000Z", summary.GetProperty("since").GetString());
        Assert.True(AuditVerifier.Verify(_audit.Directory).Ok);
    }

    [Fact]
    public void Append_SustainedRefusals_AtMostOneRefusalAndOneSummaryPerRefill()
    {
        long total = 0;
        for (int second = 0; second < 600; second++)
        {
            total += 10;
            Refuse("site-x", 10);
            _time.Advance(TimeSpan.FromSeconds(1));
        }

        _refusals.Flush();
        List<JsonElement> refusals = Lines(AuditEvents.Refusal);
        List<JsonElement> summaries = Lines(AuditEvents.RefusalsSuppressed);
        Assert.InRange(refusals.Count, Burst, Burst + 61);
        Assert.InRange(summaries.Count, 1, 62);
        Assert.Equal(total, refusals.Count + summaries.Sum(s => s.GetProperty("suppressed").GetInt64()));
    }

    [Fact]
    public void Append_OneSiteOverItsBucket_AnotherSiteStillAudited()
    {
        Refuse("site-x", 100);

        Assert.Equal(Burst, Refuse("site-y", Burst));
        Assert.Equal(Burst, Lines(AuditEvents.Refusal).Count(l => l.GetProperty("site").GetString() == "site-y"));
    }

    [Fact]
    public void Append_NextRefusalAfterRefill_SummaryWrittenBeforeIt()
    {
        Refuse("site-x", Burst + 3);
        _time.Advance(Refill);
        Assert.True(_refusals.Append("site-x", "wrong_sender", f => f.Add("site", "site-x").Add("reason", "after")));

        List<(string Type, JsonElement Fields)> lines = AllLines();
        Assert.Equal(AuditEvents.RefusalsSuppressed, lines[^2].Type);
        Assert.Equal(3, lines[^2].Fields.GetProperty("suppressed").GetInt64());
        Assert.Equal("after", lines[^1].Fields.GetProperty("reason").GetString());
        Assert.Single(Lines(AuditEvents.RefusalsSuppressed));
    }

    [Fact]
    public void Flush_PendingCounts_WrittenWithoutWaitingForTheBucket()
    {
        Refuse("site-x", Burst + 7);

        _refusals.Flush();

        Assert.Equal(7, Assert.Single(Lines(AuditEvents.RefusalsSuppressed)).GetProperty("suppressed").GetInt64());
        _time.Advance(Refill * 3);
        Assert.Single(Lines(AuditEvents.RefusalsSuppressed));
    }

    private int Refuse(string site, int count)
    {
        int written = 0;
        for (int i = 0; i < count; i++)
        {
            written += _refusals.Append(site, "wrong_federation", f => f.Add("site", site).Add("reason", "refused " + i.ToString(System.Globalization.CultureInfo.InvariantCulture))) ? 1 : 0;
        }

        return written;
    }

    private List<JsonElement> Lines(string type) => [.. AllLines().Where(l => l.Type == type).Select(l => l.Fields)];

    private List<(string Type, JsonElement Fields)> AllLines()
    {
        using var stream = new FileStream(Path.Combine(_audit.Directory, AuditLog.LogFileName), FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        var lines = new List<(string, JsonElement)>();
        while (reader.ReadLine() is string line)
        {
            using JsonDocument doc = JsonDocument.Parse(line);
            lines.Add((doc.RootElement.GetProperty("type").GetString()!, doc.RootElement.GetProperty("fields").Clone()));
        }

        return lines;
    }

    public void Dispose()
    {
        _refusals.Dispose();
        _audit.Dispose();
        _dir.Dispose();
    }
}
