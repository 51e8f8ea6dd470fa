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
}
