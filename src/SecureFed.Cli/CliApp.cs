using System.CommandLine;
using System.CommandLine.Parsing;
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

    /// <summary>
    /// A number option given with a decimal comma (<c>--epsilon 0,5</c>). The options parse numbers in the invariant
    /// culture, where a comma groups thousands, so <c>0,5</c> would silently become 5; it is refused instead.
    /// </summary>
    internal static IEnumerable<string> DecimalCommaErrors(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        var pending = new Stack<SymbolResult>([parse.RootCommandResult]);
        while (pending.TryPop(out SymbolResult? result))
        {
            if (result is OptionResult option)
            {
                if (IsNumber(option.Option.ValueType))
                {
                    foreach (Token token in option.Tokens.Where(t => t.Value.Contains(',', StringComparison.Ordinal)))
                    {
                        yield return $"{option.Option.Name} {token.Value}: write numbers with a decimal point ({token.Value.Replace(',', '.')}); a comma is not read as one.";
                    }
                }
            }
            else if (result is CommandResult command)
            {
                foreach (SymbolResult child in command.Children)
                {
                    pending.Push(child);
                }
            }
        }
    }

    /// <summary>A floating-point number type, nullable, or an array or list of one (e.g. <c>double[]</c>).</summary>
    private static bool IsNumber(Type type)
    {
        Type element = type.IsArray ? type.GetElementType()!
            : type.IsGenericType && type.GetGenericArguments() is [Type argument] && typeof(System.Collections.IEnumerable).IsAssignableFrom(type) ? argument
            : type;
        element = Nullable.GetUnderlyingType(element) ?? element;
        return element == typeof(double) || element == typeof(float) || element == typeof(decimal);
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        RootCommand root = BuildRoot();
        ParseResult parse = root.Parse(args);
        string[] errors = [.. parse.Errors.Select(e => e.Message), .. DecimalCommaErrors(parse)];
        if (errors.Length > 0)
        {
            foreach (string error in errors)
            {
                await stderr.WriteLineAsync($"error: {error}").ConfigureAwait(false);
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
                                       or CryptographicException or InvalidOperationException or FormatException
                                       or (ArgumentException and not ArgumentNullException))
        {
            await stderr.WriteLineAsync($"error: {ExceptionText.Plain(ex)}").ConfigureAwait(false);
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
