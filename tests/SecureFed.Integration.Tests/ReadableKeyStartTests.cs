using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SecureFed.Agent;
using SecureFed.Cli;
using SecureFed.Cli.Commands;
using SecureFed.Federation;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A site whose kit is mounted from a Kubernetes Secret (mode 0644, root's) or a Docker secret (0444) could not start: the
/// key is refused with no opt-out. With SecureFed:AcceptReadableKeys=true the agent starts and logs a warning naming the
/// key, its mode and owner each time; without it the refusal stands, and a key others may write is refused either way.
/// </summary>
public sealed class ReadableKeyStartTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-readable-key-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task AgentBuild_IdentityKeyMode0644_RefusedWithoutTheOptOutAndLoadedWithAWarningWithIt()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // FileOwner.IsSupported
        }

        string agentJson = await Provision();
        string key = Path.Combine(_dir, "fed", "sites", "site-a", KitFiles.IdentityKey);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var spec = new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]);

        var refused = Assert.Throws<InvalidDataException>(() => AgentHost.Build(ServiceCommands.Load(new FileInfo(agentJson), []), spec, new FakeTrainer("site-a", 10, 10)));
        Assert.StartsWith($"Identity key '{key}' has mode 0644: every user of this machine may read this private key, so it is not used.", refused.Message, StringComparison.Ordinal);

        var logs = new CapturingLogger();
        IConfiguration accepting = ServiceCommands.Load(new FileInfo(agentJson), ["--SecureFed:AcceptReadableKeys=true"]);
        using (IHost host = AgentHost.Build(accepting, spec, new FakeTrainer("site-a", 10, 10), logging => logging.AddProvider(logs)))
        {
            host.Services.GetRequiredService<AgentState>().Dispose();
        }

        string owner = FileOwner.Describe(FileOwner.UserIdOf(key));
        (LogLevel level, string message) = Assert.Single(logs.Lines, l => l.Message.Contains(key, StringComparison.Ordinal));
        Assert.Equal(LogLevel.Warning, level);
        Assert.StartsWith($"Identity key '{key}' has mode 0644 and belongs to {owner}: other users than its owner may read this private key, and it is used only because SecureFed:AcceptReadableKeys is true. Whoever can read it can act as site-a", message, StringComparison.Ordinal);

        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        var writable = Assert.Throws<InvalidDataException>(() => AgentHost.Build(ServiceCommands.Load(new FileInfo(agentJson), ["--SecureFed:AcceptReadableKeys=true"]), spec, new FakeTrainer("site-a", 10, 10)));
        Assert.StartsWith($"Identity key '{key}' has mode 0646: ", writable.Message, StringComparison.Ordinal);
        Assert.Contains("AcceptReadableKeys does not cover this", writable.Message, StringComparison.Ordinal);
    }

    private async Task<string> Provision()
    {
        string kits = Path.Combine(_dir, "fed");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int provisioned = await CliApp.RunAsync(["provision", "--out", kits, "--federation", "readable", "--sites", "site-a", "--aggregator-host", "127.0.0.1"], stdout, stderr, CancellationToken.None);
        Assert.True(provisioned == CliApp.ExitOk, stderr.ToString());
        return Path.Combine(kits, "sites", "site-a", "agent.json");
    }
}
