using System.Diagnostics.Metrics;
using SecureFed.Agent;
using SecureFed.Privacy;

namespace SecureFed.Reliability.Tests;

/// <summary>The agent's ε gauges carry the collusion guarantee only for a site that accepts split patient-level noise.</summary>
public sealed class AgentTelemetryCollusionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-telemetry-collusion-").FullName;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void EpsilonGauges_SplitNoiseLedger_RecordCollusionSeriesOnlyWhenOptedIn(bool optedIn)
    {
        PrivacyLedger ledger = PrivacyLedger.Open(Path.Combine(_dir, "ledger.jsonl"), "site-a");
        ledger.Append(1, Guarantee.RecordCollusion, PlannedMechanism.SubsampledGaussian(0.1, 0.8, 1), 1e-5);
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.1, 1.6, 1), 1e-5);
        var options = new AgentOptions { Site = "site-a", AcceptSplitPatientNoise = optedIn, MaxCollusionEpsilon = optedIn ? 30 : 0 };
        using var telemetry = new AgentTelemetry(meterFactory: null);
        telemetry.ObserveLedger(ledger, options);
        var seen = new List<(string Name, string? Guarantee, double Value)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter, telemetry.Meter))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) =>
        {
            string? guarantee = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "guarantee")
                {
                    guarantee = tag.Value as string;
                }
            }

            seen.Add((i.Name, guarantee, v));
        });
        listener.Start();

        listener.RecordObservableInstruments();

        var spent = seen.Where(m => m.Name == "securefed.agent.privacy.epsilon_spent").ToDictionary(m => m.Guarantee!, m => m.Value);
        var budget = seen.Where(m => m.Name == "securefed.agent.privacy.epsilon_budget").ToDictionary(m => m.Guarantee!, m => m.Value);
        Assert.Equal(ledger.Spent(Guarantee.Record, 1e-5).Epsilon, spent["record"], 12);
        if (optedIn)
        {
            Assert.Equal(ledger.Spent(Guarantee.RecordCollusion, 1e-5).Epsilon, spent["record-collusion"], 12);
            Assert.Equal(30, budget["record-collusion"]);
        }
        else
        {
            Assert.False(spent.ContainsKey("record-collusion"));
            Assert.False(budget.ContainsKey("record-collusion"));
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
