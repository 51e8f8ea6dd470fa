using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// What an operator starting <c>securefed aggregator</c> sees when the start cannot work (found by a new-user probe):
/// an address that is not this machine's crashed the process (unhandled <c>SocketException</c>, exit 134); settings that
/// allow no round printed the right line after two stack traces, with the listener already open; arguments that are not
/// settings (<c>--rounds 5</c>, a stray word) were dropped silently; a host name printed 127.0.0.1 while the port was open
/// on every interface. Each is now one line naming the cause, or the truth.
/// </summary>
public sealed class AggregatorStartupTests : IDisposable
{
    private static readonly TimeSpan Hang = TimeSpan.FromMinutes(2);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-aggregator-startup-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("--rounds", "5")]
    [InlineData("--Rounds=0")]
    [InlineData("--confg", "x.json")]
    public async Task Aggregator_ArgumentThatIsNotASetting_UsageErrorNamingIt(params string[] extra)
    {
        string config = await ProvisionAsync();

        var (code, _, err) = await RunAsync(["aggregator", "--config", config, .. extra]);

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.StartsWith($"error: unknown argument '{extra[0]}': settings are given as --SecureFed:Name=value", err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(Path.GetDirectoryName(config)!, "data")), "nothing may be created before the arguments are checked");
    }

    [Fact]
    public async Task AgentAndAggregator_StrayWordOrAFolderAsConfig_UsageErrorSayingSo()
    {
        string config = await ProvisionAsync();

        var (code, _, err) = await RunAsync(["agent", "--config", Path.Combine(_dir, "fed", "sites", "site-a", "agent.json"), "foo"]);
        Assert.True(code == CliApp.ExitUsage, err);
        Assert.StartsWith("error: unexpected argument 'foo': after --config FILE only settings may follow", err, StringComparison.Ordinal);

        (code, _, err) = await RunAsync(["aggregator", "--config", Path.GetDirectoryName(config)!]);
        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains("is a folder; give the JSON file in it", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Overrides_SettingsInEveryFormTheConfigurationReads_Accepted()
    {
        Cli.Commands.ServiceCommands.EnsureOverridesAreSettings(["--SecureFed:Rounds=5", "--SecureFed:MinSites", "3", "/SecureFed:Delta=1e-6", "SecureFed:Graph=sparse", "--Logging:LogLevel:Default=Debug"]);

        var missing = Assert.Throws<UsageException>(() => Cli.Commands.ServiceCommands.EnsureOverridesAreSettings(["--SecureFed:Rounds"]));
        Assert.StartsWith("argument '--SecureFed:Rounds' has no value", missing.Message, StringComparison.Ordinal);
        var section = Assert.Throws<UsageException>(() => Cli.Commands.ServiceCommands.EnsureOverridesAreSettings(["--SecureFed=1"]));
        Assert.StartsWith("argument '--SecureFed=1' names no setting", section.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_ListenOnAnAddressNotOfThisMachine_OneLineNamingTheSetting()
    {
        // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address.
        string config = await ProvisionAsync();

        using CliProcess aggregator = CliProcess.Start("aggregator", "--config", config, "--SecureFed:Listen=https://192.0.2.1:7443");
        int code = await aggregator.WaitForExitAsync(Hang);

        Assert.True(code == CliApp.ExitFailure, $"exit code {code}:\n{aggregator.Output}");
        Assert.Contains("error: the aggregator cannot listen on SecureFed:Listen https://192.0.2.1:7443: ", aggregator.Output, StringComparison.Ordinal);
        Assert.Contains("Give an address of this machine", aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", aggregator.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_DpSgdPlanEveryAgentDeclines_UsageErrorNamingTheSettings()
    {
        // Before, it started and every agent declined every round ("the DP-SGD plan is implausible").
        string config = await ProvisionAsync();

        var (code, _, err) = await RunAsync(["aggregator", "--config", config, "--SecureFed:DpSgdSampleRate=1e-7"]);

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.StartsWith("error: invalid configuration:\n  SecureFed:DpSgdSampleRate 1E-07 with SecureFed:LocalEpochs 7 and SecureFed:DpSgdMaxSteps 20 is a DP-SGD plan every agent declines: sample rate q = 1E-07 plans 10,000,000 DP-SGD steps per round",
            err.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(Path.GetDirectoryName(config)!, "data")), "nothing may be created before the settings are checked");
    }

    [Theory]
    [InlineData("Listen", "https")]
    [InlineData("AdminListen", "http")]
    public async Task Aggregator_AddressInUse_OneLineNamingTheSettingTheAddressAndTheFix(string setting, string scheme)
    {
        // Another process holds the address: before, only Kestrel's "Failed to bind to address …: address already in use."
        string config = await ProvisionAsync();
        int port = SecureFed.Cluster.Bench.LoopbackPorts.Next();
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
        taken.Start();
        int other = SecureFed.Cluster.Bench.LoopbackPorts.Next(); // the aggregator's other listener
        string listen = $"https://127.0.0.1:{(setting == "Listen" ? port : other)}";
        string admin = $"http://127.0.0.1:{(setting == "AdminListen" ? port : other)}";

        using CliProcess aggregator = CliProcess.Start("aggregator", "--config", config, $"--SecureFed:Listen={listen}", $"--SecureFed:AdminListen={admin}");
        int code = await aggregator.WaitForExitAsync(Hang);

        Assert.True(code == CliApp.ExitFailure, $"exit code {code}:\n{aggregator.Output}");
        int suggested = port + 1 == other ? port + 2 : port + 1;
        Assert.Contains(
            $"error: the aggregator cannot listen on {scheme}://127.0.0.1:{port} (SecureFed:{setting}): the address is already in use by another process. " +
            $"Stop that process, or set SecureFed:{setting} to a free address, e.g. --SecureFed:{setting}={scheme}://127.0.0.1:{suggested}.",
            aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", aggregator.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_ClipThatLeavesNoRound_OneLineBeforeTheListenerOpens()
    {
        string config = await ProvisionAsync();
        int port = SecureFed.Cluster.Bench.LoopbackPorts.Next();

        using CliProcess aggregator = CliProcess.Start("aggregator", "--config", config, $"--SecureFed:Listen=https://127.0.0.1:{port}", "--SecureFed:L2Clip=1e308");
        int code = await aggregator.WaitForExitAsync(Hang);

        Assert.True(code == CliApp.ExitFailure, $"exit code {code}:\n{aggregator.Output}");
        Assert.Contains("error: SecureFed:L2Clip 1E+308 with SecureFed:SiteNoiseMultiplier", aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("listening", aggregator.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aggregator_ListenOnAHostName_SaysItListensOnEveryInterface()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        string config = await ProvisionAsync();
        int port = SecureFed.Cluster.Bench.LoopbackPorts.Next();
        using CliProcess aggregator = CliProcess.Start("aggregator", "--config", config, $"--SecureFed:Listen=https://aggregator.invalid:{port}");

        await aggregator.WaitForOutputAsync("aggregator listening on", Hang);

        Assert.Contains($"aggregator listening on every interface of this machine, port {port} (SecureFed:Listen names the host 'aggregator.invalid', not an address", aggregator.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on https://127.0.0.1", aggregator.Output, StringComparison.Ordinal);
        await aggregator.InterruptAsync(Hang);
    }

    private async Task<string> ProvisionAsync()
    {
        string kits = Path.Combine(_dir, "fed");
        var (code, _, err) = await RunAsync(["provision", "--out", kits, "--federation", "startup", "--sites", "site-a,site-b,site-c", "--aggregator-host", "127.0.0.1"]);
        Assert.True(code == CliApp.ExitOk, err);
        return Path.Combine(kits, "aggregator", "aggregator.json");
    }

    private static async Task<(int Code, string Output, string Err)> RunAsync(string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(Hang);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
