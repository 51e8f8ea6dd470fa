using System.Text.Json;
using SecureFed.Cli;
using SecureFed.Privacy;

namespace SecureFed.Integration.Tests;

/// <summary><c>securefed privacy ledger show</c> on a ledger with split-noise rounds prints the collusion ε too.</summary>
public sealed class PrivacyLedgerShowCollusionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-ledger-show-").FullName;

    [Fact]
    public async Task LedgerShow_SplitNoiseRounds_PrintsRecordCollusionEntriesAndTotal()
    {
        string path = Path.Combine(_dir, "privacy-ledger.jsonl");
        PrivacyLedger ledger = PrivacyLedger.Open(path, "site-a");
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.1, 1.2, 20), 1e-5);
        ledger.Append(2, Guarantee.RecordCollusion, PlannedMechanism.SubsampledGaussian(0.1, 1.2 / Math.Sqrt(2), 1), 1e-5);
        ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.1, 1.2, 1), 1e-5);
        double collusion = ledger.Spent(Guarantee.RecordCollusion, 1e-5).Epsilon;
        using var text = new StringWriter();
        using var json = new StringWriter();
        using var stderr = new StringWriter();

        int textCode = await CliApp.RunAsync(["privacy", "ledger", "show", path], text, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        int jsonCode = await CliApp.RunAsync(["privacy", "ledger", "show", path, "--json"], json, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(0, textCode);
        Assert.Equal(0, jsonCode);
        Assert.Contains("record-collusion", text.ToString(), StringComparison.Ordinal);
        Assert.Contains($"record-level epsilon if the aggregator and all other sites collude {collusion.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}", text.ToString(), StringComparison.Ordinal);
        using JsonDocument doc = JsonDocument.Parse(json.ToString());
        Assert.Equal(collusion, doc.RootElement.GetProperty("record_collusion_epsilon").GetDouble(), 9);
        Assert.Equal("record-collusion", doc.RootElement.GetProperty("entries")[1].GetProperty("guarantee").GetString());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
