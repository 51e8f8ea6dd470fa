using SecureFed.Cli;
using SecureFed.Federation;

namespace SecureFed.Integration.Tests;

/// <summary><c>securefed provision add-site</c>: a hospital admitted after provisioning, and the order to apply it in.</summary>
public sealed class CliProvisionAddSiteTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-add-site-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task AddSite_NewHospital_KitWrittenManifestListsItStepsNamedAgainRefused()
    {
        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-add", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1")).Code);

        var (code, output, err) = await Run("provision", "add-site", "--dir", fed, "--site", "site-c");

        Assert.True(code == CliApp.ExitOk, err);
        Assert.StartsWith($"Added site 'site-c' to federation 'cli-add': kit {Path.Combine(fed, "sites", "site-c")}", output, StringComparison.Ordinal);
        Assert.Contains("3 sites (site-a, site-b, site-c)", output, StringComparison.Ordinal);
        Assert.Contains("an agent with the old manifest declines every round that includes 'site-c'", output, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(fed, "aggregator", "federation.json"), output, StringComparison.Ordinal);
        using (PartyKit kit = PartyKit.Load(Path.Combine(fed, "sites", "site-c")))
        {
            Assert.Equal("site-c", kit.Name);
        }

        byte[] manifest = File.ReadAllBytes(Path.Combine(fed, "federation.json"));
        (code, _, err) = await Run("provision", "add-site", "--dir", fed, "--site", "site-c");
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.StartsWith("error: --site: Federation 'cli-add' already has a site named 'site-c'", err, StringComparison.Ordinal);

        (code, _, err) = await Run("provision", "add-site", "--dir", Path.Combine(fed, "sites"), "--site", "site-d");
        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("is not a federation folder written by 'securefed provision'", err, StringComparison.Ordinal);
        Assert.Equal(manifest, File.ReadAllBytes(Path.Combine(fed, "federation.json")));
    }

    [Fact]
    public async Task AddSite_StepOne_SaysTheNewSitesAgentIsRefusedUntilTheAggregatorRestarts()
    {
        // Step 1 handed the kit over with nothing about when to start it: an agent started before step 3 is refused by the
        // aggregator ('unknown site') and stops with exit code 1 (checked with a real aggregator and agent).
        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-add", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1")).Code);

        var (code, output, err) = await Run("provision", "add-site", "--dir", fed, "--site", "site-c");

        Assert.True(code == CliApp.ExitOk, err);
        string step1 = output.Split('\n').Single(l => l.TrimStart().StartsWith("1. ", StringComparison.Ordinal));
        Assert.Contains("start its agent only after step 3", step1, StringComparison.Ordinal);
        Assert.Contains("refuses 'site-c' as an unknown site", step1, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddSite_FolderFlushFailsAfterTheManifestIsRenamed_StepsPrintedKitKeptFailureNamesTheFolder()
    {
        // add-site said "federation.json is unchanged" and deleted the new kit, while federation.json already listed the site.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-add", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1")).Code);
        string folder = Path.GetDirectoryName(AtomicFile.FinalTarget(Path.Combine(fed, "federation.json")))!;
        int code;
        string output;
        string err;
        AtomicFile.DirectoryFsyncFault = directory => directory == folder ? 5 /* EIO */ : 0;
        try
        {
            (code, output, err) = await Run("provision", "add-site", "--dir", fed, "--site", "site-c");
        }
        finally
        {
            AtomicFile.DirectoryFsyncFault = null;
        }

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.StartsWith("Added site 'site-c' to federation 'cli-add'", output, StringComparison.Ordinal);
        Assert.Contains("Next, in this order:", output, StringComparison.Ordinal);
        Assert.StartsWith($"error: Site 'site-c' was added (federation.json lists it, its kit is in '{Path.Combine(fed, "sites", "site-c")}')", err, StringComparison.Ordinal);
        Assert.Contains($"flushing its directory '{folder}' failed (", err, StringComparison.Ordinal);
        Assert.DoesNotContain("unchanged", err, StringComparison.Ordinal);
        Assert.True(FederationManifest.Load(Path.Combine(fed, "federation.json")).TryGetSite("site-c", out _));
        using PartyKit kit = PartyKit.Load(Path.Combine(fed, "sites", "site-c"));
        Assert.Equal("site-c", kit.Name);
    }

    [Fact]
    public async Task ProvisionRevoke_FolderFlushFailsAfterTheManifestIsRenamed_RevocationReportedFailureNamesTheFolder()
    {
        // revoke printed only "error: The new content of a file in '<folder>' is in place, but flushing ...": not which file,
        // not that the site was revoked, nor the next step.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-rev", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1")).Code);
        string manifestPath = Path.Combine(fed, "federation.json");
        string folder = Path.GetDirectoryName(AtomicFile.FinalTarget(manifestPath))!;
        int code;
        string output;
        string err;
        AtomicFile.DirectoryFsyncFault = directory => directory == folder ? 5 /* EIO */ : 0;
        try
        {
            (code, output, err) = await Run("provision", "revoke", "--manifest", manifestPath, "--site", "site-a");
        }
        finally
        {
            AtomicFile.DirectoryFsyncFault = null;
        }

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("Revoked site 'site-a' in federation 'cli-rev'", output, StringComparison.Ordinal);
        Assert.Contains("Next: copy this manifest over the aggregator's kit copy", output, StringComparison.Ordinal);
        Assert.StartsWith($"error: Site 'site-a' is revoked in {manifestPath}: '{AtomicFile.FinalTarget(manifestPath)}' was written, but flushing its directory '{folder}' failed (", err, StringComparison.Ordinal);
        Assert.True(FederationManifest.Load(manifestPath).IsRevoked("site-a"));
    }

    [Fact]
    public async Task ProvisionRevoke_InASitesKitCopy_SaysSoAndNamesTheFederationsManifestNotAPathThatDoesNotExist()
    {
        // It said "Next: copy this manifest over the aggregator's kit copy (fed/sites/site-a/aggregator/federation.json here ...)":
        // a folder that does not exist, and a site's kit copy is not the manifest the aggregator's copy comes from.
        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-rev", "--sites", "site-a,site-b,site-c", "--aggregator-host", "127.0.0.1")).Code);
        string siteCopy = Path.Combine(fed, "sites", "site-a", "federation.json");

        var (code, output, err) = await Run("provision", "revoke", "--manifest", siteCopy, "--site", "site-b");

        Assert.True(code == CliApp.ExitOk, err);
        Assert.DoesNotContain(Path.Combine(fed, "sites", "site-a", "aggregator"), output, StringComparison.Ordinal);
        Assert.Contains("This is site 'site-a''s kit copy", output, StringComparison.Ordinal);
        Assert.Contains($"Revoke 'site-b' in the federation's own manifest ({Path.Combine(fed, "federation.json")})", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProvisionRevoke_WhileAnotherCommandHoldsTheManifest_WaitsForItAndBothChangesLand()
    {
        // Without a lock revoke read and rewrote the manifest while another command (here: one that revokes site-b) had
        // read it and was about to write it: the later write dropped the earlier revocation.
        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-lock", "--sites", "site-a,site-b,site-c", "--aggregator-host", "127.0.0.1")).Code);
        string manifestPath = Path.Combine(fed, "federation.json");
        Task<(int Code, string Out, string Err)> revoke;
        using (ManifestLock.Acquire(manifestPath, "provision revoke --site site-b"))
        {
            FederationManifest read = FederationManifest.Load(manifestPath);
            revoke = Task.Run(() => Run("provision", "revoke", "--manifest", manifestPath, "--site", "site-a"));
            await Task.Delay(TimeSpan.FromSeconds(1));
            bool waited = !revoke.IsCompleted;
            read.WithRevoked("site-b").Save(manifestPath);
            Assert.True(waited, "revoke did not wait for the manifest's lock");
        }

        var (code, output, err) = await revoke.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(code == CliApp.ExitOk, err);
        Assert.Contains("Revoked sites now: site-a, site-b.", output, StringComparison.Ordinal);
        Assert.Equal(["site-a", "site-b"], FederationManifest.Load(manifestPath).Revoked);
    }

    [Fact]
    public async Task ProvisionRevoke_AnotherProcessHoldsTheManifestLongerThanTheWait_RefusedNamingTheLockAndTheCommandManifestUnchanged()
    {
        // A separate securefed process: the lock is the operating system's, across processes.
        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-lock", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1")).Code);
        string manifestPath = Path.Combine(fed, "federation.json");
        byte[] before = File.ReadAllBytes(manifestPath);
        int code;
        string output;
        using (ManifestLock.Acquire(manifestPath, "provision add-site --site site-c"))
        {
            using CliProcess revoke = CliProcess.Start("provision", "revoke", "--manifest", manifestPath, "--site", "site-a");
            code = await revoke.WaitForExitAsync(TimeSpan.FromMinutes(1));
            output = revoke.Output;
        }

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains($"its lock file {manifestPath}.lock was held for all of 10 s", output, StringComparison.Ordinal);
        Assert.Contains($"'provision add-site --site site-c' (process {Environment.ProcessId}", output, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", output, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(manifestPath));
    }

    [Fact]
    public async Task LockWaitSeconds_WhileTheLockIsHeld_RevokeAndAddSiteWaitThatLongNamingTheLockAndNothingChanges()
    {
        // The wait was fixed at 10 s: an operator whose other command takes longer had no way to wait for it.
        string fed = Path.Combine(_dir, "fed");
        Assert.Equal(CliApp.ExitOk, (await Run("provision", "--out", fed, "--federation", "cli-lock", "--sites", "site-a,site-b", "--aggregator-host", "127.0.0.1")).Code);
        string manifestPath = Path.Combine(fed, "federation.json");
        byte[] before = File.ReadAllBytes(manifestPath);
        (int Code, string Out, string Err) revoke;
        (int Code, string Out, string Err) addSite;
        using (ManifestLock.Acquire(manifestPath, "provision add-site --site site-c"))
        {
            revoke = await Run("provision", "revoke", "--manifest", manifestPath, "--site", "site-a", "--lock-wait-seconds", "0");
            addSite = await Run("provision", "add-site", "--dir", fed, "--site", "site-d", "--lock-wait-seconds", "0");
        }

        foreach ((int code, _, string err) in new[] { revoke, addSite })
        {
            Assert.Equal(CliApp.ExitFailure, code);
            Assert.Contains($"its lock file {manifestPath}.lock was held for all of 0 s", err, StringComparison.Ordinal);
            Assert.Contains("'provision add-site --site site-c'", err, StringComparison.Ordinal);
        }

        Assert.Equal(before, File.ReadAllBytes(manifestPath));
        Assert.False(Directory.Exists(Path.Combine(fed, "sites", "site-d")));

        var (badCode, _, badErr) = await Run("provision", "revoke", "--manifest", manifestPath, "--site", "site-a", "--lock-wait-seconds", "3601");
        Assert.Equal(CliApp.ExitUsage, badCode);
        Assert.StartsWith("error: --lock-wait-seconds must be between 0 and 3600 (got 3601).", badErr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(manifestPath));
    }
}
