using System.Globalization;

namespace SecureFed.Cli.Commands;

/// <summary>
/// Round 1's unmasking as an aggregator process (the single process, or the coordinator silo) reports it on its log, for
/// <c>bench cluster --front grpc</c>: the span of the unmasking stage's close work, timed in the aggregator itself
/// (<c>RoundCoordinator</c>'s line "Round 1 stage unmasking: closing work took X s": reconstructing the seeds from the
/// revealed shares and removing every self mask and the dropped sites' pairwise masks; on the cluster, the round grain and
/// every slice grain, each on its silo), and each watched process's CPU time (procfs) between the line that said the stage
/// closed (written just before that work) and that line (written just after it).
/// </summary>
internal sealed class BenchUnmaskWatch
{
    /// <summary>The start of the line the aggregator writes just before the unmasking work.</summary>
    internal const string ClosedLine = "Round 1 stage unmasking closed";

    /// <summary>The start of the line the aggregator writes just after it, with the work's seconds.</summary>
    internal const string WorkLine = "Round 1 stage unmasking: closing work took ";

    private readonly BenchChildProcess _aggregator;
    private readonly IReadOnlyList<BenchChildProcess> _watched;
    private readonly Lock _gate = new();
    private double[]? _cpuAtClose;
    private double[]? _cpuAfterWork;
    private double _seconds = double.NaN;

    /// <summary>Listens to <paramref name="aggregator"/>'s lines (before its round opens); samples <paramref name="watched"/>'s CPU.</summary>
    public BenchUnmaskWatch(BenchChildProcess aggregator, IReadOnlyList<BenchChildProcess> watched)
    {
        _aggregator = aggregator;
        _watched = watched;
        aggregator.LineWritten += OnLine;
    }

    /// <summary>The unmasking work's seconds as the aggregator timed it.</summary>
    /// <exception cref="InvalidOperationException">The aggregator never wrote the line.</exception>
    public double Seconds
    {
        get
        {
            lock (_gate)
            {
                return double.IsNaN(_seconds)
                    ? throw new InvalidOperationException($"the {_aggregator.Name} never logged its unmasking work ('{WorkLine}…'):\n  {_aggregator.Tail}")
                    : _seconds;
            }
        }
    }

    /// <summary>Each watched process's CPU seconds (user + system) from the stage's close to the end of its work, in order.</summary>
    /// <exception cref="InvalidOperationException">Either line was not seen, or a process had gone.</exception>
    public double[] CpuSeconds
    {
        get
        {
            lock (_gate)
            {
                if (_cpuAtClose is null || _cpuAfterWork is null)
                {
                    throw new InvalidOperationException($"the {_aggregator.Name} did not log both the close of the unmasking stage and its work:\n  {_aggregator.Tail}");
                }

                double[] cpu = [.. _cpuAfterWork.Zip(_cpuAtClose, (after, before) => Math.Round(after - before, 3))];
                return cpu.Any(double.IsNaN)
                    ? throw new InvalidOperationException("a watched process had exited before the unmasking work ended")
                    : cpu;
            }
        }
    }

    private void OnLine(string line)
    {
        int work = line.IndexOf(WorkLine, StringComparison.Ordinal);
        if (work >= 0)
        {
            double[] cpu = Sample();
            string number = line[(work + WorkLine.Length)..].Split(' ')[0];
            lock (_gate)
            {
                _cpuAfterWork ??= cpu;
                if (double.IsNaN(_seconds))
                {
                    _seconds = double.Parse(number, NumberStyles.Float, CultureInfo.InvariantCulture);
                }
            }
        }
        else if (line.Contains(ClosedLine, StringComparison.Ordinal))
        {
            double[] cpu = Sample();
            lock (_gate)
            {
                _cpuAtClose ??= cpu;
            }
        }
    }

    private double[] Sample() => [.. _watched.Select(p => p.Probe.ReadCpuSeconds())];
}
