using System.CommandLine;
using System.Security.Cryptography;
using SecureFed.Cli.Commands;

namespace SecureFed.Cli;

/// <summary>
/// Builds the <c>securefed</c> command tree and runs it with SecureFed's exit-code contract:
/// 0 success, 1 a failed check or operation, 2 a usage error (unknown command, bad option, invalid value).
/// </summary>
internal static class CliApp
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "SecureFed: privacy-preserving federated training of a clinical named-entity tagger " +
            "(secure aggregation + differential privacy + tamper-evident audit logs).");
        foreach (Command command in CommandRegistry.All())
        {
            root.Subcommands.Add(command);
        }

        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        RootCommand root = BuildRoot();
        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await stderr.WriteLineAsync($"error: {error.Message}").ConfigureAwait(false);
            }

            await stderr.WriteLineAsync("Run 'securefed --help' (or add --help to the sub-command) for usage.").ConfigureAwait(false);
            return ExitUsage;
        }

        var config = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
        };

        try
        {
            return await parse.InvokeAsync(config, cancellationToken).ConfigureAwait(false);
        }
        catch (UsageException ex)
        {
            await stderr.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitUsage;
        }
        catch (OperationCanceledException)
        {
            await stderr.WriteLineAsync("cancelled").ConfigureAwait(false);
            return ExitFailure;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException
                                       or CryptographicException or InvalidOperationException or FormatException)
        {
            await stderr.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitFailure;
        }
        catch (Exception ex) when (ex is System.Data.Common.DbException or TimeoutException)
        {
            // A database the cluster or a benchmark talks to failed (refused the connection, timed out, ...): named with its
            // cause, not a crash with a stack trace.
            string cause = ex.InnerException is null ? "" : $" ({ex.InnerException.Message})";
            await stderr.WriteLineAsync($"error: {ex.Message}{cause}").ConfigureAwait(false);
            return ExitFailure;
        }
    }
}
