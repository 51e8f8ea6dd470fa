using System.CommandLine;

namespace SecureFed.Cli.Commands;

/// <summary>The top-level sub-commands of <c>securefed</c>. Each area owns one file under Commands/.</summary>
internal static class CommandRegistry
{
    public static IEnumerable<Command> All()
    {
        yield return DemoCommand.Create();
        yield return ExperimentCommand.Create();
        yield return BenchCommands.Create();
        yield return PrivacyCommands.Create();
        yield return TaggerCommands.Create();
        yield return ProvisionCommands.Create();
        yield return AuditCommands.Create();
        yield return ModelCommands.Create();
        foreach (Command service in ServiceCommands.Create())
        {
            yield return service;
        }
    }
}
