using System.Diagnostics;
using System.Text;

namespace SecureFed.Integration.Tests;

/// <summary>A <c>securefed</c> child process whose output (stdout and stderr) is collected.</summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private CliProcess(Process process) => _process = process;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static CliProcess Start(params string[] args) => StartWithEnvironment(new Dictionary<string, string?>(), args);

    /// <summary>
    /// Starts <c>securefed</c> with <paramref name="environment"/> added to (or replacing in) this process's environment;
    /// a null value removes the variable.
    /// </summary>
    public static CliProcess StartWithEnvironment(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        // Through env --default-signal=INT (coreutils): a test run started in the background by a shell without job
        // control (CI: 'bash -c "… &"') inherits SIGINT ignored, and a process keeps an ignored SIGINT ignored, as nohup
        // relies on; the child gets Ctrl-C's default back, as in a terminal.
        var info = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("--default-signal=INT");
        foreach ((string name, string? value) in environment.OrderBy(e => e.Value is null ? 0 : 1))
        {
            if (value is null)
            {
                info.ArgumentList.Add("-u");
                info.ArgumentList.Add(name);
            }
            else
            {
                info.ArgumentList.Add($"{name}={value}");
            }
        }

        info.ArgumentList.Add("dotnet");
        info.ArgumentList.Add(CliPath());
        foreach (string arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        var cli = new CliProcess(Process.Start(info)!);
        cli._process.OutputDataReceived += (_, e) => cli.Append(e.Data);
        cli._process.ErrorDataReceived += (_, e) => cli.Append(e.Data);
        cli._process.BeginOutputReadLine();
        cli._process.BeginErrorReadLine();
        return cli;
    }

    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        using var hang = new CancellationTokenSource(timeout);
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"the process exited ({_process.ExitCode}) before writing '{text}':\n{Output}");
            }

            await Task.Delay(100, hang.Token);
        }
    }

    /// <summary>Waits for the process to exit by itself and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout, string after = "")
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException ex)
        {
            throw new TimeoutException($"the process did not exit within {timeout}{after}; its output so far:\n{Output}", ex);
        }

        _process.WaitForExit(); // the output is read to its end
        return _process.ExitCode;
    }

    /// <summary>Sends SIGINT (as Ctrl-C does) and returns the exit code.</summary>
    public Task<int> InterruptAsync(TimeSpan timeout) => SignalAsync("INT", timeout);

    /// <summary>Sends SIGTERM (as a service manager or <c>kill</c> does) and returns the exit code.</summary>
    public Task<int> TerminateAsync(TimeSpan timeout) => SignalAsync("TERM", timeout);

    /// <summary>
    /// Sends <paramref name="signal"/> twice from one shell and returns the exit code: 1 s apart (a second Ctrl-C after the stopping line), or
    /// with <paramref name="together"/> at once (as <c>timeout -s INT</c> does, signalling the process and then its group).
    /// </summary>
    public async Task<int> SignalTwiceAsync(string signal, TimeSpan timeout, bool together = false)
    {
        string pid = _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string pause = together ? "" : " sleep 1;";
        using (Process kill = Process.Start("sh", ["-c", $"kill -{signal} {pid};{pause} kill -{signal} {pid}"])!)
        {
            await kill.WaitForExitAsync().WaitAsync(timeout);
        }

        return await WaitForExitAsync(timeout, $" of two SIG{signal}s");
    }

    private async Task<int> SignalAsync(string signal, TimeSpan timeout)
    {
        using (Process kill = Process.Start("kill", ["-" + signal, _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!)
        {
            await kill.WaitForExitAsync().WaitAsync(timeout);
        }

        return await WaitForExitAsync(timeout, $" of SIG{signal}");
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }

    private static string CliPath()
    {
        // tests/SecureFed.Integration.Tests/bin/<Configuration>/net10.0 -> src/SecureFed.Cli/bin/<Configuration>/net10.0
        var bin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        DirectoryInfo root = bin.Parent!.Parent!.Parent!.Parent!.Parent!;
        string path = Path.Combine(root.FullName, "src", "SecureFed.Cli", "bin", bin.Parent!.Name, bin.Name, "securefed.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"the CLI was not built: {path}");
    }
}
