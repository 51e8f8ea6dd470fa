using SecureFed.Cli;
using SecureFed.Cli.Demo;
using SecureFed.Federation;
using SecureFed.Privacy;

using Spectre.Console;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Defects found by the compliance-auditor and aggregator-operator review: revoking a site in the aggregator's kit copy
/// (or with a kit copy that revokes more than the federation's manifest), a privacy ledger path that names no file, and
/// the commands the demo prints for pasting, which were broken across lines at the console's width.
/// </summary>
public sealed class CliAuditorOperatorReviewTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-review-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Out, string Err)> Run(params string[] args) => CliRun.RunAsync(args);

    private string Provision()
    {
        string fed = Path.Combine(_dir, "fed");
        FederationProvisioner.Provision(new ProvisionRequest(fed, "review", ["site-a", "site-b", "site-c"], "127.0.0.1"));
        return fed;
    }

    [Fact]
    public async Task ProvisionRevoke_InTheAggregatorsKitCopy_SaysSoAndNamesTheFederationsManifestToRevokeIn()
    {
        // It said "Next: copy this manifest over the aggregator's kit copy (aggregator/federation.json)", i.e. over itself,
        // and nothing about the federation's manifest, whose next copy re-admits the site.
        string fed = Provision();
        string kitCopy = Path.Combine(fed, KitFiles.AggregatorDirectory, KitFiles.Manifest);

        var (code, output, _) = await Run("provision", "revoke", "--manifest", kitCopy, "--site", "site-b");

        Assert.Equal(CliApp.ExitOk, code);
        Assert.Contains("This is the aggregator's kit copy", output, StringComparison.Ordinal);
        Assert.Contains($"Revoke 'site-b' in the federation's own manifest too ({Path.Combine(fed, KitFiles.Manifest)})", output, StringComparison.Ordinal);
        Assert.DoesNotContain("Next: copy this manifest over", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProvisionRevoke_KitCopyRevokesASiteTheManifestDoesNot_WarnsThatCopyingWouldAdmitItAgain()
    {
        string fed = Provision();
        string manifest = Path.Combine(fed, KitFiles.Manifest);
        string kitCopy = Path.Combine(fed, KitFiles.AggregatorDirectory, KitFiles.Manifest);
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "revoke", "--manifest", kitCopy, "--site", "site-b")).Code);

        var (code, output, err) = await Run("provision", "revoke", "--manifest", manifest, "--site", "site-c");

        Assert.Equal(CliApp.ExitOk, code);
        Assert.Contains($"Next: copy this manifest over the aggregator's kit copy ({kitCopy} here", output, StringComparison.Ordinal);
        Assert.StartsWith($"warning: the aggregator's kit copy {kitCopy} also revokes site-b, which {manifest} does not", err, StringComparison.Ordinal);
        Assert.Contains($"securefed provision revoke --manifest {manifest} --site site-b", err, StringComparison.Ordinal);
        Assert.Equal(["site-b"], FederationManifest.Load(kitCopy).Revoked); // warned, never changed
    }

    /// <summary>Two sites revoked in the kit copy only: the warning's command revokes both (it named only the first; review of c426943).</summary>
    [Fact]
    public async Task ProvisionRevoke_KitCopyRevokesTwoSitesTheManifestDoesNot_TheCommandRevokesBoth()
    {
        string fed = Provision();
        string manifest = Path.Combine(fed, KitFiles.Manifest);
        string kitCopy = Path.Combine(fed, KitFiles.AggregatorDirectory, KitFiles.Manifest);
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "revoke", "--manifest", kitCopy, "--site", "site-a")).Code);
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "revoke", "--manifest", kitCopy, "--site", "site-b")).Code);

        var (code, _, err) = await Run("provision", "revoke", "--manifest", manifest, "--site", "site-c");

        Assert.Equal(CliApp.ExitOk, code);
        Assert.Contains("also revokes site-a, site-b, which", err, StringComparison.Ordinal);
        Assert.Contains($"securefed provision revoke --manifest {manifest} --site site-a && securefed provision revoke --manifest {manifest} --site site-b", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProvisionRevoke_ManifestAndKitCopyAgree_NoWarning()
    {
        string fed = Provision();

        var (code, _, err) = await Run("provision", "revoke", "--manifest", Path.Combine(fed, KitFiles.Manifest), "--site", "site-c");

        Assert.Equal(CliApp.ExitOk, code);
        Assert.Equal(string.Empty, err);
    }

    [Fact]
    public async Task PrivacyLedgerShow_NoSuchFileOrAFolder_UsageErrorLikeEveryOtherInputPath()
    {
        // Both exited 1, as for a damaged ledger, where 'audit verify', --manifest, --key and --previous exit 2.
        string missing = Path.Combine(_dir, "privacy-ledger.jsonl");

        var (code, _, err) = await Run("privacy", "ledger", "show", missing);
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Equal($"error: privacy ledger {missing} does not exist.", err.Split('\n')[0].TrimEnd('\r'));

        (code, _, err) = await Run("privacy", "ledger", "show", _dir);
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.StartsWith($"error: privacy ledger {_dir} is a folder; give the ledger file itself", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrivacyLedgerShow_ADamagedLedger_StillAFailure()
    {
        string ledger = Path.Combine(_dir, "privacy-ledger.jsonl");
        File.WriteAllText(ledger, "garbage\n");

        var (code, _, err) = await Run("privacy", "ledger", "show", ledger);

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("is corrupt at line 1", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrivacyLedgerShow_LedgerCutAfterAWholeLine_SaysWhatItsHashChainCannotShow()
    {
        // A ledger cut after its last whole line still verifies; the output said only "hash chain and replayed epsilons
        // verified", which an auditor reads as "complete".
        string path = Path.Combine(_dir, "privacy-ledger.jsonl");
        PrivacyLedger ledger = PrivacyLedger.Open(path, "site-a");
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.3, 1.5, 20), 1e-5);
        ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.3, 1.5, 20), 1e-5);
        string[] lines = File.ReadAllLines(path);
        File.WriteAllLines(path, lines[..^1]);

        var (code, output, _) = await Run("privacy", "ledger", "show", path);

        Assert.Equal(CliApp.ExitOk, code);
        Assert.Contains("1 entries; hash chain and replayed epsilons verified.", output, StringComparison.Ordinal);
        Assert.Contains("A hash chain cannot show entries cut from its end or an older copy put back", output, StringComparison.Ordinal);
        Assert.Contains("'securefed audit report'", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("aggregator")]
    [InlineData("agent")]
    public async Task ServiceHelp_SaysHowSettingsFollowConfig(string service)
    {
        // The help named them only "Arguments passed to the application that is being run", yet the start-up errors
        // say "start once with --SecureFed:RepairTornAuditTail=true".
        var (code, output, _) = await Run(service, "--help");

        Assert.Equal(CliApp.ExitOk, code);
        Assert.Contains("--SecureFed:Name=value", output, StringComparison.Ordinal);
        Assert.Contains("--SecureFed:RepairTornAuditTail=true", output, StringComparison.Ordinal);
    }

    [Fact]
    public void WriteCommand_ConsoleNarrowerThanTheCommand_CommandStaysOnOneLine()
    {
        using var stdout = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(stdout), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors });
        console.Profile.Width = 40;
        string command = "curl -H \"Authorization: Bearer $(cat '/tmp/my demo/federation/operator/operator.token')\" http://127.0.0.1:9464/metrics";

        console.MarkupLine("Operator console: a line long enough to be wrapped at forty columns");
        DemoRunner.WriteCommand(console, command);

        string[] lines = stdout.ToString().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.True(lines.Length > 3, "the markup line above is wrapped at the console's width");
        Assert.Contains("  " + command, lines);
    }
}
