using Grpc.Core;
using Microsoft.Extensions.Logging;
using SecureFed.Agent;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Text the aggregator supplies (an abort reason, a gRPC status detail) went into the agent's log as it came (agent
/// review of 9e774e0): megabytes per line, and line breaks or ANSI escapes that forge log lines or recolour the
/// operator's terminal. <see cref="AggregatorText.ForLog"/> bounds and cleans it; the agent uses it wherever it logs
/// such text.
/// </summary>
public sealed class AggregatorTextTests
{
    [Fact]
    public void ForLog_HugeText_CutTo500CharactersWithTheCountOfTheRest()
    {
        string shown = AggregatorText.ForLog(new string('x', 1_000_000));

        Assert.Equal(new string('x', 500) + "\u2026 (999,500 more characters)", shown);
    }

    [Fact]
    public void ForLog_LineBreaksAndAnAnsiEscape_Replaced()
    {
        string shown = AggregatorText.ForLog("aborted\r\n2026-12-07 INFO site-a: round 3 completed\u001b[31m");

        Assert.Equal("aborted\uFFFD\uFFFD2026-12-07 INFO site-a: round 3 completed\uFFFD[31m", shown);
    }

    [Fact]
    public void ForLog_ShortCleanText_Unchanged()
    {
        Assert.Equal("fewer than t sites uploaded", AggregatorText.ForLog("fewer than t sites uploaded"));
        Assert.Equal("", AggregatorText.ForLog(null));
    }
}
