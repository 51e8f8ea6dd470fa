using System.Text;
using System.Text.RegularExpressions;

using SecureFed.Privacy;

namespace SecureFed.Privacy.Tests;

/// <summary>
/// <see cref="PrivacyLedger.RepairTornTail"/>: a ledger whose last line a crash tore is cut back to its complete lines,
/// the original kept byte for byte beside it; any other damage is refused with the file left byte for byte as it was.
/// </summary>
public sealed class PrivacyLedgerRepairTests : IDisposable
{
    private const string Owner = "hospital-a";
    private const double Delta = 1e-5;

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-ledger-repair-" + Guid.NewGuid().ToString("N"));
    private readonly SteppingTimeProvider _time = new(new DateTimeOffset(2026, 12, 6, 7, 30, 0, TimeSpan.Zero));

    public PrivacyLedgerRepairTests() => Directory.CreateDirectory(Path.Combine(_directory, "audit"));

    private string LedgerPath => Path.Combine(_directory, "privacy-ledger.jsonl");

    private string LockPath => Path.Combine(_directory, "audit", ".lock");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void RepairTornTail_LastLineTornAtEveryCut_KeepsTheCompleteEntriesVerifiedAndTheOriginalAsBackup()
    {
        byte[] whole = WriteEntries(5);
        int lastStart = Array.LastIndexOf(whole, (byte)'\n', whole.Length - 2) + 1;
        byte[] intact = whole[..lastStart];
        double[] spentIntact = SpentOf(intact);

        // Every cut of the last line: one byte of it up to all of it but its newline.
        for (int cut = lastStart + 1; cut < whole.Length; cut++)
        {
            byte[] torn = whole[..cut];
            File.WriteAllBytes(LedgerPath, torn);

            LedgerRepairResult dry = PrivacyLedger.RepairTornTail(LedgerPath, apply: false, LockPath, Owner, _time);
            Assert.True(dry.Torn);
            Assert.False(dry.Applied);
            Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
            Assert.Equal(torn[lastStart..], dry.TornBytes.ToArray());
            Assert.Equal(4, dry.Ledger.Entries.Count);
            Assert.Equal(6, dry.TornLineNumber);

            LedgerRepairResult done = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time);

            Assert.True(done.Applied);
            Assert.Equal(intact, File.ReadAllBytes(LedgerPath));
            Assert.Equal(torn, File.ReadAllBytes(done.BackupPath!));
            Assert.Equal(cut - lastStart, done.TornBytes.Length);
            PrivacyLedger reopened = PrivacyLedger.Open(LedgerPath, Owner, _time);
            Assert.Equal(4, reopened.Entries.Count);
            Assert.Equal(spentIntact, Spent(reopened));
            Assert.Equal(spentIntact, Spent(done.Ledger));
            File.Delete(done.BackupPath!);
        }

        // The repaired ledger goes on: the interrupted round is charged again when it runs again.
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, Owner, _time);
        ledger.Append(3, Guarantee.Site, PlannedMechanism.Zcdp(0.05), Delta);
        Assert.Equal(5, PrivacyLedger.Open(LedgerPath, Owner, _time).Entries.Count);
    }

    [Fact]
    public void RepairTornTail_TornZerosAfterPowerLoss_Removed()
    {
        // A file system may extend the file before the data reaches the disk: the torn line is then zeros.
        byte[] whole = WriteEntries(2);
        byte[] torn = [.. whole, .. new byte[300]];
        File.WriteAllBytes(LedgerPath, torn);

        LedgerRepairResult done = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time);

        Assert.Equal(whole, File.ReadAllBytes(LedgerPath));
        Assert.Equal(torn, File.ReadAllBytes(done.BackupPath!));
        Assert.StartsWith("\"\\x00\\x00", done.TornText(), StringComparison.Ordinal);
        Assert.EndsWith("(140 more bytes)", done.TornText(), StringComparison.Ordinal);
    }

    public static TheoryData<string> OtherDamage => new()
    {
        "corrupt-middle-line",
        "broken-hash-chain",
        "torn-line-not-last",
        "torn-line-not-last-and-torn-tail",
        "edited-epsilon",
        "header-only-torn",
        "empty-file",
    };

    [Theory]
    [MemberData(nameof(OtherDamage))]
    public void RepairTornTail_OtherDamage_RefusedAndFileUntouchedByteForByte(string damage)
    {
        byte[] whole = WriteEntries(4);
        string[] lines = Encoding.UTF8.GetString(whole).Split('\n')[..^1];
        string tornTail = lines[^1][..40];
        string content = damage switch
        {
            "corrupt-middle-line" => Join(lines, 2, l => l.Replace("\"round\":", "\"round\":x", StringComparison.Ordinal)) + tornTail,
            "broken-hash-chain" => Join(lines, 3, l => Regex.Replace(l, "\"prev\":\"(.)", m => "\"prev\":\"" + (m.Groups[1].Value == "0" ? "1" : "0"))) + tornTail,
            // A line torn by an append that failed, then more appends after it: the torn bytes run into the next line.
            "torn-line-not-last" => string.Join('\n', lines[..2]) + "\n" + lines[2][..50] + string.Join('\n', lines[3..]) + "\n",
            "torn-line-not-last-and-torn-tail" => string.Join('\n', lines[..2]) + "\n" + lines[2][..50] + string.Join('\n', lines[3..^1]) + "\n" + tornTail,
            "edited-epsilon" => Join(lines, 1, l => l.Replace("\"epsilon_after\":", "\"epsilon_after\":1", StringComparison.Ordinal)) + tornTail,
            "header-only-torn" => lines[0][..30],
            "empty-file" => string.Empty,
            _ => throw new ArgumentOutOfRangeException(nameof(damage)),
        };
        byte[] bytes = Encoding.UTF8.GetBytes(content);
        File.WriteAllBytes(LedgerPath, bytes);
        string[] before = Directory.GetFileSystemEntries(_directory);

        foreach (bool apply in new[] { false, true })
        {
            InvalidDataException ex = Assert.Throws<InvalidDataException>(() => PrivacyLedger.RepairTornTail(LedgerPath, apply, LockPath, Owner, _time));

            Assert.Contains(LedgerPath, ex.Message, StringComparison.Ordinal);
            Assert.Contains("Nothing was changed", ex.Message, StringComparison.Ordinal);
            Assert.Equal(bytes, File.ReadAllBytes(LedgerPath));
            Assert.Equal(before, Directory.GetFileSystemEntries(_directory));
        }
    }

    [Fact]
    public void RepairTornTail_OtherOwner_RefusedAndFileUntouched()
    {
        byte[] torn = TornLedger(3);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, "hospital-b", _time));

        Assert.Contains("belongs to 'hospital-a', not to 'hospital-b'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Backups());
    }

    [Fact]
    public void RepairTornTail_HealthyLedger_NothingChangedAndSaysSo()
    {
        byte[] whole = WriteEntries(3);

        LedgerRepairResult result = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time);

        Assert.False(result.Torn);
        Assert.False(result.Applied);
        Assert.Null(result.BackupPath);
        Assert.Equal(0, result.TornBytes.Length);
        Assert.Equal(3, result.Ledger.Entries.Count);
        Assert.Equal(whole, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Backups());
    }

    [Fact]
    public void RepairTornTail_BackupNameTaken_NeverOverwrittenAndLedgerUntouched()
    {
        byte[] torn = TornLedger(3);
        string taken = LedgerPath + ".torn-20261206T073000000Z"; // the name the fixed clock gives
        File.WriteAllText(taken, "an earlier backup");

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, new SteppingTimeProvider(new DateTimeOffset(2026, 12, 6, 7, 30, 0, TimeSpan.Zero))));

        Assert.Contains($"'{taken}' already exists and is never overwritten", ex.Message, StringComparison.Ordinal);
        Assert.Equal("an earlier backup", File.ReadAllText(taken));
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Single(Backups());
    }

    [Fact]
    public void RepairTornTail_WriterLockHeld_RefusedAndFileUntouched()
    {
        byte[] torn = TornLedger(3);
        using var running = new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); // as a running agent's audit log holds it

        IOException ex = Assert.Throws<IOException>(() => PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time));

        Assert.Contains($"lock file '{LockPath}' could not be taken", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was changed", ex.Message, StringComparison.Ordinal);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Empty(Backups());
    }

    [Fact]
    public void RepairTornTail_NoAuditFolder_RepairsWithoutALock()
    {
        Directory.Delete(Path.Combine(_directory, "audit"));
        byte[] torn = TornLedger(2);

        LedgerRepairResult done = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time);

        Assert.Null(done.LockPath);
        Assert.Equal(torn, File.ReadAllBytes(done.BackupPath!));
        Assert.Single(PrivacyLedger.Open(LedgerPath, Owner, _time).Entries);
        Assert.False(Directory.Exists(Path.Combine(_directory, "audit")));
    }

    [Fact]
    public void RepairTornTail_BeforeReplace_CalledOnceAfterTheBackupWhileTheLedgerIsStillTorn()
    {
        byte[] torn = TornLedger(3);
        int calls = 0;

        LedgerRepairResult done = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time, beforeReplace: planned =>
        {
            calls++;
            // What the CLI records in the audit log: the ledger is not replaced yet, the backup is already whole.
            Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
            Assert.Equal(torn, File.ReadAllBytes(planned.BackupPath!));
            Assert.True(planned.Applied);
            Assert.Equal(4, planned.TornLineNumber);
            Assert.Equal(2, planned.Ledger.Entries.Count);
            Assert.Equal(torn.Length - planned.TornBytes.Length, planned.KeptBytes);
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(torn.AsSpan(0, (int)planned.KeptBytes))), planned.KeptSha256);
        });

        Assert.Equal(1, calls);
        Assert.True(done.Applied);
        Assert.Equal(torn.AsSpan(0, (int)done.KeptBytes).ToArray(), File.ReadAllBytes(LedgerPath));
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(LedgerPath))), done.KeptSha256);
    }

    [Fact]
    public void RepairTornTail_DryRunOrNothingTorn_BeforeReplaceNotCalled()
    {
        byte[] torn = TornLedger(3);
        PrivacyLedger.RepairTornTail(LedgerPath, apply: false, LockPath, Owner, _time, beforeReplace: _ => Assert.Fail("called on a dry run"));
        File.WriteAllBytes(LedgerPath, torn[..(Array.LastIndexOf(torn, (byte)'\n') + 1)]);

        LedgerRepairResult healthy = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time, beforeReplace: _ => Assert.Fail("called with nothing torn"));

        Assert.False(healthy.Torn);
        Assert.Null(healthy.KeptSha256);
        Assert.Empty(Backups());
    }

    [Fact]
    public void RepairTornTail_BeforeReplaceThrows_LedgerUntouchedAndBackupKept()
    {
        byte[] torn = TornLedger(3);

        IOException ex = Assert.Throws<IOException>(() => PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time,
            beforeReplace: _ => throw new IOException("the audit log could not be written")));

        Assert.Equal("the audit log could not be written", ex.Message);
        Assert.Equal(torn, File.ReadAllBytes(LedgerPath));
        Assert.Equal(torn, File.ReadAllBytes(Assert.Single(Backups())));
    }

    [Fact]
    public void RepairTornTail_WriterLockHeldByTheCaller_NotTakenAgainAndNamed()
    {
        byte[] torn = TornLedger(3);
        using var callersAudit = new FileStream(LockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); // as the CLI's open audit log holds it

        LedgerRepairResult done = PrivacyLedger.RepairTornTail(LedgerPath, apply: true, LockPath, Owner, _time, writerLockHeld: true);

        Assert.True(done.Applied);
        Assert.Equal(LockPath, done.LockPath);
        Assert.Equal(torn, File.ReadAllBytes(done.BackupPath!));
        Assert.Equal(2, PrivacyLedger.OpenReadOnly(LedgerPath, _time).Entries.Count);
    }

    private byte[] WriteEntries(int count)
    {
        PrivacyLedger ledger = PrivacyLedger.Open(LedgerPath, Owner, _time);
        for (int i = 0; i < count; i++)
        {
            long round = (i / 2) + 1;
            if (i % 2 == 0)
            {
                ledger.Append(round, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.02, 1.1, 300), Delta);
            }
            else
            {
                ledger.Append(round, Guarantee.Site, PlannedMechanism.Zcdp(0.05), Delta);
            }
        }

        return File.ReadAllBytes(LedgerPath);
    }

    /// <summary>A ledger of <paramref name="count"/> entries whose last line lost its second half; returns the file's bytes.</summary>
    private byte[] TornLedger(int count)
    {
        byte[] whole = WriteEntries(count);
        int lastStart = Array.LastIndexOf(whole, (byte)'\n', whole.Length - 2) + 1;
        byte[] torn = whole[..((lastStart + whole.Length) / 2)];
        File.WriteAllBytes(LedgerPath, torn);
        return torn;
    }

    private string[] Backups() => Directory.GetFiles(_directory, "privacy-ledger.jsonl.torn-*");

    private double[] SpentOf(byte[] content)
    {
        string copy = Path.Combine(_directory, "reference.jsonl");
        File.WriteAllBytes(copy, content);
        double[] spent = Spent(PrivacyLedger.OpenReadOnly(copy));
        File.Delete(copy);
        return spent;
    }

    private static double[] Spent(PrivacyLedger ledger) =>
        [ledger.Spent(Guarantee.Record, Delta).Epsilon, ledger.Spent(Guarantee.Site, Delta).Epsilon, ledger.Spent(Guarantee.RecordCollusion, Delta).Epsilon];

    private static string Join(string[] lines, int index, Func<string, string> edit) =>
        string.Join('\n', lines.Select((l, i) => i == index ? edit(l) : l)) + "\n";

    /// <summary>A fixed clock that moves on by a millisecond each time it is read, so each backup gets its own name.</summary>
    private sealed class SteppingTimeProvider(DateTimeOffset start) : TimeProvider
    {
        private DateTimeOffset _now = start;

        public override DateTimeOffset GetUtcNow()
        {
            DateTimeOffset now = _now;
            _now += TimeSpan.FromMilliseconds(1);
            return now;
        }
    }
}
