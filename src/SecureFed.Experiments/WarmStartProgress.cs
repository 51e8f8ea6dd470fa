using System.Globalization;
using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// Progress lines of a public warm start (minutes to hours on a large public corpus): one at the end of every epoch,
/// and within an epoch at most one per <see cref="DefaultInterval"/>: "epoch 2/20 (45 %), 15,935 sentences, loss 0.412,
/// 93 s elapsed". The lines go to the caller's sink (the experiment's progress, the demo's console); nothing here writes
/// to the console.
/// </summary>
public sealed class WarmStartProgress : IProgress<TrainProgress>
{
    /// <summary>The least time between two lines within an epoch.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(30);

    private readonly int _sentences;
    private readonly Action<string> _report;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly long _started;
    private long _lastLine;

    /// <param name="sentences">Public sentences the warm start trains on (named in every line).</param>
    /// <param name="report">Receives each line.</param>
    /// <param name="time">Clock (the system's by default).</param>
    /// <param name="interval">Least time between lines within an epoch; <see cref="DefaultInterval"/> by default.</param>
    public WarmStartProgress(int sentences, Action<string> report, TimeProvider? time = null, TimeSpan? interval = null)
    {
        ArgumentNullException.ThrowIfNull(report);
        _sentences = sentences;
        _report = report;
        _time = time ?? TimeProvider.System;
        _interval = interval ?? DefaultInterval;
        _started = _time.GetTimestamp();
        _lastLine = _started;
    }

    /// <inheritdoc />
    public void Report(TrainProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!value.EpochCompleted && _time.GetElapsedTime(_lastLine) < _interval)
        {
            return;
        }

        _lastLine = _time.GetTimestamp();
        string within = value.EpochCompleted ? "" : string.Create(CultureInfo.InvariantCulture, $" ({value.EpochFraction * 100:F0} %)");
        _report(string.Create(CultureInfo.InvariantCulture,
            $"epoch {value.Epoch}/{value.Epochs}{within}, {_sentences:N0} sentences, loss {value.Loss:F3}, {_time.GetElapsedTime(_started).TotalSeconds:F0} s elapsed"));
    }
}
