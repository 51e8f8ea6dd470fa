using System.Diagnostics.Metrics;

namespace SecureFed.Agent;

/// <summary>
/// The agent's own metrics (meter <see cref="Name"/>): local training time, bytes sent, retries, rounds and the
/// patient-level ε this site has spent. They describe the site to itself; the agent exports nothing by itself: a
/// hospital adds the meter to its own OpenTelemetry set-up (<c>AddMeter("SecureFed.Agent")</c>).
/// </summary>
public static class AgentTelemetry
{
    /// <summary>The meter's name.</summary>
    public const string Name = "SecureFed.Agent";

    private static readonly Meter Meter = new(Name, typeof(AgentTelemetry).Assembly.GetName().Version?.ToString());
    private static readonly Histogram<double> TrainingDuration = Meter.CreateHistogram<double>("securefed.agent.training.duration", "s", "Local DP-SGD training time per round.");
    private static readonly Counter<long> BytesSent = Meter.CreateCounter<long>("securefed.agent.sent", "By", "Protobuf bytes sent to the aggregator.");
    private static readonly Counter<long> Retries = Meter.CreateCounter<long>("securefed.agent.retries", "{retry}", "gRPC calls retried after a transient failure.");
    private static readonly Counter<long> Rounds = Meter.CreateCounter<long>("securefed.agent.rounds", "{round}", "Rounds this site took part in, by outcome (completed or not).");
    private static double s_recordEpsilon;

    static AgentTelemetry()
    {
        Meter.CreateObservableGauge("securefed.agent.privacy.epsilon_spent", () => Volatile.Read(ref s_recordEpsilon), "1", "Patient-level ε this site has spent (its own ledger).");
    }

    internal static void Trained(TimeSpan elapsed) => TrainingDuration.Record(elapsed.TotalSeconds);

    internal static void Retried(string status) => Retries.Add(1, new KeyValuePair<string, object?>("status", status));

    internal static void RoundEnded(bool completed, long bytes, double recordEpsilon)
    {
        BytesSent.Add(bytes);
        Rounds.Add(1, new KeyValuePair<string, object?>("completed", completed));
        Volatile.Write(ref s_recordEpsilon, recordEpsilon);
    }
}
