using System.Diagnostics;
using System.Globalization;
using SecureFed.Cluster.Diagnostics;
using SecureFed.Cluster.Placement;

namespace SecureFed.Cluster.Bench;

/// <summary><see cref="ISiloStatsGrain"/>: reads procfs and the silo's <see cref="SiloTraffic"/>.</summary>
[SiloPlacement]
internal sealed class SiloStatsGrain : Grain, ISiloStatsGrain
{
    private readonly ILocalSiloDetails _silo;
    private readonly SiloTraffic _traffic;

    public SiloStatsGrain(ILocalSiloDetails silo, SiloTraffic traffic)
    {
        _silo = silo;
        _traffic = traffic;
    }

    public Task<SiloStats> StatsAsync()
    {
        string address = _silo.SiloAddress.ToParsableString();
        if (!string.Equals(address, this.GetPrimaryKeyString(), StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"the stats grain of silo {this.GetPrimaryKeyString()} was activated on {address}");
        }

        (long peak, long rss) = ReadMemory();
        using var self = Process.GetCurrentProcess();
        return Task.FromResult(new SiloStats(address, _traffic.BytesReceived, _traffic.BytesSent, peak, rss, self.TotalProcessorTime.TotalSeconds));
    }

    private static (long Peak, long Rss) ReadMemory()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status))
        {
            return (-1, -1);
        }

        long peak = -1;
        long rss = -1;
        foreach (string line in File.ReadLines(status))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                peak = Kilobytes(line) * 1024;
            }
            else if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                rss = Kilobytes(line) * 1024;
            }
        }

        return (peak, rss);
    }

    private static long Kilobytes(string line)
        => long.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
}
