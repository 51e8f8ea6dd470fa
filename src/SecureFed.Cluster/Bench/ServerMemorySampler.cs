using System.Globalization;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// The peak memory of a local PostgreSQL server over a span, sampled on a background task every
/// <see cref="Interval"/>: the postmaster (the process id on the first line of the data directory's <c>postmaster.pid</c>)
/// and every process descending from it (parent ids from <c>/proc/*/stat</c>), each process's resident set and
/// proportional set from <c>/proc/&lt;pid&gt;/smaps_rollup</c> (or its resident set from <c>/proc/&lt;pid&gt;/status</c>
/// VmRSS where that is not readable). Summing resident sets counts the shared buffers (shared memory) once per process
/// that touched them; the proportional sets split each shared page among the processes mapping it, so their sum is the
/// better figure of the server's memory. Linux only: elsewhere <see cref="Start"/> returns null.
/// </summary>
internal sealed class ServerMemorySampler : IAsyncDisposable
{
    /// <summary>Time between two samples.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private readonly int _postmaster;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sampler;
    private readonly Lock _gate = new();
    private long _peakRss;
    private long _peakProcessRss;
    private long? _peakPss;
    private int _peakProcesses;
    private int _samples;
    private long _spanRss;
    private long _spanProcessRss;
    private long? _spanPss;
    private int _spanProcesses;
    private int _spanSamples;

    private ServerMemorySampler(int postmaster)
    {
        _postmaster = postmaster;
        _sampler = Task.Run(SampleAsync);
    }

    /// <summary>Starts sampling the server of <paramref name="dataDirectory"/>; null when its postmaster cannot be read (not Linux, no <c>postmaster.pid</c>).</summary>
    public static ServerMemorySampler? Start(string dataDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            string? first = File.ReadLines(Path.Combine(dataDirectory, "postmaster.pid")).FirstOrDefault();
            return int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && Read(pid) is not null
                ? new ServerMemorySampler(pid)
                : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Starts a step within the span (one sample first): <see cref="EndStep"/> gives the peaks from here.</summary>
    public void BeginStep()
    {
        lock (_gate)
        {
            (_spanRss, _spanProcessRss, _spanPss, _spanProcesses, _spanSamples) = (0, 0, null, 0, 0);
        }

        Record(Read(_postmaster));
    }

    /// <summary>Ends the step begun by <see cref="BeginStep"/> (one last sample first); the peaks over it, or null when no sample could be read.</summary>
    public ServerMemoryPeak? EndStep()
    {
        Record(Read(_postmaster));
        lock (_gate)
        {
            return _spanSamples == 0 ? null : new ServerMemoryPeak(_spanRss, _spanProcessRss, _spanPss, _spanProcesses, _spanSamples);
        }
    }

    /// <summary>Ends the span (one last sample first); the peaks over it, or null when no sample could be read.</summary>
    public async Task<ServerMemoryPeak?> StopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        await _sampler.ConfigureAwait(false);
        Record(Read(_postmaster));
        lock (_gate)
        {
            return _samples == 0 ? null : new ServerMemoryPeak(_peakRss, _peakProcessRss, _peakPss, _peakProcesses, _samples);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        await _sampler.ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task SampleAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Record(Read(_postmaster));
            try
            {
                await Task.Delay(Interval, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private void Record(Sample? sample)
    {
        if (sample is not Sample s)
        {
            return;
        }

        lock (_gate)
        {
            _samples++;
            _peakRss = Math.Max(_peakRss, s.Rss);
            _peakProcessRss = Math.Max(_peakProcessRss, s.MaxProcessRss);
            _peakProcesses = Math.Max(_peakProcesses, s.Processes);
            _spanSamples++;
            _spanRss = Math.Max(_spanRss, s.Rss);
            _spanProcessRss = Math.Max(_spanProcessRss, s.MaxProcessRss);
            _spanProcesses = Math.Max(_spanProcesses, s.Processes);
            if (s.Pss is long pss)
            {
                _peakPss = Math.Max(_peakPss ?? 0, pss);
                _spanPss = Math.Max(_spanPss ?? 0, pss);
            }
        }
    }

    /// <summary>One sample of the postmaster and its descendants; null when the postmaster is gone.</summary>
    private static Sample? Read(int postmaster)
    {
        if (ReadProcess(postmaster) is not { } root)
        {
            return null;
        }

        var children = new Dictionary<int, List<int>>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid == postmaster)
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue; // ended since the listing
            }

            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the fields start after the last ')'.
            int close = stat.LastIndexOf(')');
            string[] fields = close < 0 ? [] : stat[(close + 1)..].Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 2 && int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out int parent))
            {
                if (!children.TryGetValue(parent, out List<int>? list))
                {
                    children[parent] = list = [];
                }

                list.Add(pid);
            }
        }

        long rss = root.Rss;
        long maxProcess = root.Rss;
        long? pss = root.Pss;
        int processes = 1;
        var pending = new Stack<int>(children.GetValueOrDefault(postmaster) ?? []);
        while (pending.TryPop(out int pid))
        {
            foreach (int child in children.GetValueOrDefault(pid) ?? [])
            {
                pending.Push(child);
            }

            if (ReadProcess(pid) is not { } process)
            {
                continue; // ended since the listing
            }

            processes++;
            rss += process.Rss;
            maxProcess = Math.Max(maxProcess, process.Rss);
            pss = pss is long sum && process.Pss is long p ? sum + p : null;
        }

        return new Sample(rss, maxProcess, pss, processes);
    }

    /// <summary>A process's resident and proportional set in bytes (proportional null where smaps_rollup is not readable); null when it is gone.</summary>
    private static (long Rss, long? Pss)? ReadProcess(int pid)
    {
        string proc = "/proc/" + pid.ToString(CultureInfo.InvariantCulture);
        try
        {
            long? rss = null;
            long? pss = null;
            foreach (string line in File.ReadLines(proc + "/smaps_rollup"))
            {
                rss ??= Kilobytes(line, "Rss:");
                pss ??= Kilobytes(line, "Pss:");
            }

            if (rss is long r && pss is long p)
            {
                return (r, p);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }

        try
        {
            foreach (string line in File.ReadLines(proc + "/status"))
            {
                if (Kilobytes(line, "VmRSS:") is long rss)
                {
                    return (rss, null);
                }
            }

            return null; // a zombie has no VmRSS
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static long? Kilobytes(string line, string field) =>
        line.StartsWith(field, StringComparison.Ordinal)
        && long.TryParse(line[field.Length..].Trim().Split(' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb)
            ? kb * 1024
            : null;

    private readonly record struct Sample(long Rss, long MaxProcessRss, long? Pss, int Processes);
}

/// <summary>
/// Peaks of the PostgreSQL server's memory over a span (the run, or one step of it), each the largest of its samples: the sum of the server's
/// processes' resident sets, the largest single process's resident set, the sum of their proportional sets (over the
/// samples where every process's smaps_rollup was readable; null when none was), the most processes seen at once, and
/// how many samples were read.
/// </summary>
public sealed record ServerMemoryPeak(long RssBytes, long ProcessRssBytes, long? PssBytes, int Processes, int Samples);
