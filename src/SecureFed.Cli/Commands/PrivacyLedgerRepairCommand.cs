using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed privacy ledger repair FILE [--apply] [--kit DIR]</c>: removes a torn last line (a crash or power loss in the
/// middle of an append) from a privacy ledger that otherwise verifies (<see cref="PrivacyLedger.RepairTornTail"/>). A dry run
/// unless <c>--apply</c> is given: the ledger is tamper-evident evidence, so the operator first sees exactly which bytes go
/// and what the ledger holds without them, and then asks for it. Holds the data folder's writer lock (<c>audit/.lock</c>,
/// held by a running agent or aggregator) throughout. A repair is recorded in the same data folder's signed audit log
/// (<see cref="AuditEvents.PrivacyLedgerRepaired"/>), signed with the identity key of the owner's kit (<c>--kit</c>); when
/// it cannot be recorded, it is refused and nothing is changed.
/// </summary>
internal static class PrivacyLedgerRepairCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "The privacy ledger (e.g. data/privacy-ledger.jsonl) whose last line is torn." };
        var apply = new Option<bool>("--apply")
        {
            Description = "Repair: keep the original file beside it as FILE.torn-<UTC time>, record the repair in the data folder's audit log (audit/, signed with --kit's key), " +
                "then replace FILE atomically with its complete lines. Without it, nothing is written (a dry run).",
        };
        var owner = new Option<string?>("--owner") { Description = "The owner the ledger must belong to (a site id, or aggregator:<federation>); refused otherwise." };
        var kit = new Option<string?>("--kit")
        {
            Description = "The kit folder of the ledger's owner (the site's, e.g. fed/sites/site-de, or the aggregator's): its identity key signs the audit log that records the repair. " +
                "Needed with --apply when a line is torn; a repair that cannot be recorded is refused.",
        };
        var repairAuditTail = new Option<bool>("--repair-torn-audit-tail")
        {
            Description = "With --apply: if the audit log's own last line is torn, move it to audit/quarantine/ (recorded as log.torn_tail_quarantined) instead of refusing, as the agent's RepairTornAuditTail does.",
        };
        var acceptReadableKeys = new Option<bool>("--accept-readable-keys")
        {
            Description = "Use --kit's identity key even if its group or other users may read it (not write it), as the agent's AcceptReadableKeys does for a " +
                "Kubernetes or Docker secret whose mode cannot be changed; a warning names the file, its mode and owner. Default: refused unless only its owner may read it.",
        };
        var delta = new Option<double>("--delta") { Description = "Delta for the totals.", DefaultValueFactory = _ => 1e-5 };
        var command = new Command(
            "repair",
            "Remove a torn last line (no terminating newline: the process died or the power failed in the middle of an append) from a privacy ledger. " +
            "Every complete line is verified as the agent verifies it (hash chain, sequence numbers, owner header, replayed epsilons); any other damage " +
            "is refused and nothing is changed. Safe because every append is on disk before anything it accounts for leaves the site, so the torn line " +
            "is a charge whose release never happened. A dry run unless --apply is given. The repair is recorded in the data folder's signed audit log " +
            "(a privacy.ledger_repaired event, signed with the key of --kit) before the ledger is replaced; when it cannot be recorded, nothing is changed. " +
            "Stop the agent or aggregator that uses the ledger first: the data folder's lock (audit/.lock) is held throughout, and a running one is refused.")
        {
            file,
            apply,
            owner,
            kit,
            repairAuditTail,
            acceptReadableKeys,
            delta,
        };
        command.SetAction((parse, ct) =>
        {
            double d = PrivacyCommands.LedgerDelta(parse.GetValue(delta));
            string full = PrivacyCommands.RequireLedgerFile(parse.GetValue(file)!);

            // The agent's and the aggregator's data folder: the ledger, and audit/ whose lock their audit log holds while they run.
            string auditDirectory = Path.Combine(Path.GetDirectoryName(full)!, "audit");
            string lockPath = Path.Combine(auditDirectory, AuditLog.LockFileName);
            string? expectedOwner = parse.GetValue(owner);
            if (parse.GetValue(apply))
            {
                // Before anything is written, the lock file included.
                RefuseIfOwnedByAnotherUser(full, [full, auditDirectory, Path.Combine(auditDirectory, AuditLog.LogFileName), lockPath],
                    parse.InvocationConfiguration.Error ?? Console.Error);
            }

            // First without writing anything, under the lock: a healthy ledger, or one damaged otherwise, needs no kit and
            // never touches the audit log. A lock file that does not exist is not created for it (no agent or aggregator
            // runs on the folder then, and a dry run as another user would leave one the agent cannot open).
            LedgerRepairResult result = PrivacyLedger.RepairTornTail(full, apply: false, File.Exists(lockPath) ? lockPath : null, expectedOwner);
            long? recordedAt = null;
            if (parse.GetValue(apply) && result.Torn)
            {
                (result, recordedAt) = RepairAndRecord(full, result.Ledger.Owner, auditDirectory, parse.GetValue(kit), parse.GetValue(repairAuditTail),
                    parse.GetValue(acceptReadableKeys), parse.InvocationConfiguration.Error ?? Console.Error);
            }

            parse.InvocationConfiguration.Output.Write(Describe(result, d, recordedAt, auditDirectory));
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    /// <summary>
    /// Repairs the ledger and records it in the audit log of its data folder, in this order: (1) the audit log is opened
    /// with the owner's kit (this takes the folder's lock, held until the end; the repair then runs under it instead of
    /// taking it again, which the same process could not) and verified, and the ledger is checked not to fall behind it;
    /// (2) the original is kept as a backup; (3) the <see cref="AuditEvents.PrivacyLedgerRepaired"/> line is appended
    /// (fsync'ed) and signed by a checkpoint; (4) the ledger is replaced atomically. The record comes before the change, so
    /// no crash leaves a repaired ledger the audit log does not account for: a process that dies between (3) and (4) leaves
    /// a logged repair of a ledger still torn (the agent still refuses to start), and running the repair again backs it up
    /// and logs it once more; an auditor sees two lines with the same torn bytes, the last one describing the ledger as it
    /// is. Dying before (3) leaves at most an extra backup, with the ledger and the log unchanged. Any failure up to (3)
    /// refuses the repair with the ledger unchanged (the audit log then holds the <see cref="AuditEvents.LogOpened"/> of
    /// this attempt, or nothing if it could not be opened).
    /// </summary>
    /// <returns>The repair, and the audit log line that records it (null when the ledger was no longer torn under the lock).</returns>
    private static (LedgerRepairResult Result, long? Line) RepairAndRecord(string full, string ledgerOwner, string auditDirectory, string? kitDirectory,
                                                                           bool repairTornAuditTail, bool acceptReadableKeys, TextWriter warnings)
    {
        string logPath = Path.Combine(auditDirectory, AuditLog.LogFileName);
        if (kitDirectory is null)
        {
            throw new UsageException(
                $"privacy ledger {full} was not repaired: the repair is recorded in the audit log {logPath}, signed with the identity key of the ledger owner's kit; " +
                "give that kit with --kit DIR (the folder with identity.key and federation.json, e.g. fed/sites/<site>). Nothing was changed.");
        }

        if (!File.Exists(logPath))
        {
            // The agent and the aggregator open their audit log before they first append to the ledger, so a torn ledger
            // without one beside it lost its log; they refuse to start on such a folder anyway.
            throw new InvalidDataException(
                $"Privacy ledger '{full}' was not repaired: the repair must be recorded in the audit log of its data folder, but '{logPath}' does not exist " +
                "(an agent or aggregator opens it before its first ledger append: it was deleted, moved or not restored with the ledger). " +
                "Nothing was changed; restore the audit folder from a backup beside the ledger, then run the repair again.");
        }

        using PartyKit party = LoadKit(full, kitDirectory, acceptReadableKeys);
        foreach (ReadableKeyFile key in party.ReadableKeys)
        {
            warnings.WriteLine($"warning: {key.Warning(party.Name)}");
        }

        string federation = party.Manifest.FederationName;
        (string actor, string origin, string kitOwner, string chargeEvent) = party.IsAggregator
            ? ("aggregator", $"securefed/{federation}/aggregator", "aggregator:" + federation, AuditEvents.PrivacySpent)
            : (party.Name, $"securefed/{federation}/{party.Name}", party.Name, AuditEvents.PrivacyLedger);
        if (!string.Equals(ledgerOwner, kitOwner, StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                $"Privacy ledger '{full}' belongs to '{ledgerOwner}', but the kit in {party.Directory} is the one of '{kitOwner}' (its key signs that party's audit log). " +
                "Give the kit of the ledger's owner with --kit. Nothing was changed.");
        }

        using AuditLog audit = OpenAudit(full, auditDirectory, actor, party.IdentityKey, origin, repairTornAuditTail);

        // From here the audit log holds the folder's lock: check again under it, then repair under it.
        string heldLock = Path.Combine(auditDirectory, AuditLog.LockFileName);
        LedgerRepairResult check = PrivacyLedger.RepairTornTail(full, apply: false, heldLock, kitOwner, writerLockHeld: true);
        if (!check.Torn)
        {
            return (check, null);
        }

        EnsureNotBehindAudit(check.Ledger, audit, chargeEvent);
        long? line = null;
        LedgerRepairResult result;
        try
        {
            result = PrivacyLedger.RepairTornTail(full, apply: true, heldLock, kitOwner, writerLockHeld: true, beforeReplace: planned =>
            {
                line = audit.Append(AuditEvents.PrivacyLedgerRepaired, f => Fields(f, planned));
                audit.Checkpoint();
            });
        }
        catch (Exception ex) when (line is not null && ex is IOException or UnauthorizedAccessException or InvalidDataException or InvalidOperationException)
        {
            // The failure may come after the rename (the folder's fsync, the re-read): say what the file on disk is now.
            throw new IOException(LedgerNowHoldsKeptLines(full, check)
                ? string.Create(CultureInfo.InvariantCulture,
                    $"Privacy ledger '{full}' was replaced with its complete lines and the repair is recorded in the audit log '{logPath}' at line {line} " +
                    $"({AuditEvents.PrivacyLedgerRepaired}), but the repair did not finish ({ex.Message}): the replacement may not be durable yet. " +
                    $"Check the disk; a dry run of the repair shows the ledger's state.")
                : string.Create(CultureInfo.InvariantCulture,
                    $"Privacy ledger '{full}' was not replaced ({ex.Message}), but the audit log '{logPath}' already records its repair at line {line} " +
                    $"({AuditEvents.PrivacyLedgerRepaired}). The ledger is as it was and still torn; run the repair again: it keeps another backup and records the repair once more."), ex);
        }

        return (result, line);
    }

    /// <summary>Whether <paramref name="full"/> now holds exactly the complete lines <paramref name="planned"/> keeps (its size and SHA-256).</summary>
    internal static bool LedgerNowHoldsKeptLines(string full, LedgerRepairResult planned)
    {
        try
        {
            byte[] now = File.ReadAllBytes(full);
            return now.LongLength == planned.KeptBytes
                && string.Equals(Convert.ToHexStringLower(SHA256.HashData(now)), planned.KeptSha256, StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The owner's kit; a folder that is no kit is a mistake in the command.</summary>
    private static PartyKit LoadKit(string full, string kitDirectory, bool acceptReadableKeys)
    {
        string dir = Path.GetFullPath(kitDirectory);
        if (!Directory.Exists(dir))
        {
            throw new UsageException($"--kit {dir} is not a folder; give the kit folder of the ledger's owner (privacy ledger {full} was not repaired).");
        }

        try
        {
            return PartyKit.Load(dir, acceptReadableKeys, "--accept-readable-keys");
        }
        catch (InvalidDataException ex)
        {
            throw new InvalidDataException(
                $"Privacy ledger '{full}' was not repaired: the kit in {dir} whose identity key signs the audit log cannot be loaded ({ex.Message}). Nothing was changed.", ex);
        }
    }

    /// <summary>
    /// Refuses the repair, before anything is written, when another user than the one this command runs as owns the ledger
    /// or its audit log (e.g. the repair run with sudo for an agent that runs as its own user): the replaced ledger, its
    /// backup and the audit log's new lines and files would belong to this command's user, and the agent could no longer
    /// write them (before, session 55: documented only, "run it as the user the agent runs as"). Where the owners cannot be
    /// read (not Linux, or statx refused by a sandbox) the check is skipped with a warning on <paramref name="warnings"/>.
    /// </summary>
    private static void RefuseIfOwnedByAnotherUser(string ledger, string[] paths, TextWriter warnings)
    {
        (string Path, uint Owner)? other;
        try
        {
            other = FileOwner.FirstOwnedByAnother(paths);
        }
        catch (Exception ex) when (ex is IOException or EntryPointNotFoundException or DllNotFoundException)
        {
            warnings.WriteLine($"warning: the owners of the ledger and its audit log could not be read ({ex.Message}); run the repair as the user the agent or aggregator runs as.");
            return;
        }

        if (other is not (string path, uint owner))
        {
            return;
        }

        string user = FileOwner.Describe(owner);
        throw new InvalidDataException(
            $"Privacy ledger '{ledger}' was not repaired: '{path}' belongs to {user}, but this command runs as {FileOwner.Describe(FileOwner.EffectiveUserId())}. " +
            $"The repaired ledger, its backup and the audit log's new lines would belong to this command's user, and the agent or aggregator running as {user} " +
            "could no longer write them. Run the repair as that user (e.g. sudo -u <that user> securefed privacy ledger repair …). Nothing was changed.");
    }

    /// <summary>
    /// Opens the audit log as its writer does (verifying every line, the newest checkpoint and the verifier key), which
    /// takes the data folder's lock; any failure refuses the repair with nothing changed.
    /// </summary>
    private static AuditLog OpenAudit(string full, string auditDirectory, string actor, SecureFed.Crypto.Ed25519PrivateKey key, string origin, bool repairTornAuditTail)
    {
        const string Refused = "The ledger was not changed: a repair that cannot be recorded in the signed audit log is not made.";
        try
        {
            return AuditLog.Open(auditDirectory, actor, key, origin, repairTornAuditTail);
        }
        catch (InvalidDataException ex) when (ex.InnerException is AuditLogTornTailException torn)
        {
            throw new InvalidDataException(
                $"Privacy ledger '{full}' was not repaired: {torn.Explain("To move the torn bytes to audit/quarantine/ (kept there; a log.torn_tail_quarantined event records their size and SHA-256) and go on, run the repair again with --repair-torn-audit-tail.")} {Refused}", ex);
        }
        catch (Exception ex) when (ex is InvalidDataException or InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"Privacy ledger '{full}' was not repaired: its audit log '{auditDirectory}' cannot be opened to record the repair ({ex.Message}). {Refused}", ex);
        }
    }

    /// <summary>
    /// The owner's start-up check (<c>AgentState</c>, <c>AggregatorState</c>): the repaired ledger must hold every charge
    /// its audit log records, or the owner refuses to start on it. A torn line was never logged (it is logged after its
    /// append), so this fails only for a ledger that lost more than its torn line; then nothing is repaired.
    /// </summary>
    private static void EnsureNotBehindAudit(PrivacyLedger ledger, AuditLog audit, string chargeEvent)
    {
        foreach (AuditedPrivacy charged in audit.ReadPrivacyCharges(chargeEvent))
        {
            if (GuaranteeNames.TryParse(charged.Guarantee, out Guarantee guarantee))
            {
                foreach (AuditedEpsilon highest in charged.HighestByDelta)
                {
                    try
                    {
                        ledger.EnsureNotBehind(guarantee, charged.Entries, highest.Epsilon, highest.Delta, highest.Source);
                    }
                    catch (InvalidDataException ex)
                    {
                        throw new InvalidDataException(
                            $"{ex.Message} Without its torn line the ledger would be behind its audit log, so this is more than a crash in the middle of an append; the ledger was not repaired.", ex);
                    }
                }
            }
        }
    }

    /// <summary>The fields of <see cref="AuditEvents.PrivacyLedgerRepaired"/>: file names only (relative to the data folder), never a path.</summary>
    private static void Fields(AuditFields fields, LedgerRepairResult planned)
    {
        IReadOnlyList<LedgerEntry> entries = planned.Ledger.Entries;
        fields.Add("file", Path.GetFileName(planned.FilePath))
            .Add("line", planned.TornLineNumber)
            .Add(AuditFieldNames.Bytes, planned.TornBytes.Length)
            .AddDigest(AuditFieldNames.Sha256, SHA256.HashData(planned.TornBytes.Span))
            .Add("original_bytes", planned.OriginalBytes)
            .Add("kept_bytes", planned.KeptBytes)
            .Add("kept_sha256", planned.KeptSha256)
            .Add("backup", Path.GetFileName(planned.BackupPath))
            .Add("entries", entries.Count)
            .AddObject("kept", kept =>
            {
                foreach (IGrouping<Guarantee, LedgerEntry> group in entries.GroupBy(e => e.Guarantee))
                {
                    LedgerEntry last = group.Last();
                    kept.AddObject(GuaranteeNames.Of(group.Key), g => g
                        .Add("entries", group.Count())
                        .Add(AuditFieldNames.Epsilon, last.EpsilonAfter)
                        .Add(AuditFieldNames.Delta, last.Delta));
                }
            });
    }

    /// <summary>What was found and done, and the ledger's state after (or, for a dry run, as it would be).</summary>
    private static string Describe(LedgerRepairResult result, double delta, long? recordedAt, string auditDirectory)
    {
        var text = new StringBuilder();
        PrivacyLedger ledger = result.Ledger;
        text.Append(CultureInfo.InvariantCulture, $"Privacy ledger {result.FilePath} (owner {ledger.Owner})\n");
        if (!result.Torn)
        {
            text.Append(CultureInfo.InvariantCulture, $"Its last line is complete and all {ledger.Entries.Count + 1} lines verify (hash chain, owner header, replayed epsilons): nothing to repair; nothing was changed.\n");
            AppendState(text, "State", ledger, delta);
            return text.ToString();
        }

        long kept = result.OriginalBytes - result.TornBytes.Length;
        text.Append(CultureInfo.InvariantCulture,
            $"Line {result.TornLineNumber} is torn: its last {result.TornBytes.Length} bytes (of {result.OriginalBytes}) have no terminating newline, as a crash or power loss in the middle of an append leaves them.\n");
        text.Append(CultureInfo.InvariantCulture, $"  torn bytes (SHA-256 {result.TornSha256}): {result.TornText()}\n");
        text.Append(CultureInfo.InvariantCulture,
            $"Lines 1..{result.TornLineNumber - 1} ({kept} bytes) verify: hash chain, sequence numbers, owner header, replayed epsilons.\n");
        if (result.Applied)
        {
            text.Append(CultureInfo.InvariantCulture, $"Repaired: removed the {result.TornBytes.Length} torn bytes; the original file is kept byte for byte as {result.BackupPath}.\n");
            text.Append(CultureInfo.InvariantCulture,
                $"Recorded before the ledger was replaced: {Path.Combine(auditDirectory, AuditLog.LogFileName)} line {recordedAt} ({AuditEvents.PrivacyLedgerRepaired}: the torn bytes' count and SHA-256, the backup's name, the entries and epsilons kept), signed by a checkpoint.\n");
            AppendState(text, "State after the repair (re-read and verified)", ledger, delta);
        }
        else
        {
            AppendState(text, "State after the repair", ledger, delta);
            text.Append(CultureInfo.InvariantCulture,
                $"Dry run: nothing was changed. Run again with --apply --kit <the owner's kit folder> to keep the original as {result.FilePath}.torn-<UTC time>, record the repair in {Path.Combine(auditDirectory, AuditLog.LogFileName)} ({AuditEvents.PrivacyLedgerRepaired}, signed with the kit's identity key) and replace the ledger atomically with lines 1..{result.TornLineNumber - 1}.\n");
        }

        text.Append(result.LockPath is null
            ? "No audit folder beside the ledger: no agent or aggregator lock to hold (none ran on this folder).\n"
            : $"Held the data folder's lock {result.LockPath} throughout: no agent or aggregator was running on it.\n");
        // What the removal rests on, and what still checks it.
        text.Append("The torn line was being appended when its writer stopped: an agent's append is on disk before what it accounts for is sent, so it stands for nothing " +
            "that left; the aggregator charges again at start-up a round whose charge is missing. At start-up both still compare the ledger with their signed audit log " +
            "and refuse to start if it shows a charge the ledger lacks.\n");
        return text.ToString();
    }

    private static void AppendState(StringBuilder text, string title, PrivacyLedger ledger, double delta)
    {
        IReadOnlyList<LedgerEntry> entries = ledger.Entries;
        string last = entries.Count > 0 ? string.Create(CultureInfo.InvariantCulture, $", the last for round {entries[^1].Round}") : "";
        text.Append(CultureInfo.InvariantCulture,
            $"{title}: {entries.Count} entries{last}; at delta {PrivacyCommands.FormatDelta(delta)}: " +
            $"record-level epsilon {ledger.Spent(Guarantee.Record, delta).Epsilon:F4}, site-level epsilon {ledger.Spent(Guarantee.Site, delta).Epsilon:F4}");
        if (entries.Any(e => e.Guarantee == Guarantee.RecordCollusion))
        {
            text.Append(CultureInfo.InvariantCulture, $", record-level epsilon if the aggregator and all other sites collude {ledger.Spent(Guarantee.RecordCollusion, delta).Epsilon:F4}");
        }

        text.Append(".\n");
    }
}
