using System.Diagnostics;
using System.Globalization;

namespace SecureFed.Cli.Commands;

/// <summary>
/// Samples a child process's memory and CPU from procfs while it runs (Linux): <c>VmHWM</c> (peak resident set) and
/// <c>VmRSS</c> from <c>/proc/&lt;pid&gt;/status</c>, user + system CPU time from fields 14 and 15 of
/// <c>/proc/&lt;pid&gt;/stat</c> (in clock ticks of 1/100 s, the Linux USER_HZ). The last values read before the
/// process exits are kept.
/// </summary>
internal sealed class LoadBenchProcessProbe : IAsyncDisposable
{
    private const double TicksPerSecond = 100.0; // USER_HZ on Linux
    private readonly int _pid;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public LoadBenchProcessProbe(int pid, TimeSpan interval)
    {
        _pid = pid;
        Sample();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(interval, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                Sample();
            }
        });
    }

    /// <summary>Peak resident set size (VmHWM) in bytes, -1 before the first sample.</summary>
    public long PeakRssBytes { get; private set; } = -1;

    /// <summary>Resident set size (VmRSS) at the last sample, in bytes.</summary>
    public long RssBytes { get; private set; } = -1;

    /// <summary>User + system CPU time at the last sample, in seconds.</summary>
    public double CpuSeconds { get; private set; } = double.NaN;

    /// <summary>Reads procfs now (no-op once the process has gone).</summary>
    public void Sample()
    {
        try
        {
            long hwm = -1;
            long rss = -1;
            foreach (string line in File.ReadLines($"/proc/{_pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    hwm = Kilobytes(line) * 1024;
                }
                else if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = Kilobytes(line) * 1024;
                }
            }

            double cpu = StatCpuSeconds(_pid);
            if (hwm > 0)
            {
                PeakRssBytes = Math.Max(PeakRssBytes, hwm);
                RssBytes = rss;
                CpuSeconds = cpu;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            // The process has exited (or is a zombie without status lines): keep the last sample.
        }
    }

    /// <summary>
    /// User + system CPU time read now, in seconds, without touching the sampled figures (safe beside the sampling loop);
    /// <see cref="double.NaN"/> once the process has gone.
    /// </summary>
    public double ReadCpuSeconds()
    {
        try
        {
            return StatCpuSeconds(_pid);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return double.NaN;
        }
    }

    /// <summary>This process's own peak RSS (VmHWM), in bytes.</summary>
    public static long SelfPeakRssBytes()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return Kilobytes(line) * 1024;
            }
        }

        return -1;
    }

    /// <summary>The command that runs this same CLI (the apphost, or <c>dotnet securefed.dll</c>).</summary>
    public static ProcessStartInfo SelfCommand(params string[] arguments)
    {
        string processPath = Environment.ProcessPath ?? throw new InvalidOperationException("cannot locate the running executable");
        var start = new ProcessStartInfo(processPath)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            start.ArgumentList.Add(typeof(LoadBenchProcessProbe).Assembly.Location);
        }

        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        _stop.Dispose();
    }

    private static long Kilobytes(string line) => long.Parse(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);

    private static double StatCpuSeconds(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the command name (which may contain spaces) start at field 3 (state).
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }
}
