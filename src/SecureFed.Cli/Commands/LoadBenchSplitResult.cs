using System.Globalization;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed bench load --aggregator-process</c>: the aggregator's figures (child process) apart from the agents'
/// (this process). Memory in bytes, CPU in seconds (user + system).
/// </summary>
internal sealed record LoadBenchSplitResult(
    int Agents,
    int Parameters,
    int MaxConcurrentUploads,
    bool Completed,
    int CompletedAgents,
    double RoundSeconds,
    double WallSeconds,
    long ModelBytes,
    long AggregatorPeakRssBytes,
    long AggregatorStartupRssBytes,
    double AggregatorCpuSeconds,
    double AggregatorStartupCpuSeconds,
    long AgentsPeakRssBytes,
    double AgentsCpuSeconds)
{
    /// <summary>The human-readable report.</summary>
    public string Describe()
    {
        static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);
        double model = ModelBytes;
        long growth = AggregatorPeakRssBytes - AggregatorStartupRssBytes;
        return string.Create(CultureInfo.InvariantCulture,
            $"{Agents} agents, {Parameters:N0} parameters (model {model / 1048576.0:F1} MiB of float32), MaxConcurrentUploads {MaxConcurrentUploads}: " +
            $"round {(Completed ? "completed" : "FAILED")} ({CompletedAgents}/{Agents} agents report it completed) in {RoundSeconds:F1} s (whole run {WallSeconds:F1} s)\n" +
            $"  aggregator (child process 'securefed aggregator --config'): peak RSS {MiB(AggregatorPeakRssBytes)} MiB = {AggregatorPeakRssBytes / model:F1}x the model; " +
            $"RSS after start-up {MiB(AggregatorStartupRssBytes)} MiB, so the round added at most {MiB(growth)} MiB = {growth / model:F1}x the model; CPU {AggregatorCpuSeconds:F1} s ({AggregatorStartupCpuSeconds:F1} s of it start-up)\n" +
            $"  agents ({Agents} in this process): peak RSS {MiB(AgentsPeakRssBytes)} MiB; CPU {AgentsCpuSeconds:F1} s");
    }
}
