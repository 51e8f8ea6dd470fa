using SecureFed.Aggregator.Persistence;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// <c>securefed aggregator exclusions</c>: an operator lists the sites a stopped aggregator found at fault and clears one;
/// a site the store does not keep is a usage error naming the ones it does.
/// </summary>
public sealed class AggregatorExclusionsCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-exclusions-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string StorePath => Path.Combine(_dir, "aggregator.db");

    /// <summary>Writes <paramref name="rows"/> to the store in <c>_dir</c>, which is then closed (a stopped aggregator's).</summary>
    private void SaveRows(params SiteExclusionRecord[] rows)
    {
        using AggregatorStore store = AggregatorStore.Open(StorePath);
        store.SaveExclusions(rows);
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Cli(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Exclusions_ListThenClear_TheSiteIsGoneAndTheOthersStay()
    {
        SaveRows(new SiteExclusionRecord("site-x", 6, 2, 9), new SiteExclusionRecord("site-b", 0, 1, 2));

        (int code, string listed, string stderr) = await Cli("aggregator", "exclusions", "--data-dir", _dir);
        Assert.True(code == 0, stderr);
        string[] lines = listed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("site", lines[0], StringComparison.Ordinal);
        Assert.Equal(["site-b", "0", "1", "2"], lines[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["site-x", "6", "2", "9"], lines[2].Split(' ', StringSplitOptions.RemoveEmptyEntries));

        (code, string cleared, stderr) = await Cli("aggregator", "exclusions", "--data-dir", _dir, "--clear", "site-x");
        Assert.True(code == 0, stderr);
        Assert.Contains("cleared site-x: it had 6 attempts left to sit out and 2 blames (the last in round 9)", cleared, StringComparison.Ordinal);

        (code, string after, _) = await Cli("aggregator", "exclusions", "--data-dir", _dir);
        Assert.Equal(0, code);
        Assert.DoesNotContain("site-x", after, StringComparison.Ordinal);
        Assert.Contains("site-b", after, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("site-q", "no exclusion of site 'site-q' (it keeps: site-x)")]
    [InlineData(" ", "--clear needs a site name")]
    public async Task Exclusions_ClearASiteWithoutARowOrABlankName_UsageErrorAndNothingChanged(string site, string named)
    {
        SaveRows(new SiteExclusionRecord("site-x", 3, 1, 4));

        (int code, _, string stderr) = await Cli("aggregator", "exclusions", "--data-dir", _dir, "--clear", site);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains(named, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("(Parameter", stderr, StringComparison.Ordinal); // .NET's own wording (auditor/operator review, session 49)
        Assert.Equal([new SiteExclusionRecord("site-x", 3, 1, 4)], AggregatorStore.ReadExclusions(StorePath));
    }

    [Theory]
    [InlineData("exclusions")]
    [InlineData("compact")]
    public async Task ExclusionsAndCompact_DataDirIsAFile_UsageErrorSayingSo(string command)
    {
        // Given the database file itself, they said '<file>/aggregator.db does not exist' (new-user review, session 50).
        SaveRows(new SiteExclusionRecord("site-x", 3, 1, 4));
        byte[] store = File.ReadAllBytes(StorePath);

        (int code, _, string stderr) = await Cli("aggregator", command, "--data-dir", StorePath);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.StartsWith($"error: --data-dir {StorePath} is a file; give the aggregator's data folder", stderr, StringComparison.Ordinal);
        Assert.Equal(store, File.ReadAllBytes(StorePath));
    }

    [Fact]
    public async Task Exclusions_NoStore_FailsNamingTheFile()
    {
        (int code, _, string stderr) = await Cli("aggregator", "exclusions", "--data-dir", Path.Combine(_dir, "none"));

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("aggregator.db", stderr, StringComparison.Ordinal);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_dir, "none")));
    }
}
