using System.Security.Cryptography;
using System.Text.Json;

using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;

namespace SecureFed.Integration.Tests;

/// <summary>
/// <c>securefed privacy ledger repair FILE [--apply] [--kit DIR]</c>: a dry run that says what it would remove, the repair
/// itself and its record in the owner's signed audit log (a site's or the aggregator's), and the refusals (other damage, a running agent, a repair that
/// cannot be recorded), with their exit codes and messages.
/// </summary>
public sealed class PrivacyLedgerRepairCliTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("securefed-ledger-repair-cli-").FullName;
    /// <summary>The data folder: the ledger and audit/.</summary>
    private readonly string _dir;
    private ProvisionResult? _federation;

    public PrivacyLedgerRepairCliTests()
    {
        _dir = Path.Combine(_root, "data");
        Directory.CreateDirectory(Path.Combine(_dir, "audit"));
    }

    private string LedgerPath => Path.Combine(_dir, "privacy-ledger.jsonl");

    private string AuditDirectory => Path.Combine(_dir, "audit");

    private string AuditLogPath => Path.Combine(AuditDirectory, AuditLog.LogFileName);

    /// <summary>A federation of site-a and site-b, provisioned on first use.</summary>
    private ProvisionResult Provisioned => _federation ??=
        FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_root, "fed"), "repair", ["site-a", "site-b"], "127.0.0.1"));

    private string KitA => Provisioned.SiteKitDirectories["site-a"];

    private AgentOptions AgentA => new() { Site = "site-a", KitDirectory = KitA, DataDirectory = _dir };

    private string AggregatorKit => Provisioned.AggregatorKitDirectory;

    /// <summary>The federation's aggregator on the data folder instead of site-a's agent (the same file names: privacy-ledger.jsonl, audit/).</summary>
    private AggregatorOptions Aggregator => new() { Federation = "repair", KitDirectory = AggregatorKit, DataDirectory = _dir };

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task LedgerRepair_TornLastLine_DryRunChangesNothingThenApplyRepairsAndKeepsTheOriginal()
    {
        byte[] torn = ChargeAndTear(out byte[] intact, out _);

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

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--owner", "site-a", "--kit", KitA);

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
    public async Task LedgerRepair_Apply_RecordsTheRepairInTheSignedAuditLogAndTheAgentStartsOnTheLedger()
    {
        byte[] torn = ChargeAndTear(out byte[] intact, out double[] epsilons);
        byte[] logBefore = File.ReadAllBytes(AuditLogPath);
        int linesBefore = File.ReadAllLines(AuditLogPath).Length;

        (int dryCode, string dryOut, _) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--kit", KitA);
        Assert.Equal(0, dryCode);
        Assert.Contains("Run again with --apply --kit <the owner's kit folder>", dryOut, StringComparison.Ordinal);
        Assert.Equal(logBefore, File.ReadAllBytes(AuditLogPath)); // a dry run records nothing

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", KitA);

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Equal(intact, File.ReadAllBytes(LedgerPath));
        string backup = Assert.Single(Directory.GetFiles(_dir, "privacy-ledger.jsonl.torn-*"));
        string[] lines = File.ReadAllLines(AuditLogPath);
        Assert.Equal(linesBefore + 2, lines.Length); // this run's log.opened, then the repair
        Assert.Equal(AuditEvents.LogOpened, Type(lines[^2]));
        Assert.Contains($"Recorded before the ledger was replaced: {AuditLogPath} line {lines.Length} ({AuditEvents.PrivacyLedgerRepaired}:", stdout, StringComparison.Ordinal);
        using JsonDocument repaired = JsonDocument.Parse(lines[^1]);
        JsonElement root = repaired.RootElement;
        Assert.Equal(AuditEvents.PrivacyLedgerRepaired, root.GetProperty("type").GetString());
        Assert.Equal("site-a", root.GetProperty("actor").GetString());
        JsonElement fields = root.GetProperty("fields");
        Assert.Equal("privacy-ledger.jsonl", fields.GetProperty("file").GetString());
        Assert.Equal(4, fields.GetProperty("line").GetInt64());
        Assert.Equal(torn.Length - intact.Length, fields.GetProperty("bytes").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(torn.AsSpan(intact.Length))), fields.GetProperty("sha256").GetString());
        Assert.Equal(torn.Length, fields.GetProperty("original_bytes").GetInt64());
        Assert.Equal(intact.Length, fields.GetProperty("kept_bytes").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(intact)), fields.GetProperty("kept_sha256").GetString());
        Assert.Equal(Path.GetFileName(backup), fields.GetProperty("backup").GetString());
        Assert.Equal(2, fields.GetProperty("entries").GetInt64());
        JsonElement record = fields.GetProperty("kept").GetProperty("record");
        Assert.Equal(1, record.GetProperty("entries").GetInt64());
        Assert.Equal(epsilons[0], record.GetProperty("epsilon").GetDouble());
        Assert.Equal(1e-5, record.GetProperty("delta").GetDouble());
        Assert.Equal(epsilons[1], fields.GetProperty("kept").GetProperty("site").GetProperty("epsilon").GetDouble());

        // The log verifies against the key of site-a's kit, and a checkpoint signs the repair's line.
        string key;
        using (PartyKit kit = PartyKit.Load(KitA))
        {
            key = NoteVerifierKey.FromEd25519("securefed/repair/site-a", kit.IdentityKey.PublicKey).ToString();
        }

        AuditVerification verified = AuditVerifier.Verify(AuditDirectory, key);
        Assert.True(verified.Ok, verified.FirstProblem);
        Assert.Equal(lines.Length, verified.Lines);
        Assert.Equal(0, verified.UncoveredLines);

        // The agent's start-up check (ledger against the audit log's privacy.ledger lines) accepts the repaired ledger.
        using AgentState state = AgentState.Open(AgentA);
        Assert.Equal(2, state.Ledger.Entries.Count);
    }

    [Fact]
    public async Task LedgerRepair_ApplyWithoutKit_RefusedWithExit2AndNothingChanged()
    {
        byte[] torn = ChargeAndTear(out _, out _);
        byte[] log = File.ReadAllBytes(AuditLogPath);

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply");

        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Contains($"the repair is recorded in the audit log {AuditLogPath}, signed with the identity key of the ledger owner's kit; give that kit with --kit DIR", stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed.", stderr, StringComparison.Ordinal);
        AssertNothingChanged(torn, log);
    }

    [Fact]
    public async Task LedgerRepair_ApplyWithAnotherSitesKit_RefusedAndNothingChanged()
    {
        byte[] torn = ChargeAndTear(out _, out _);
        byte[] log = File.ReadAllBytes(AuditLogPath);

        (int code, _, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", Provisioned.SiteKitDirectories["site-b"]);

        Assert.Equal(1, code);
        Assert.Contains($"Privacy ledger '{LedgerPath}' belongs to 'site-a', but the kit in {Provisioned.SiteKitDirectories["site-b"]} is the one of 'site-b'", stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed.", stderr, StringComparison.Ordinal);
        AssertNothingChanged(torn, log);
    }

    /// <summary>
    /// Session 56: the repair run as another user than the one owning the ledger or its audit log (e.g. with sudo, for an
    /// agent that runs as its own user) is refused before anything is written, naming both users: before, the repaired
    /// ledger, its backup and the new audit lines belonged to the command's user and the agent could no longer write them.
    /// Needs root, to give the files another owner.
    /// </summary>
    [SkippableTheory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task LedgerRepair_FileOwnedByAnotherUser_RefusedNamingBothUsersAndNothingChanged(bool auditLogOnly, bool noLockFile)
    {
        Skip.IfNot(FileOwner.IsSupported && FileOwner.EffectiveUserId() == 0, "giving the ledger another owner needs root on Linux");
        byte[] torn = ChargeAndTear(out _, out _);
        byte[] log = File.ReadAllBytes(AuditLogPath);
        string other = auditLogOnly ? AuditLogPath : LedgerPath;
        ChangeOwner(other, 65534);
        string lockFile = Path.Combine(AuditDirectory, AuditLog.LockFileName);
        if (noLockFile)
        {
            // A folder restored without its lock file: neither the dry run nor the refused repair creates one as root (the
            // agent, running as the ledger's owner, could not open it).
            File.Delete(lockFile);
            (int dryCode, string dryOut, _) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath);
            Assert.Equal(0, dryCode);
            Assert.Contains("Dry run: nothing was changed.", dryOut, StringComparison.Ordinal);
            Assert.False(File.Exists(lockFile), "the dry run created the lock file");
        }

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", KitA);
        Assert.True(!noLockFile || !File.Exists(lockFile), "the refused repair created the lock file");

        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains($"Privacy ledger '{LedgerPath}' was not repaired: '{other}' belongs to {FileOwner.Describe(65534)}, but this command runs as 'root' (uid 0).", stderr, StringComparison.Ordinal);
        Assert.Contains("Run the repair as that user", stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed.", stderr, StringComparison.Ordinal);
        AssertNothingChanged(torn, log);
        Assert.Equal(65534u, FileOwner.UserIdOf(other));

        // Given back to the command's user, the same command repairs it.
        ChangeOwner(other, 0);
        (code, _, stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", KitA);
        Assert.True(code == 0, stderr);
        Assert.Single(Directory.GetFiles(_dir, "*.torn-*"));
    }

    private static void ChangeOwner(string path, uint uid)
    {
        using var chown = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("chown", [$"{uid}:{uid}", path]) { RedirectStandardError = true })!;
        string error = chown.StandardError.ReadToEnd();
        chown.WaitForExit();
        Assert.True(chown.ExitCode == 0, $"chown {uid} {path}: {error}");
    }

    [Fact]
    public async Task LedgerRepair_AggregatorLedgerWithTheAggregatorKit_RecordsTheRepairUnderTheAggregatorsOriginAndTheAggregatorStarts()
    {
        byte[] torn = ChargeAndTearAggregator(out byte[] intact, out double epsilon);
        int linesBefore = File.ReadAllLines(AuditLogPath).Length;

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--owner", "aggregator:repair", "--kit", AggregatorKit);

        Assert.Equal(0, code);
        Assert.Equal("", stderr);
        Assert.Contains($"Privacy ledger {LedgerPath} (owner aggregator:repair)", stdout, StringComparison.Ordinal);
        Assert.Contains("State after the repair (re-read and verified): 2 entries, the last for round 2;", stdout, StringComparison.Ordinal);
        Assert.Equal(intact, File.ReadAllBytes(LedgerPath));
        string backup = Assert.Single(Directory.GetFiles(_dir, "privacy-ledger.jsonl.torn-*"));
        Assert.Equal(torn, File.ReadAllBytes(backup));
        string[] lines = File.ReadAllLines(AuditLogPath);
        Assert.Equal(linesBefore + 2, lines.Length); // this run's log.opened, then the repair
        Assert.Contains($"Recorded before the ledger was replaced: {AuditLogPath} line {lines.Length} ({AuditEvents.PrivacyLedgerRepaired}:", stdout, StringComparison.Ordinal);
        using JsonDocument opened = JsonDocument.Parse(lines[^2]);
        Assert.Equal(AuditEvents.LogOpened, opened.RootElement.GetProperty("type").GetString());
        Assert.Equal("securefed/repair/aggregator", opened.RootElement.GetProperty("fields").GetProperty("origin").GetString());
        using JsonDocument repaired = JsonDocument.Parse(lines[^1]);
        JsonElement root = repaired.RootElement;
        Assert.Equal(AuditEvents.PrivacyLedgerRepaired, root.GetProperty("type").GetString());
        Assert.Equal("aggregator", root.GetProperty("actor").GetString());
        JsonElement fields = root.GetProperty("fields");
        Assert.Equal(4, fields.GetProperty("line").GetInt64());
        Assert.Equal(torn.Length - intact.Length, fields.GetProperty("bytes").GetInt64());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(intact)), fields.GetProperty("kept_sha256").GetString());
        Assert.Equal(Path.GetFileName(backup), fields.GetProperty("backup").GetString());
        Assert.Equal(2, fields.GetProperty("entries").GetInt64());
        JsonProperty kept = Assert.Single(fields.GetProperty("kept").EnumerateObject()); // the aggregator charges the site guarantee only
        Assert.Equal("site", kept.Name);
        Assert.Equal(2, kept.Value.GetProperty("entries").GetInt64());
        Assert.Equal(epsilon, kept.Value.GetProperty("epsilon").GetDouble());

        // The log verifies against the key of the aggregator's kit under its origin, and a checkpoint signs the repair's line.
        string key;
        using (PartyKit kit = PartyKit.Load(AggregatorKit))
        {
            key = NoteVerifierKey.FromEd25519("securefed/repair/aggregator", kit.IdentityKey.PublicKey).ToString();
        }

        AuditVerification verified = AuditVerifier.Verify(AuditDirectory, key);
        Assert.True(verified.Ok, verified.FirstProblem);
        Assert.Equal("securefed/repair/aggregator", verified.Origin);
        Assert.Equal(lines.Length, verified.Lines);
        Assert.Equal(0, verified.UncoveredLines);

        // The aggregator's start-up check (ledger against the audit log's privacy.spent lines) accepts the repaired ledger.
        using AggregatorState state = AggregatorState.Open(Aggregator, new float[8]);
        Assert.True(state.Budget.Charged(2));
        Assert.False(state.Budget.Charged(3));
        Assert.Equal(epsilon, state.Budget.SpentAfter(3));
    }

    [Fact]
    public async Task LedgerRepair_AggregatorLedgerWithASitesKit_RefusedAndNothingChanged()
    {
        byte[] torn = ChargeAndTearAggregator(out _, out _);
        byte[] log = File.ReadAllBytes(AuditLogPath);

        (int code, string stdout, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", KitA);

        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains($"Privacy ledger '{LedgerPath}' belongs to 'aggregator:repair', but the kit in {KitA} is the one of 'site-a'", stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed.", stderr, StringComparison.Ordinal);
        AssertNothingChanged(torn, log);
    }

    [Fact]
    public async Task LedgerRepair_ApplyWithoutAnAuditLog_RefusedAndNoLogCreated()
    {
        byte[] torn = WriteTornLedger(out _);

        (int code, _, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", KitA);

        Assert.Equal(1, code);
        Assert.Contains($"the repair must be recorded in the audit log of its data folder, but '{AuditLogPath}' does not exist", stderr, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", stderr, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));
        Assert.Empty(Directory.GetFileSystemEntries(AuditDirectory)); // no new log, and since session 56 no lock file either (the first pass creates none)
    }

    [Fact]
    public async Task LedgerRepair_TornChargeAlreadyInTheAuditLog_RefusedWithoutARepairLine()
    {
        // The torn line's charge is in the signed log: it was whole once, so this is no crash in the middle of an append,
        // and the agent would refuse the repaired ledger as behind its log.
        byte[] torn = ChargeAndTear(out _, out _, logTheTornCharge: true);

        (int code, _, string stderr) = await CliRun.RunAsync("privacy", "ledger", "repair", LedgerPath, "--apply", "--kit", KitA);

        Assert.Equal(1, code);
        Assert.Contains($"Privacy ledger '{LedgerPath}' is behind", stderr, StringComparison.Ordinal);
        Assert.Contains("Without its torn line the ledger would be behind its audit log", stderr, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));
        Assert.DoesNotContain(File.ReadAllLines(AuditLogPath), l => Type(l) == AuditEvents.PrivacyLedgerRepaired);
        Assert.True(AuditVerifier.Verify(AuditDirectory).Ok);
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

    /// <summary>
    /// As site-a's agent charges: round 1's two entries, each followed by its <c>privacy.ledger</c> audit line; then round 2's
    /// record-level entry, whose line a crash cuts in the middle before it is logged (with <paramref name="logTheTornCharge"/>
    /// it was logged, so the line was whole once). Returns the torn bytes; <paramref name="intact"/> the complete lines,
    /// <paramref name="epsilons"/> round 1's record- and site-level ε.
    /// </summary>
    private byte[] ChargeAndTear(out byte[] intact, out double[] epsilons, bool logTheTornCharge = false)
    {
        using (AgentState state = AgentState.Open(AgentA))
        {
            LedgerEntry record = state.Ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), 1e-5);
            state.Audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("guarantee", "record").Add("epsilon", record.EpsilonAfter).Add("delta", 1e-5).Add("budget", 8.0));
            LedgerEntry site = state.Ledger.Append(1, Guarantee.Site, PlannedMechanism.Zcdp(0.05), 1e-5);
            state.Audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("guarantee", "site").Add("epsilon", site.EpsilonAfter).Add("delta", 1e-5).Add("budget", 10.0).Add("rho", 0.05));
            epsilons = [record.EpsilonAfter, site.EpsilonAfter];
            intact = File.ReadAllBytes(LedgerPath);
            LedgerEntry next = state.Ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), 1e-5);
            if (logTheTornCharge)
            {
                state.Audit.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 2).Add("guarantee", "record").Add("epsilon", next.EpsilonAfter).Add("delta", 1e-5).Add("budget", 8.0));
            }
        }

        return TearLastLine(intact.Length);
    }

    /// <summary>
    /// As the aggregator charges: rounds 1 and 2's site-level ρ in its ledger (<see cref="AggregatorState.PrivacyLedgerPath"/>),
    /// each followed by its <c>privacy.spent</c> audit line; then round 3's, whose line a crash cuts in the middle before it is
    /// logged. Returns the torn bytes; <paramref name="intact"/> the complete lines, <paramref name="epsilon"/> ε after round 2.
    /// </summary>
    private byte[] ChargeAndTearAggregator(out byte[] intact, out double epsilon)
    {
        using (AggregatorState state = AggregatorState.Open(Aggregator, new float[8]))
        {
            epsilon = 0;
            for (long round = 1; round <= 2; round++)
            {
                double spent = state.Budget.Record(round, 0.05, 1e-5);
                state.Audit.Append(AuditEvents.PrivacySpent, f => f.Add("round", round).Add("guarantee", "site").Add("rho", 0.05).Add("epsilon", spent).Add("delta", 1e-5).Add("budget", 10.0));
                epsilon = spent;
            }

            intact = File.ReadAllBytes(AggregatorState.PrivacyLedgerPath(_dir));
            state.Budget.Record(3, 0.05, 1e-5);
        }

        return TearLastLine(intact.Length);
    }

    /// <summary>Cuts the ledger's last line (after its first <paramref name="intactLength"/> bytes) in the middle; returns the torn bytes.</summary>
    private byte[] TearLastLine(int intactLength)
    {
        byte[] whole = File.ReadAllBytes(LedgerPath);
        byte[] torn = whole[..(intactLength + ((whole.Length - intactLength) / 2))];
        File.WriteAllBytes(LedgerPath, torn);
        return torn;
    }

    private void AssertNothingChanged(byte[] torn, byte[] log)
    {
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Directory.GetFiles(_dir, "*.torn-*"));
        Assert.Equal(log, File.ReadAllBytes(AuditLogPath));
    }

    private static string? Type(string line)
    {
        using JsonDocument document = JsonDocument.Parse(line);
        return document.RootElement.GetProperty("type").GetString();
    }

    /// <summary>Two entries (round 1), then the third's line cut in the middle; returns the torn bytes and, in <paramref name="intact"/>, the complete lines.</summary>
    [Fact]
    public void LedgerNowHoldsKeptLines_SaysWhetherTheFileIsTheRepairedLedger_ForAFailureAfterTheRecord()
    {
        // After its record the repair's error tells the repaired ledger (a failure after the rename) from the torn original.
        byte[] torn = WriteTornLedger(out byte[] intact);
        LedgerRepairResult planned = PrivacyLedger.RepairTornTail(LedgerPath, apply: false, writerLockPath: null);

        Assert.False(SecureFed.Cli.Commands.PrivacyLedgerRepairCommand.LedgerNowHoldsKeptLines(LedgerPath, planned)); // still torn
        File.WriteAllBytes(LedgerPath, intact);
        Assert.True(SecureFed.Cli.Commands.PrivacyLedgerRepairCommand.LedgerNowHoldsKeptLines(LedgerPath, planned));
        byte[] edited = [.. intact];
        edited[^2] ^= 1;
        File.WriteAllBytes(LedgerPath, edited);
        Assert.False(SecureFed.Cli.Commands.PrivacyLedgerRepairCommand.LedgerNowHoldsKeptLines(LedgerPath, planned)); // same size, other bytes
        File.Delete(LedgerPath);
        Assert.False(SecureFed.Cli.Commands.PrivacyLedgerRepairCommand.LedgerNowHoldsKeptLines(LedgerPath, planned)); // gone
        Assert.NotEqual(torn.Length, intact.Length);
    }

    private byte[] WriteTornLedger(out byte[] intact)
    {
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, "site-a");
        ledger.Append(1, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), 1e-5);
        ledger.Append(1, Guarantee.Site, PlannedMechanism.Zcdp(0.05), 1e-5);
        intact = File.ReadAllBytes(LedgerPath);
        ledger.Append(2, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), 1e-5);
        return TearLastLine(intact.Length);
    }

    private static int IndexOf(byte[] haystack, byte[] needle, int from)
    {
        int at = haystack.AsSpan(from).IndexOf(needle);
        Assert.True(at >= 0);
        return from + at;
    }
}
