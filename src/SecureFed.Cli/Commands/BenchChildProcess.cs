using System.Collections.Concurrent;
using System.Diagnostics;

namespace SecureFed.Cli.Commands;

/// <summary>
/// One <c>securefed aggregator --config</c> child process of <c>bench cluster --front grpc</c>: started, ready once it
/// prints <paramref name="readyLine"/>, sampled through procfs (<see cref="LoadBenchProcessProbe"/>) every 200 ms until
/// it exits or is disposed (then killed).
/// </summary>
internal sealed class BenchChildProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);
    private readonly Process _process;
    private readonly string _readyLine;
    private readonly ConcurrentQueue<string> _tail = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _roundOpenedTimestamp;

    private BenchChildProcess(string name, Process process, string readyLine)
    {
        Name = name;
        _process = process;
        _readyLine = readyLine;
        Probe = new LoadBenchProcessProbe(process.Id, TimeSpan.FromMilliseconds(200));
    }

    public string Name { get; }

    public int ProcessId => _process.Id;

    public LoadBenchProcessProbe Probe { get; }

    /// <summary>The line that said the process was ready.</summary>
    public string ReadyLine => _ready.Task.IsCompletedSuccessfully ? _ready.Task.Result : "";

    /// <summary><see cref="Stopwatch.GetTimestamp"/> when the process printed that round 1 opened; 0 before.</summary>
    public long RoundOpenedTimestamp => Interlocked.Read(ref _roundOpenedTimestamp);

    /// <summary>Raised for every line the process writes (stdout and stderr), on the thread that read it.</summary>
    public event Action<string>? LineWritten;

    /// <summary>The last lines the process wrote.</summary>
    public string Tail => string.Join("\n  ", _tail);

    public bool HasExited => _process.HasExited;

    public static async Task<BenchChildProcess> StartAsync(string name, string configPath, string readyLine, CancellationToken cancellationToken)
    {
        ProcessStartInfo info = LoadBenchProcessProbe.SelfCommand("aggregator", "--config", configPath);
        info.Environment["Logging__LogLevel__Default"] = "Information";
        info.Environment["Logging__LogLevel__Orleans"] = "Warning";
        info.Environment["Logging__LogLevel__Microsoft"] = "Warning";
        info.Environment["Logging__LogLevel__System"] = "Warning";
        // A silo's front logs its running totals of forwarded bytes at Debug after each forwarded call (BenchForwardedBytes).
        info.Environment["Logging__LogLevel__SecureFed.Cluster.Front"] = "Debug";
        Process process = Process.Start(info) ?? throw new InvalidOperationException($"could not start the {name} process");
        var child = new BenchChildProcess(name, process, readyLine);
        process.OutputDataReceived += (_, e) => child.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnLine(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Task first = await Task.WhenAny(child._ready.Task, process.WaitForExitAsync(cancellationToken), Task.Delay(StartTimeout, cancellationToken)).ConfigureAwait(false);
        if (first != child._ready.Task)
        {
            await child.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"the {name} process did not start:\n  {child.Tail}");
        }

        child.Probe.Sample();
        return child;
    }

    /// <summary>Waits for the process to exit on its own (the aggregator lingers ~10 s after its last round); kills it after <paramref name="timeout"/>.</summary>
    public async Task WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        wait.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Probe.Sample();
            throw new InvalidOperationException($"the {Name} process did not exit within {timeout.TotalSeconds:F0} s after its last round:\n  {Tail}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        Probe.Sample();
        await Probe.DisposeAsync().ConfigureAwait(false);
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        catch (TimeoutException)
        {
            // left to the operating system
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        LineWritten?.Invoke(line);
        _tail.Enqueue(line);
        while (_tail.Count > 40 && _tail.TryDequeue(out _))
        {
        }

        if (line.Contains(_readyLine, StringComparison.Ordinal))
        {
            _ready.TrySetResult(line);
        }
        else if (line.Contains("Round 1 opened", StringComparison.Ordinal))
        {
            Interlocked.CompareExchange(ref _roundOpenedTimestamp, Stopwatch.GetTimestamp(), 0);
        }
    }
}
