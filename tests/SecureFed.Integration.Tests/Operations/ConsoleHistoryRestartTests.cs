using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Protocol;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// The operator console's round history comes from the aggregator's SQLite store: after a restart on the same data
/// directory the console still lists the earlier rounds with their outcome, survivors, bytes, model version and each
/// site's participation.
/// </summary>
public sealed partial class ConsoleHistoryRestartTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-console-restart-").FullName;

    [Fact]
    public async Task ConsoleHistory_AggregatorRestartedOnSameStore_StillListsEarlierRounds()
    {
        // Two rounds; site-jp goes silent before its masked input in round 2, so that round ends with a dropout.
        OperatorFederation federation = await OperatorFederation.StartAsync(_dir, rounds: 2, ("site-jp", 2, ProtocolStage.MaskedInputCollection), stageTimeoutSeconds: 3);
        // Round 2's masked-input stage waits out site-jp (3 s); every other stage gets 60 s, never waited out, so that a
        // site starved on a loaded machine is not dropped from round 1 (which must complete) or from round 2 with site-jp.
        DropoutDeadline.ShortOnlyAt(federation.Federation.Aggregator.Services, 2, ProtocolStage.MaskedInputCollection, 3);
        string before;
        try
        {
            await federation.StartAgentsAsync(TimeSpan.Zero);
            await federation.Federation.Coordinator.Finished.WaitAsync(Timeout);
            using HttpClient client = federation.Client(federation.Token);
            before = await client.GetStringAsync("/live").WaitAsync(Timeout);
        }
        finally
        {
            await federation.DisposeAsync();
        }

        string round1 = Row(before, 1);
        string round2 = Row(before, 2);
        Assert.Contains("data-outcome=\"completed\"", round1, StringComparison.Ordinal);
        Assert.DoesNotContain("<td>—</td>", round1, StringComparison.Ordinal); // bytes and model version known while it ran
        Assert.Contains("data-site=\"site-jp\" data-state=\"dropped\"", before, StringComparison.Ordinal);

        // A new aggregator process on the same kit and data directory (the first one's memory is gone).
        await using WebApplication restarted = await RestartAsync(federation);
        using HttpClient again = OperatorClient(restarted, federation);
        string after = await again.GetStringAsync("/live").WaitAsync(Timeout);

        // The same rows, cell for cell, and the last round's sites as they ended.
        Assert.Equal(round1, Row(after, 1));
        Assert.Equal(round2, Row(after, 2));
        Assert.Contains("data-site=\"site-jp\" data-state=\"dropped\"", after, StringComparison.Ordinal);
        Assert.Contains("data-site=\"site-de\" data-state=\"contributed\"", after, StringComparison.Ordinal);
        // The status names the last round (finished once the coordinator has seen that both rounds ran, completed before).
        Assert.Matches("data-round=\"2\" data-stage=\"(finished|completed)\"", after);
        await restarted.StopAsync().WaitAsync(Timeout);
    }

    /// <summary>
    /// A round left open by a killed aggregator is aborted at the restart; the console's "Now" says so and the history
    /// row shows it aborted with its cohort, where before "Now" said no round had run while the history listed the abort
    /// (operator console review, session 58).
    /// </summary>
    [Fact]
    public async Task ConsoleNow_AggregatorRestartedWithARoundLeftOpen_SaysTheRoundWasAborted()
    {
        OperatorFederation federation = await OperatorFederation.StartAsync(_dir, rounds: 2, drop: null, stageTimeoutSeconds: 5);
        await federation.DisposeAsync(); // no agent ran: the store holds no round yet
        string dataDirectory = federation.Federation.AggregatorDataDirectory;
        using (AggregatorStore store = AggregatorStore.Open(AggregatorState.StorePath(dataDirectory)))
        {
            // What a process killed during round 1 leaves: the round opened, never ended.
            store.BeginRound("{\"round\":1,\"cohort\":[\"site-de\",\"site-fr\",\"site-jp\"],\"threshold\":2,\"model_version\":0}");
        }

        await using WebApplication restarted = await RestartAsync(federation);
        using HttpClient again = OperatorClient(restarted, federation);
        // The coordinator recovers the store in the background after the host started (the history, read from the store,
        // shows the abort a moment before "Now" does): poll until "Now" names round 1 or the timeout.
        string after = await again.GetStringAsync("/live").WaitAsync(Timeout);
        for (DateTime giveUp = DateTime.UtcNow + Timeout; !after.Contains("data-round=\"1\" data-stage=", StringComparison.Ordinal) && DateTime.UtcNow < giveUp;)
        {
            await Task.Delay(100);
            after = await again.GetStringAsync("/live").WaitAsync(Timeout);
        }

        Assert.Contains("data-round=\"1\" data-stage=\"aborted\">Round 1 aborted. ", after, StringComparison.Ordinal);
        Assert.Contains("data-outcome=\"aborted\"", Row(after, 1), StringComparison.Ordinal);
        Assert.Contains("data-site=\"site-jp\"", after, StringComparison.Ordinal);
        await restarted.StopAsync().WaitAsync(Timeout);
    }

    /// <summary>A new aggregator process (with its admin listener) on the federation's kit and data directory.</summary>
    private static async Task<WebApplication> RestartAsync(OperatorFederation federation)
    {
        var settings = new Dictionary<string, string?>
        {
            ["SecureFed:Federation"] = federation.Federation.Options.FederationName,
            ["SecureFed:Listen"] = "https://127.0.0.1:0",
            ["SecureFed:AdminListen"] = "http://127.0.0.1:0",
            ["SecureFed:KitDirectory"] = federation.Federation.Provisioned.AggregatorKitDirectory,
            ["SecureFed:DataDirectory"] = federation.Federation.AggregatorDataDirectory,
            ["SecureFed:Rounds"] = "2",
            ["SecureFed:MinSites"] = "3",
            ["SecureFed:ModelSpecSha256"] = FakeTrainer.SpecSha,
        };
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        WebApplication restarted = AggregatorHost.Build(configuration, new float[OperatorFederation.Parameters]);
        try
        {
            await restarted.StartAsync().WaitAsync(Timeout);
            return restarted;
        }
        catch
        {
            await restarted.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client of <paramref name="restarted"/>'s admin listener with the operator token.</summary>
    private static HttpClient OperatorClient(WebApplication restarted, OperatorFederation federation)
    {
        var client = new HttpClient { BaseAddress = AggregatorHost.AdminAddress(restarted), Timeout = Timeout };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", federation.Token);
        return client;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string Row(string live, long round)
    {
        int history = live.IndexOf("id=\"history\"", StringComparison.Ordinal);
        Assert.True(history >= 0, "the console shows no round history");
        Match match = HistoryRow().Match(live, history);
        while (match.Success && match.Groups[1].Value != round.ToString(CultureInfo.InvariantCulture))
        {
            match = match.NextMatch();
        }

        Assert.True(match.Success, $"round {round} is not in the console's history:\n{live}");
        return match.Value;
    }

    [GeneratedRegex("<tr data-round=\"(\\d+)\" data-outcome=\"[a-z]+\">.*?</tr>", RegexOptions.Singleline)]
    private static partial Regex HistoryRow();
}
