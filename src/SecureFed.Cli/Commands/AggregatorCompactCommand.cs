using System.CommandLine;
using System.Globalization;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed aggregator compact --data-dir DIR</c>: compacts a stopped aggregator's round store
/// (<see cref="AggregatorStore.Compact"/>), so that a store made before incremental auto-vacuum gives the space of pruned
/// model versions back to the file system.
/// </summary>
internal static class AggregatorCompactCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "The aggregator's data directory (SecureFed:DataDirectory), holding aggregator.db.",
            Required = true,
        };
        var command = new Command(
            "compact",
            "Compact a stopped aggregator's round store (data-dir/aggregator.db): switch it to incremental auto-vacuum, so that " +
            "model versions pruned by SecureFed:KeepModelVersions give their space back to the file system, and rebuild it (SQLite VACUUM), " +
            "printing its size before and after. Every round, ledger row and kept model stays as it is. Stop the aggregator first: a store " +
            "another process has open is refused. Needs free disk space of up to about twice the compacted size (a temporary copy in TMPDIR " +
            "and the write-ahead log in the data directory); if it fails, the store is as it was. A store created by this version already " +
            "gives space back after each pruning round; compacting it only defragments it.")
        {
            dataDir,
        };
        command.SetAction((parse, ct) =>
        {
            string path = AggregatorState.StorePath(InputPaths.RequireNotAFile(parse.GetValue(dataDir)!, "--data-dir", "the aggregator's data folder (its DataDirectory, holding aggregator.db)"));
            TextWriter stdout = parse.InvocationConfiguration.Output;
            StoreCompaction result = AggregatorStore.Compact(path);
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"compacted {result.Path}"));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  before: {result.BytesBefore,15:N0} bytes (auto-vacuum {(result.WasIncremental ? "incremental" : "none")})"));
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  after:  {result.BytesAfter,15:N0} bytes (auto-vacuum incremental)"));
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }
}
