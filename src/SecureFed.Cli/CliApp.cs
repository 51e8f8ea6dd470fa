using System.CommandLine;
using System.CommandLine.Parsing;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SecureFed.Cli.Commands;
using SecureFed.Tagger;

namespace SecureFed.Cli;

/// <summary>
/// Builds the <c>securefed</c> command tree and runs it with SecureFed's exit-code contract:
/// 0 success, 1 a failed check or operation, 2 a usage error (unknown command, bad option, invalid value, a malformed
/// data file the user named: <see cref="InputDataException"/>), 130 stopped by
/// Ctrl-C (SIGINT) and 143 by SIGTERM (128 + the signal's number, as a shell reports a process a signal ended).
/// </summary>
internal static partial class CliApp
{
    public const int ExitOk = 0;
    public const int ExitFailure = 1;
    public const int ExitUsage = 2;
    public const int ExitCancelled = 130;
    public const int ExitTerminated = 143;

    /// <summary>The signal that stopped this process's command (SIGINT or SIGTERM), or null (none, or not run as a process).</summary>
    internal static PosixSignal? StopSignal { get; private set; }

    /// <summary>How a stopped command names what stopped it: "SIGTERM" after SIGTERM, otherwise "Ctrl-C".</summary>
    internal static string StopSignalName => StopSignal == PosixSignal.SIGTERM ? "SIGTERM" : "Ctrl-C";

    /// <summary>
    /// The process's entry: runs the command with Ctrl-C (SIGINT) and SIGTERM turned into cancellation of its token.
    /// The process does not end until the command has returned: a command stopping a training thread waits for it to
    /// leave native code (libtorch) instead of the process exiting under it (System.CommandLine's own handling would
    /// return after <see cref="InvocationConfiguration.ProcessTerminationTimeout"/>, 2 s by default, and end the process
    /// while the thread still runs). A second Ctrl-C while the command stops ends the process at once.
    /// </summary>
    public static async Task<int> RunProcessAsync(string[] args)
    {
        // Neither is disposed: .NET runs a signal's handler on a thread of its own, with no wait against the registration's
        // disposal, so a signal that arrives as the command returns may still run OnSignal afterwards (a disposed source's
        // Cancel throws, on that thread: a crash).
        var stop = new CancellationTokenSource();
        var stoppingSaid = new ManualResetEventSlim(); // its writer or a second signal may outlive the command too
        int signal = 0;
        long firstAt = 0;
        void OnSignal(PosixSignalContext context)
        {
            long now = System.Diagnostics.Stopwatch.GetTimestamp();
            if (Interlocked.CompareExchange(ref signal, (int)context.Signal, 0) == 0)
            {
                Volatile.Write(ref firstAt, now);
                context.Cancel = true; // the command stops itself; the process ends when it has
                StopSignal = context.Signal;
                // Said at once (a command between two cancellation checks, a long native step or a benchmark, may take a
                // while), before the cancellation's callbacks run, on a thread of its own: a write to a full pipe blocks, and
                // nothing that could block runs on the signal's thread. Not on the thread pool: the command's work may hold
                // all of it.
                PosixSignal received = context.Signal;
                new Thread(() => SayStopping(received, stoppingSaid)) { IsBackground = true, Name = "securefed stopping" }.Start();
                stop.Cancel();
                return;
            }

            // The same signal again within SignalBurst of the first is the same request: GNU timeout (`timeout -s INT`,
            // and its default TERM) signals the process and then its whole process group, so the process gets it twice at
            // once; taken as a second Ctrl-C it ended every such run at once, without the clean stop (an agent left its
            // last audit lines unsigned). Each signal's handler runs on a thread of its own, which a process busy in
            // libtorch may start late: hence a window of half a second, in which an operator who wants out at once has
            // not yet read the stopping line (a press after it exits at once).
            long first = Volatile.Read(ref firstAt);
            if ((int)context.Signal == Volatile.Read(ref signal) && (first == 0 || System.Diagnostics.Stopwatch.GetElapsedTime(first, now) < SignalBurst))
            {
                context.Cancel = true;
                return;
            }

            // A second signal: the operator does not want to wait (a hosted service's own handler would swallow it). The
            // first's line is waited for, briefly, so the operator learns why the process ended.
            stoppingSaid.Wait(TimeSpan.FromSeconds(1));
            ExitNow(context.Signal == PosixSignal.SIGTERM ? ExitTerminated : ExitCancelled);
        }

        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        int code = await RunAsync(args, Console.Out, Console.Error, stop.Token).ConfigureAwait(false);
        return code == ExitCancelled && signal == (int)PosixSignal.SIGTERM ? ExitTerminated : code;
    }

    /// <summary>How close together two identical signals count as one (GNU timeout's process-and-group signal), not as a second Ctrl-C.</summary>
    internal static readonly TimeSpan SignalBurst = TimeSpan.FromMilliseconds(500);

    private static void SayStopping(PosixSignal received, ManualResetEventSlim said)
    {
        try
        {
            Console.Error.WriteLine($"securefed: stopping ({received}); press Ctrl-C again to exit at once");
        }
        catch (IOException)
        {
            // standard error closed: nothing to tell
        }
        finally
        {
            said.Set();
        }
    }

    /// <summary>
    /// Ends the process at once with <paramref name="code"/>, as a second Ctrl-C asks. On Unix without the runtime's
    /// shutdown: <see cref="Environment.Exit(int)"/> runs the process's exit handlers, libtorch's static destructors among
    /// them, while the command's training thread may still be inside a libtorch call, and the process then died of a
    /// segmentation fault (exit 139, about 1 run in 8 of a double SIGINT during `tagger train`, a crash report naming
    /// both threads) instead of ending with 130. <c>_exit</c> ends it as a kill would: what the command writes is written
    /// atomically or journalled (a stop at any point leaves the earlier state), and standard error is unbuffered.
    /// </summary>
    internal static void ExitNow(int code)
    {
        if (OperatingSystem.IsWindows())
        {
            Environment.Exit(code);
        }

        NativeExit(code);
    }

    [LibraryImport("libc", EntryPoint = "_exit")]
    private static partial void NativeExit(int status);

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

    /// <summary>
    /// The parser's errors, except that a command given without one of its sub-commands (<c>securefed</c>, <c>securefed
    /// audit</c>, or an unknown word in the sub-command's place) is told which sub-commands it takes, after any word that was
    /// not recognised, instead of "Required command was not provided." first.
    /// </summary>
    internal static IEnumerable<string> ParseErrors(ParseResult parse)
    {
        Command command = parse.CommandResult.Command;
        if (command.Subcommands.Count == 0 || command.Action is not null || parse.Errors.Count == 0)
        {
            return parse.Errors.Select(Plain);
        }

        string[] unmatched = [.. parse.UnmatchedTokens];
        string[] others = [.. parse.Errors.Where(e => !ReferenceEquals(e.SymbolResult, parse.CommandResult) || unmatched.Any(t => e.Message.Contains($"'{t}'", StringComparison.Ordinal))).Select(Plain)];
        string path = string.Join(' ', Lineage(parse.CommandResult));
        string list = string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name));
        return [.. others, $"'{path}' needs one of its commands: {list}."];

        static IEnumerable<string> Lineage(CommandResult result)
        {
            var names = new Stack<string>();
            for (SymbolResult? r = result; r is CommandResult c; r = r.Parent)
            {
                names.Push(c.Command is RootCommand ? "securefed" : c.Command.Name);
            }

            return names;
        }
    }

    /// <summary>A floating-point number type, nullable, or an array or list of one (e.g. <c>double[]</c>).</summary>
    private static bool IsNumber(Type type)
    {
        Type element = Element(type);
        return element == typeof(double) || element == typeof(float) || element == typeof(decimal);
    }

    /// <summary>The value type of an option or argument: the element of an array or list, without <c>Nullable</c>.</summary>
    private static Type Element(Type type)
    {
        Type element = type.IsArray ? type.GetElementType()!
            : type.IsGenericType && type.GetGenericArguments() is [Type argument] && typeof(System.Collections.IEnumerable).IsAssignableFrom(type) ? argument
            : type;
        return Nullable.GetUnderlyingType(element) ?? element;
    }

    /// <summary>
    /// A parse error in the user's words: System.CommandLine names the .NET type a value did not parse as
    /// ("as expected type 'System.Int32'"); that is replaced by what the value should look like.
    /// </summary>
    internal static string Plain(ParseError error)
    {
        const string Marker = " as expected type '";
        int at = error.Message.IndexOf(Marker, StringComparison.Ordinal);
        Type? type = error.SymbolResult switch
        {
            ArgumentResult a => a.Argument.ValueType,
            OptionResult o => o.Option.ValueType,
            _ => null,
        };
        return at < 0 || type is null ? error.Message : $"{error.Message[..at]}: expected {Expected(Element(type))}.";
    }

    /// <summary>What a value of <paramref name="type"/> looks like, for <see cref="Plain"/>.</summary>
    private static string Expected(Type type) => type switch
    {
        _ when type == typeof(int) => "a whole number from -2147483648 to 2147483647 (e.g. 10)",
        _ when type == typeof(long) => "a whole number (e.g. 10)",
        _ when type == typeof(double) => "a number, with a decimal point if any (e.g. 0.5 or 1e-5)",
        _ when type == typeof(bool) => "true or false",
        _ => $"a value of type {type.Name}",
    };

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        RootCommand root = BuildRoot();
        ParseResult parse = root.Parse(args);
        string[] errors = [.. ParseErrors(parse), .. DecimalCommaErrors(parse)];
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
            // Signals are handled by RunProcessAsync (the token); never return while the command is still stopping.
            ProcessTerminationTimeout = null,
        };

        try
        {
            return await parse.InvokeAsync(config, cancellationToken).ConfigureAwait(false);
        }
        catch (UsageException ex)
        {
            // Plain: a usage message that quotes a library's ArgumentException keeps no "(Parameter 'x')" naming a C# parameter.
            await stderr.WriteLineAsync($"error: {ExceptionText.Plain(ex)}").ConfigureAwait(false);
            return ExitUsage;
        }
        catch (InputDataException ex)
        {
            // A data file the user named is malformed (file:line: problem), not UTF-8, or missing from the corpus folder the
            // user named: a usage error in every command that reads one, as in the demo. An I/O error reading it (an
            // IOException) and a damaged file of the command's own (a model, a ledger: a plain InvalidDataException) stay 1.
            await stderr.WriteLineAsync($"error: {ex.Message}").ConfigureAwait(false);
            return ExitUsage;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await stderr.WriteLineAsync("cancelled").ConfigureAwait(false);
            return ExitCancelled;
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
