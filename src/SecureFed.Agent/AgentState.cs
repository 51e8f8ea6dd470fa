using System.Globalization;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;

namespace SecureFed.Agent;

/// <summary>
/// What an agent keeps on disk in its data directory: the privacy ledger (both guarantees), its audit log and the last
/// global model. Opening it checks that the kit is this site's, that the ledger and log are intact, and that the ledger
/// holds every entry the log shows was charged.
/// </summary>
public sealed class AgentState : IDisposable
{
    private AgentState(PartyKit kit, PrivacyLedger ledger, AuditLog audit)
    {
        Kit = kit;
        Ledger = ledger;
        Audit = audit;
    }

    /// <summary>The site's kit.</summary>
    public PartyKit Kit { get; }

    /// <summary>The site's privacy ledger.</summary>
    public PrivacyLedger Ledger { get; }

    /// <summary>The site's audit log.</summary>
    public AuditLog Audit { get; }

    /// <summary>File name of the privacy ledger in the data directory.</summary>
    public const string LedgerFileName = "privacy-ledger.jsonl";

    /// <summary>Audit log folder under a data directory.</summary>
    public static string AuditDirectory(string dataDirectory) => Path.Combine(dataDirectory, "audit");

    /// <summary>How the operator repairs a torn audit log, as they type it.</summary>
    internal const string TornTailHint = "To move the torn bytes to audit/quarantine/ (kept there, nothing is deleted; an audit event records their size and SHA-256) and continue, start once with --SecureFed:RepairTornAuditTail=true, or set \"RepairTornAuditTail\": true in the config file's SecureFed section.";

    /// <summary>Opens the state; errors name the file at fault.</summary>
    public static AgentState Open(AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        PartyKit kit = PartyKit.Load(options.KitDirectory, options.AcceptReadableKeys, "setting SecureFed:AcceptReadableKeys to true");
        if (kit.Name != options.Site)
        {
            kit.Dispose();
            throw new InvalidDataException($"SecureFed:Site is '{options.Site}' but the kit in {options.KitDirectory} belongs to '{kit.Name}'.");
        }

        AuditLog? audit = null;
        string ledgerPath = Path.Combine(options.DataDirectory, LedgerFileName);
        bool ledgerExisted = false;
        try
        {
            Directory.CreateDirectory(options.DataDirectory);
            ledgerExisted = File.Exists(ledgerPath);
            PrivacyLedger ledger = PrivacyLedger.Open(ledgerPath, options.Site);
            if (LostAudit(ledger, options.DataDirectory) is { } lost)
            {
                throw lost;
            }

            try
            {
                audit = AuditLog.Open(AuditDirectory(options.DataDirectory), options.Site, kit.IdentityKey, $"securefed/{kit.Manifest.FederationName}/{options.Site}", options.RepairTornAuditTail);
            }
            catch (InvalidDataException ex) when (ex.InnerException is AuditLogTornTailException torn)
            {
                throw new InvalidDataException(torn.Explain(TornTailHint), ex);
            }

            EnsureLedgerNotBehindAudit(ledger, audit);
            return new AgentState(kit, ledger, audit);
        }
        catch
        {
            audit?.Dispose();
            kit.Dispose();
            if (!ledgerExisted)
            {
                // Only the header this call just wrote: leave the folder as it was, so a ledger restored from a backup
                // does not meet a new, empty one in its place.
                try
                {
                    File.Delete(ledgerPath);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                }
            }

            throw;
        }
    }

    /// <summary>
    /// Every ledger entry is logged to the audit log right after it is appended, so a ledger with entries beside no audit
    /// log means the log was deleted, moved or not restored with the ledger: a new log in its place would verify on its own
    /// while holding none of those charges (an auditor could no longer check what left the site). Checked before the
    /// audit folder is created.
    /// </summary>
    private static InvalidDataException? LostAudit(PrivacyLedger ledger, string dataDirectory)
    {
        string logPath = Path.GetFullPath(Path.Combine(AuditDirectory(dataDirectory), AuditLog.LogFileName));
        if (ledger.Entries.Count == 0 || File.Exists(logPath))
        {
            return null;
        }

        return new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
            $"Audit log '{logPath}' is missing, but the privacy ledger '{ledger.FilePath}' holds {ledger.Entries.Count} charge(s) (the last for round {ledger.Entries[^1].Round}): ") +
            "the audit log was deleted, moved or not restored with the ledger. Starting would begin a new log without those charges, which auditors could then no longer verify; " +
            "nothing was started. Restore the audit folder from a backup, or give the agent another data directory.");
    }

    /// <summary>
    /// The agent logs every ledger entry of the record and site guarantees to its signed audit log right after appending it
    /// (<see cref="AuditEvents.PrivacyLedger"/>). A ledger with fewer entries, or less ε spent, than that log shows was
    /// deleted, cut short or replaced by an older copy; its hash chain cannot tell, and the agent would believe it has more
    /// budget left than it has.
    /// </summary>
    private static void EnsureLedgerNotBehindAudit(PrivacyLedger ledger, AuditLog audit)
    {
        foreach (AuditedPrivacy charged in audit.ReadPrivacyCharges(AuditEvents.PrivacyLedger))
        {
            if (GuaranteeNames.TryParse(charged.Guarantee, out Guarantee guarantee))
            {
                foreach (AuditedEpsilon highest in charged.HighestByDelta)
                {
                    ledger.EnsureNotBehind(guarantee, charged.Entries, highest.Epsilon, highest.Delta, highest.Source);
                }
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        try
        {
            Audit.Checkpoint();
        }
        catch (InvalidOperationException)
        {
            // nothing new to sign
        }

        Audit.Dispose();
        Kit.Dispose();
    }
}
