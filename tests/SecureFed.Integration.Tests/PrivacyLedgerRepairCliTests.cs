using SecureFed.Privacy;

namespace SecureFed.Integration.Tests;

/// <summary>
/// <c>securefed privacy ledger repair FILE [--apply]</c>: a dry run that says what it would remove, the repair itself, and
/// the refusals (other damage, a running agent), with their exit codes and messages.
/// </summary>
public sealed class PrivacyLedgerRepairCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-ledger-repair-cli-").FullName;

    private string LedgerPath => Path.Combine(_dir, "privacy-ledger.jsonl");

    public PrivacyLedgerRepairCliTests() => Directory.CreateDirectory(Path.Combine(_dir, "audit"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task LedgerRepair_TornLastLine_DryRunChangesNothingThenApplyRepairsAndKeepsTheOriginal()
    {
        byte[] torn = WriteTornLedger(out byte[] intact);

        (int dryCode, string dryOut, string dryErr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath);

        Assert.Equal(0, dryCode);
        Assert.Equal("", dryErr);
        Assert.Contains($"Privacy ledger {LedgerPath} (owner site-a)", dryOut, StringComparison.Ordinal);
        Assert.Contains($"Line 4 is torn: its last {torn.Length - intact.Length} bytes (of {torn.Length}) have no terminating newline", dryOut, StringComparison.Ordinal);
        Assert.Contains("torn bytes (SHA-256 ", dryOut, StringComparison.Ordinal);
        Assert.Contains("\"{\\\"seq\\\":3,", dryOut, StringComparison.Ordinal); // the torn text, escaped
        Assert.Contains("State after the repair: 2 entries, the last for round 1;", dryOut, StringComparison.Ordinal);
        Assert.Contains("Dry run: nothing was changed. Run again with --apply", dryOut, StringComparison.Ordinal);
        Assert.Contains($"Held the data folder's lock {Path.Combine(_dir, "audit", ".lock")} throughout", dryOut, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--owner", "site-a");

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        string backup = Assert.Single(Directory.GetFiles(_dir, "privacy-ledger.jsonl.torn-*"));
        Assert.Contains($"Repaired: removed the {torn.Length - intact.Length} torn bytes; the original file is kept byte for byte as {backup}.", stdout, StringComparison.Ordinal);
        Assert.Contains("State after the repair (re-read and verified): 2 entries", stdout, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(backup));
        Assert.Equal(intact, File.ReadAllBytes(LedgerPath));

        (int showCode, string shown, _) = await CliRun.RunAsync("privacy", "ledger", "show", LedgerPath);
        Assert.Equal(0, showCode);
        Assert.Contains("2 entries; hash chain and replayed epsilons verified", shown, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LedgerShow_TornLastLine_ErrorNamesTheRepairCommand()
    {
        WriteTornLedger(out _);

        (int code, _, string stderr) = await CliRun.RunAsync("privacy", "ledger", "show", LedgerPath);

        Assert.Equal(1, code);
        Assert.Contains($"'securefed privacy ledger repair {LedgerPath}'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LedgerRepair_HealthyLedger_SaysNothingToRepair()
    {
        WriteTornLedger(out byte[] intact);
        File.WriteAllBytes(LedgerPath, intact);

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply");

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains("Its last line is complete and all 3 lines verify (hash chain, owner header, replayed epsilons): nothing to repair; nothing was changed.", stdout, StringComparison.Ordinal);
        Assert.Equal(intact, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));
    }

    [Fact]
    public async Task LedgerRepair_BrokenChainBeforeTheTornLine_RefusedWithExit1AndNothingChanged()
    {
        byte[] torn = WriteTornLedger(out _);
        byte[] edited = (byte[])torn.Clone();
        int round = IndexOf(edited, "\"round\":1,"u8.ToArray(), from: IndexOf(edited, "\"seq\":1"u8.ToArray(), 0));
        edited[round + 8] = (byte)'7'; // line 2 says round 7 now: valid on its own, but line 3's 'prev' no longer matches it
        File.WriteAllBytes(LedgerPath, edited);

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply");

        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith($"error: Privacy ledger '{LedgerPath}' is corrupt at line 3: hash chain broken", stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed: 'ledger repair' removes only a torn last line", stderr, StringComparison.Ordinal);
        Assert.Equal(edited, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));
    }

    [Fact]
    public async Task LedgerRepair_AgentRunning_RefusedWithExit1AndNothingChanged()
    {
        byte[] torn = WriteTornLedger(out _);
        string lockPath = Path.Combine(_dir, "audit", ".lock");
        using var running = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);

        (int code, _, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply");

        Assert.Equal(1, code);
        Assert.Contains($"its lock file '{lockPath}' could not be taken", stderr, StringComparison.Ordinal);
        Assert.Contains("Stop it, then run the repair again. Nothing was changed.", stderr, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));
    }

    [Fact]
    public async Task LedgerRepair_NoSuchFile_UsageError()
    {
        (int code, _, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", Path.Combine(_dir, "missing.jsonl"));

        Assert.Equal(2, code);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);
    }

    /// <summary>Two entries (round 1), then the third's line cut in the middle; returns the torn bytes and, in <paramref name="intact"/>, the complete lines.</summary>
    private byte[] WriteTornLedger(out byte[] intact)
    {
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, "site-a");
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), 1e-5);
        ledger.Append(1, Guarantee.Site, PlannedMechanism.Zcdp(0.05), 1e-5);
        intact = File.ReadAllBytes(LedgerPath);
        ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), 1e-5);
        byte[] whole = File.ReadAllBytes(LedgerPath);
        byte[] torn = whole[..(intact.Length + ((whole.Length - intact.Length) / 2))];
        File.WriteAllBytes(LedgerPath, torn);
        return torn;
    }

    private static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        int at = haystack.AsSpan(from).IndexOf(needle);
        Assert.True(at >= 0);
        return from + at;
    }
}
