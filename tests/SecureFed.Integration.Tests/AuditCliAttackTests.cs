using System.Text.Json;

using SecureFed.Audit;
using SecureFed.Cli;
using SecureFed.Cli.Commands;
using SecureFed.Crypto;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The auditor's CLI against hostile logs and paths (review aud31): a verdict instead of a raw error, no escape sequence
/// from a log on the terminal, --out refused through a symbolic link into a log folder, report --key per folder.
/// </summary>
public sealed class AuditCliAttackTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-audit-cli-" + Guid.NewGuid().ToString("N"));

    public AuditCliAttackTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task AuditReport_OutThroughALinkToTheLogFolder_RefusedAndTheCheckpointKept()
    {
        string logs = Path.Combine(_dir, "logs");
        Directory.CreateDirectory(logs);
        File.WriteAllText(Path.Combine(logs, "checkpoint.latest"), "signed\n");
        string link = Path.Combine(_dir, "symdir");
        Directory.CreateSymbolicLink(link, logs);

        var (code, _, err) = await Run("audit", "report", logs, "--out", Path.Combine(link, "checkpoint.latest"));

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("is inside the audited log folder", err, StringComparison.Ordinal);
        Assert.Equal("signed\n", File.ReadAllText(Path.Combine(logs, "checkpoint.latest")));
    }

    /// <summary>
    /// Auditor review (session 49): a line past the newest checkpoint exited 1, as a damaged log does, where every other
    /// argument the command cannot use exits 2; a line it covers is proved and the proof checks.
    /// </summary>
    [Fact]
    public async Task AuditProve_LineNotCoveredByTheNewestCheckpoint_UsageErrorNamingTheLineAndTheCoveredRange()
    {
        string directory = Log("aggregator", log => log.Append("test.event", f => f.Add("n", 1)));
        int lines = File.ReadAllLines(Path.Combine(directory, AuditLog.LogFileName)).Length;

        var (code, _, err) = await Run("audit", "prove", directory, "--line", (lines + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains($"--line {lines + 1}: Line {lines + 1} is not covered by the newest checkpoint (it covers lines 1..{lines})", err, StringComparison.Ordinal);
        var (proved, proof, _) = await Run("audit", "prove", directory, "--line", "1");
        Assert.Equal(CliApp.ExitOk, proved);
        string file = Path.Combine(_dir, "proof.txt");
        File.WriteAllText(file, proof);
        Assert.Equal(CliApp.ExitOk, (await Run("audit", "check-proof", file)).Code);
    }

    [Fact]
    public void OutputPaths_LinksOnTheWay_ResolvedBeforeComparing()
    {
        string logs = Path.Combine(_dir, "logs");
        Directory.CreateDirectory(Path.Combine(logs, "checkpoints"));
        File.WriteAllText(Path.Combine(logs, "audit.jsonl"), "");
        Directory.CreateSymbolicLink(Path.Combine(_dir, "up"), _dir);
        Directory.CreateSymbolicLink(Path.Combine(_dir, "relative"), "logs");
        File.CreateSymbolicLink(Path.Combine(_dir, "file-link"), Path.Combine(logs, "audit.jsonl"));

        Assert.True(OutputPaths.IsInside(Path.Combine(_dir, "up", "up", "logs", "checkpoints", "new.html"), logs));
        Assert.True(OutputPaths.IsInside(Path.Combine(_dir, "relative", "new.html"), logs));
        Assert.True(OutputPaths.SamePath(Path.Combine(_dir, "relative"), logs));
        Assert.True(OutputPaths.SamePath(Path.Combine(_dir, "file-link"), Path.Combine(logs, "audit.jsonl")));
        Assert.False(OutputPaths.IsInside(Path.Combine(_dir, "report.html"), logs));
    }

    /// <summary>The check that refuses a --previous file that is not a checkpoint (CliBadInputTests) lets a real one through to the verification.</summary>
    [Fact]
    public async Task AuditVerifyAndReport_PreviousIsAKeptCheckpoint_Verified()
    {
        string logs = Log("aggregator", log => log.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("threshold", 2)));
        string kept = Path.Combine(_dir, "kept.checkpoint");
        File.Copy(Path.Combine(logs, AuditLog.LatestCheckpointFileName), kept);

        var (code, stdout, err) = await Run("audit", "verify", logs, "--previous", kept);
        var (reportCode, _, reportErr) = await Run("audit", "report", logs, "--out", Path.Combine(_dir, "report.html"), "--previous", kept);

        Assert.True(code == CliApp.ExitOk, stdout + err);
        Assert.True(reportCode == CliApp.ExitOk, reportErr);
    }

    [Fact]
    public async Task AuditVerify_LineBeyondDouble_JsonVerdictNamesTheLine()
    {
        string logs = Log("aggregator", log => log.Append(AuditEvents.RoundOpened, f => f.Add("round", 1).Add("threshold", 2)));
        string file = Path.Combine(logs, AuditLog.LogFileName);
        File.WriteAllText(file, File.ReadAllText(file).Replace("\"threshold\":2", "\"threshold\":1e400", StringComparison.Ordinal));

        var (code, output, err) = await Run("audit", "verify", logs, "--json");

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Equal(string.Empty, err);
        using JsonDocument document = JsonDocument.Parse(output);
        Assert.False(document.RootElement.GetProperty("ok").GetBoolean());
        Assert.StartsWith("line 2 cannot be in canonical form", document.RootElement.GetProperty("first_problem").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuditReport_ActorWithEscapeSequences_PrintedWithoutControlCharacters()
    {
        string logs = Log("h1\u001b[2J\u001b[32mPASSED\u001b[0m", log => log.Append(AuditEvents.PrivacyLedger,
            f => f.Add("round", 1).Add("guarantee", "record").Add("epsilon", 9.0).Add("budget", 8.0)));

        var (code, output, _) = await Run("audit", "report", logs, "--out", Path.Combine(_dir, "report.html"));

        Assert.Equal(CliApp.ExitFailure, code);
        Assert.Contains("h1\uFFFD[2J\uFFFD[32mPASSED\uFFFD[0m spent patient-level ε 9", output, StringComparison.Ordinal);
        Assert.DoesNotContain('\u001b', output);
    }

    [Fact]
    public async Task AuditReport_KeyNotGivenOncePerFolder_UsageError()
    {
        string a = Log("aggregator", _ => { });
        string b = Log("h1", _ => { });

        var (code, _, err) = await Run("audit", "report", a, b, "--key", "-", "--out", Path.Combine(_dir, "report.html"));

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.Contains("--key was given 1 time(s) for 2 log folder(s)", err, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_dir, "report.html")));
    }

    [Fact]
    public async Task AuditReport_KeyPinnedPerFolder_WrongKeyFailsAndRightKeyDropsTheUnpinnedCaveat()
    {
        string a = Log("aggregator", log => log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1)));
        using var other = Ed25519PrivateKey.FromSeed(new byte[32]);
        string wrong = NoteVerifierKey.FromEd25519("securefed.test/aggregator", other.PublicKey).ToString();
        string right = File.ReadAllText(Path.Combine(a, AuditLog.VerifierKeyFileName)).Trim();

        var (wrongCode, wrongOut, _) = await Run("audit", "report", a, "--key", wrong, "--out", Path.Combine(_dir, "wrong.html"));
        var (rightCode, rightOut, _) = await Run("audit", "report", a, "--key", right, "--out", Path.Combine(_dir, "right.html"));
        var (_, unpinnedOut, _) = await Run("audit", "report", a, "--out", Path.Combine(_dir, "unpinned.html"));

        Assert.Equal(CliApp.ExitFailure, wrongCode);
        Assert.Contains("is forged or re-signed", wrongOut, StringComparison.Ordinal);
        Assert.Equal(CliApp.ExitOk, rightCode);
        Assert.DoesNotContain("not pinned", rightOut, StringComparison.Ordinal);
        Assert.Contains("Keys not pinned", unpinnedOut.Split('\n')[0], StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string Log(string actor, Action<AuditLog> write)
    {
        string directory = Path.Combine(_dir, "log-" + Guid.NewGuid().ToString("N"));
        using var key = Ed25519PrivateKey.FromSeed(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        using AuditLog log = AuditLog.Open(directory, actor, key, "securefed.test/aggregator");
        write(log);
        return directory;
    }
}
