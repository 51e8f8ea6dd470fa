using System.CommandLine;
using System.Globalization;
using System.Text;

using SecureFed.Audit;
using SecureFed.Privacy;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed privacy ledger repair FILE [--apply]</c>: removes a torn last line (a crash or power loss in the middle of
/// an append) from a privacy ledger that otherwise verifies (<see cref="PrivacyLedger.RepairTornTail"/>). A dry run unless
/// <c>--apply</c> is given: the ledger is tamper-evident evidence, so the operator first sees exactly which bytes go and
/// what the ledger holds without them, and then asks for it. Holds the data folder's writer lock (<c>audit/.lock</c>, held
/// by a running agent or aggregator) throughout.
/// </summary>
internal static class PrivacyLedgerRepairCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("FILE") { Description = "The privacy ledger (e.g. data/privacy-ledger.jsonl) whose last line is torn." };
        var apply = new Option<bool>("--apply")
        {
            Description = "Repair: keep the original file beside it as FILE.torn-<UTC time>, then replace FILE atomically with its complete lines. Without it, nothing is written (a dry run).",
        };
        var owner = new Option<string?>("--owner") { Description = "The owner the ledger must belong to (a site id, or aggregator:<federation>); refused otherwise." };
        var delta = new Option<double>("--delta") { Description = "Delta for the totals.", DefaultValueFactory = _ => 1e-5 };
        var command = new Command(
            "repair",
            "Remove a torn last line (no terminating newline: the process died or the power failed in the middle of an append) from a privacy ledger. " +
            "Every complete line is verified as the agent verifies it (hash chain, sequence numbers, owner header, replayed epsilons); any other damage " +
            "is refused and nothing is changed. Safe because every append is on disk before anything it accounts for leaves the site, so the torn line " +
            "is a charge whose release never happened. A dry run unless --apply is given. Stop the agent or aggregator that uses the ledger first: " +
            "the data folder's lock (audit/.lock) is held throughout, and a running one is refused.")
        {
            file,
            apply,
            owner,
            delta,
        };
        command.SetAction((parse, ct) =>
        {
            double d = PrivacyCommands.LedgerDelta(parse.GetValue(delta));
            string full = PrivacyCommands.RequireLedgerFile(parse.GetValue(file)!);

            // The agent's and the aggregator's data folder: the ledger, and audit/ whose lock their audit log holds while they run.
            string lockPath = Path.Combine(Path.GetDirectoryName(full)!, "audit", AuditLog.LockFileName);
            bool applying = parse.GetValue(apply);
            LedgerRepairResult result = PrivacyLedger.RepairTornTail(full, applying, lockPath, parse.GetValue(owner));
            parse.InvocationConfiguration.Output.Write(Describe(result, d));
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    /// <summary>What was found and done, and the ledger's state after (or, for a dry run, as it would be).</summary>
    private static string Describe(LedgerRepairResult result, double delta)
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
            AppendState(text, "State after the repair (re-read and verified)", ledger, delta);
        }
        else
        {
            AppendState(text, "State after the repair", ledger, delta);
            text.Append(CultureInfo.InvariantCulture,
                $"Dry run: nothing was changed. Run again with --apply to keep the original as {result.FilePath}.torn-<UTC time> and replace the ledger atomically with lines 1..{result.TornLineNumber - 1}.\n");
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
