using SecureFed.Aggregator.Operations;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// The console's round records as the aggregator's store keeps them: a record damaged in the store is refused as an
/// <see cref="InvalidDataException"/> (the one exception the telemetry's start-up load skips a record for), never kept with
/// a state the console does not know, nor thrown as anything else.
/// </summary>
public sealed class ConsoleRoundTests
{
    /// <summary>
    /// Enum.Parse took a number or a list for the outcome or a site's state: "7" became a state the console printed as
    /// "7", and "99999999999" threw OverflowException, which the start-up load does not catch, so the aggregator did not
    /// start on a store with one such record (review60).
    /// </summary>
    [Theory]
    [InlineData("outcome", "\"99999999999\"")]
    [InlineData("outcome", "\"7\"")]
    [InlineData("outcome", "\"Completed, Aborted\"")]
    [InlineData("outcome", "null")]
    [InlineData("state", "\"99999999999\"")]
    [InlineData("state", "\"3\"")]
    public void FromJson_OutcomeOrSiteStateNotAName_RefusedAsInvalidDataNamingTheField(string field, string value)
    {
        var round = new ConsoleRound(4, new DateTimeOffset(2026, 12, 7, 3, 0, 0, TimeSpan.Zero), 3) { Outcome = RoundOutcomeKind.Completed };
        round.Sites["site-a"] = new ConsoleSite(SiteState.Contributed, null, null);
        string json = round.ToJson();
        string damaged = field == "outcome"
            ? json.Replace("\"outcome\":\"Completed\"", $"\"outcome\":{value}", StringComparison.Ordinal)
            : json.Replace("\"state\":\"Contributed\"", $"\"state\":{value}", StringComparison.Ordinal);
        Assert.NotEqual(json, damaged);
        Assert.Equal(RoundOutcomeKind.Completed, ConsoleRound.FromJson(json).Outcome);

        var ex = Assert.Throws<InvalidDataException>(() => ConsoleRound.FromJson(damaged));

        Assert.Contains($"'{field}' is {value}, not one of ", ex.Message, StringComparison.Ordinal);
    }
}
