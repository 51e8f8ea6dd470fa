using System.CommandLine;
using System.Globalization;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed aggregator exclusions --data-dir DIR [--clear SITE]</c>: lists the sites a stopped aggregator found at
/// fault (attempts each still sits out, its blame count, the round of its last blame: the rows a restart restores), and
/// clears one (<see cref="AggregatorStore.ClearExclusion"/>), the operator's remedy for an honest site that colluders framed
/// (single-process aggregator: a cluster coordinator's store is restored from the cluster database at every lease).
/// </summary>
internal static class AggregatorExclusionsCommand
{
    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "The aggregator's data directory (SecureFed:DataDirectory), holding aggregator.db.",
            Required = true,
        };
        var clear = new Option<string?>("--clear")
        {
            Description = "Delete this site's row: it is no longer excluded when the aggregator starts, and its blame count starts again from 0 (its next blame excludes it for BlameExclusionRounds attempts, not a doubled number). The audit log keeps its blame lines.",
        };
        var command = new Command(
            "exclusions",
            "List the sites a stopped aggregator found at fault (data-dir/aggregator.db): the round attempts each still sits out, how many " +
            "attempts blamed it (each further blame doubles its exclusion) and the round of the last blame; a restart restores them. With " +
            "--clear SITE, delete that site's row. Stop the aggregator first: a store another process has open is refused. The clearing " +
            "is not audited (the aggregator logs the sites it restores as excluded when it starts). Single-process aggregator only: a " +
            "cluster coordinator replaces its data directory's store with the one saved in the cluster database whenever it takes the " +
            "lease, so a row cleared here comes back there.")
        {
            dataDir,
            clear,
        };
        command.SetAction((parse, ct) =>
        {
            string path = AggregatorState.StorePath(InputPaths.RequireNotAFile(parse.GetValue(dataDir)!, "--data-dir", "the aggregator's data folder (its DataDirectory, holding aggregator.db)"));
            TextWriter stdout = parse.InvocationConfiguration.Output;
            if (parse.GetValue(clear) is string site)
            {
                SiteExclusionRecord removed;
                try
                {
                    removed = AggregatorStore.ClearExclusion(path, site);
                }
                catch (KeyNotFoundException ex)
                {
                    throw new UsageException(ex.Message);
                }
                catch (ArgumentException ex)
                {
                    throw new UsageException($"--clear needs a site name, not '{site}' ({ex.Message.Split(" (Parameter", 2)[0]})");
                }

                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"cleared {removed.Site}: it had {removed.AttemptsLeft} attempts left to sit out and {removed.BlameCount} blames (the last in round {removed.LastBlamedRound}); it takes part again when the aggregator starts"));
                return Task.FromResult(CliApp.ExitOk);
            }

            IReadOnlyList<SiteExclusionRecord> rows = AggregatorStore.ReadExclusions(path);
            if (rows.Count == 0)
            {
                stdout.WriteLine("no site has been found at fault");
                return Task.FromResult(CliApp.ExitOk);
            }

            int width = Math.Max("site".Length, rows.Max(r => r.Site.Length));
            stdout.WriteLine($"{"site".PadRight(width)}  attempts left  blamed  last blamed in round");
            foreach (SiteExclusionRecord row in rows)
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{row.Site.PadRight(width)}  {row.AttemptsLeft,13}  {row.BlameCount,6}  {row.LastBlamedRound,20}"));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }
}
