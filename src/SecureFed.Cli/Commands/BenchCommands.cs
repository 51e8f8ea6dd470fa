using System.CommandLine;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed bench ...</c>: single-machine performance measurements.</summary>
internal static class BenchCommands
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure SecureFed's hot paths on this machine (warmed up, median of several runs).");
        command.Subcommands.Add(SecAggBenchCommand.Create());
        command.Subcommands.Add(LoadBenchCommand.Create());
        command.Subcommands.Add(ClusterBenchCommand.Create());
        command.Subcommands.Add(CoordinatorCommitBenchCommand.Create());
        command.Subcommands.Add(PrgBenchCommand.Create());
        command.Subcommands.Add(PairBenchCommand.Create());
        command.Subcommands.Add(DiscreteGaussianBenchCommand.Create());
        command.Subcommands.Add(ProvisionBenchCommand.Create());
        command.Subcommands.Add(AuditBenchCommand.Create());
        command.Subcommands.Add(PrivacyLedgerBenchCommand.Create());
        command.Subcommands.Add(DpSgdBenchCommand.Create());
        return command;
    }
}
