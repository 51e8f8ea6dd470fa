using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>A long public warm start reports its progress (epoch k/N, sentences, loss, elapsed) through the caller's sink.</summary>
public sealed class WarmStartProgressTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-warm-progress-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void CreateInitialModel_WarmStart_ReportsEveryEpochWithSentencesLossAndElapsed()
    {
        string data = SyntheticCorpusFiles.Write(Path.Combine(_dir, "data"), 30, 10);
        string publicCorpus = SyntheticCorpusFiles.Write(Path.Combine(_dir, "public"), 12, 4);
        var lines = new List<string>();
        var options = new ExperimentOptions { DataDirectory = data, Sites = 2, ConfigName = "tiny", WarmStartDirectory = publicCorpus, WarmStartEpochs = 2, Threads = 1 };
        options.Validate();
        var runner = new ExperimentRunner(options, lines.Add);

        _ = runner.CreateInitialModel(runner.LoadSplit(1), 1);

        string[] epochs = [.. lines.Where(l => l.StartsWith("[seed 1] public warm start: epoch ", StringComparison.Ordinal))];
        Assert.Equal(2, epochs.Length);
        Assert.Matches(@"^\[seed 1\] public warm start: epoch 1/2, 12 sentences, loss [0-9.]+, [0-9]+ s elapsed$", epochs[0]);
        Assert.StartsWith("[seed 1] public warm start: epoch 2/2, 12 sentences, loss ", epochs[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Report_WithinAnEpoch_AtMostOneLinePerInterval()
    {
        var clock = new ManualClock();
        var lines = new List<string>();
        var progress = new WarmStartProgress(1000, lines.Add, clock, TimeSpan.FromSeconds(30));

        progress.Report(new TrainProgress(1, 3, 10, 0.1, 0.9, null, null, 0, false));
        clock.Advance(TimeSpan.FromSeconds(31));
        progress.Report(new TrainProgress(1, 3, 20, 0.45, 0.8, null, null, 0, false));
        clock.Advance(TimeSpan.FromSeconds(5));
        progress.Report(new TrainProgress(1, 3, 30, 0.6, 0.7, null, null, 0, false));
        progress.Report(new TrainProgress(1, 3, 40, 1, 0.65, null, null, 0, true));

        Assert.Equal(["epoch 1/3 (45 %), 1,000 sentences, loss 0.800, 31 s elapsed", "epoch 1/3, 1,000 sentences, loss 0.650, 36 s elapsed"], lines);
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
