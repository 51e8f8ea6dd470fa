using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using SecureFed.Cluster.Front;
using SecureFed.Testing;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// <see cref="FrontRefusalLog"/> (pure, the clock a <see cref="FakeTimeProvider"/>): a silo front's refusal lines are
/// bounded per site as the coordinator's audited refusals are (the same token bucket), the rest counted and logged as one
/// summary; another site's refusals are logged all the same.
/// </summary>
public sealed class FrontRefusalLogTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero));
    private readonly CapturingLogger _logger = new();

    [Fact]
    public void Refused_ThousandRefusalsOfOneSite_BurstLoggedThenOneSummaryOtherSiteStillLogged()
    {
        using var log = new FrontRefusalLog(_logger, _time);

        int logged = Enumerable.Range(0, 1_000).Count(i => log.Refused("site-x", "InvalidArgument", $"the message is for federation 'other-{i}'"));
        bool otherLogged = log.Refused("site-y", "PermissionDenied", "the header names sender 'site-x'");

        Assert.Equal(32, logged);
        Assert.Equal(32, Lines("Slice upload from site-x refused (InvalidArgument)").Count);
        Assert.True(otherLogged);
        Assert.Single(Lines("Slice upload from site-y refused (PermissionDenied): the header names sender 'site-x'"));
        Assert.Empty(Lines("refusals of"));

        _time.Advance(TimeSpan.FromSeconds(10)); // one line back for site-x: its summary is logged at once
        string summary = Assert.Single(Lines("refusals of site-x"));
        Assert.Equal("968 refusals of site-x were not logged one by one (too many; refused all the same) between 2026-12-03T12:00:00.0000000Z and 2026-12-03T12:00:00.0000000Z: InvalidArgument 968", summary);
        Assert.Equal(34, _logger.Lines.Count); // 32 + site-y's line + the summary, for 1,001 refusals
        Assert.All(_logger.Lines, l => Assert.Equal(LogLevel.Warning, l.Level));
    }

    [Fact]
    public void Refused_SustainedRefusalsForTenMinutes_AtMostOneLineAndOneSummaryPerTenSeconds()
    {
        using var log = new FrontRefusalLog(_logger, _time);

        for (int second = 0; second < 600; second++)
        {
            for (int i = 0; i < 10; i++)
            {
                log.Refused("site-x", i % 2 == 0 ? "InvalidArgument" : "FailedPrecondition", "refused");
            }

            _time.Advance(TimeSpan.FromSeconds(1));
        }

        log.Flush();
        int lines = Lines("Slice upload from site-x").Count;
        long summarised = Lines("refusals of site-x").Sum(l => long.Parse(l[..l.IndexOf(' ', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(lines, 32, 32 + 60);
        Assert.InRange(Lines("refusals of site-x").Count, 1, 60);
        Assert.Equal(6_000, lines + summarised); // every refusal is a line or counted in a summary
    }

    [Fact]
    public void MayLog_BulkCallGateRefusals_CountedInTheSameBucketAndSummarisedAtDispose()
    {
        var log = new FrontRefusalLog(_logger, _time, burst: 2, TimeSpan.FromSeconds(10));

        Assert.True(log.MayLog("site-x", "ResourceExhausted"));
        Assert.True(log.Refused("site-x", "InvalidArgument", "first"));
        Assert.False(log.MayLog("site-x", "ResourceExhausted"));
        Assert.False(log.Refused("site-x", "InvalidArgument", "second"));
        log.Dispose();

        Assert.Equal("2 refusals of site-x were not logged one by one (too many; refused all the same) between 2026-12-03T12:00:00.0000000Z and 2026-12-03T12:00:00.0000000Z: InvalidArgument 1, ResourceExhausted 1",
            Assert.Single(Lines("refusals of site-x")));
    }

    private List<string> Lines(string containing) => [.. _logger.Lines.Select(l => l.Message).Where(m => m.Contains(containing, StringComparison.Ordinal))];
}
