using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;

namespace SecureFed.Agent;

/// <summary>
/// What an agent keeps on disk in its data directory: the privacy ledger (both guarantees), its audit log and the last
/// global model. Opening it checks that the kit is this site's and that the ledger and log are intact.
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

    /// <summary>Audit log folder under a data directory.</summary>
    public static string AuditDirectory(string dataDirectory) => Path.Combine(dataDirectory, "audit");

    /// <summary>How the operator repairs a torn audit log, as they type it.</summary>
    internal const string TornTailHint = "To move the torn bytes to audit/quarantine/ (kept there, nothing is deleted; an audit event records their size and SHA-256) and continue, start once with --SecureFed:RepairTornAuditTail=true, or set \"RepairTornAuditTail\": true in the config file's SecureFed section.";

    /// <summary>Opens the state; errors name the file at fault.</summary>
    public static AgentState Open(AgentOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        PartyKit kit = PartyKit.Load(options.KitDirectory);
        if (kit.Name != options.Site)
        {
            kit.Dispose();
            throw new InvalidDataException($"SecureFed:Site is '{options.Site}' but the kit in {options.KitDirectory} belongs to '{kit.Name}'.");
        }

        PrivacyLedger? ledger = null;
        try
        {
            Directory.CreateDirectory(options.DataDirectory);
            ledger = PrivacyLedger.Open(Path.Combine(options.DataDirectory, "privacy-ledger.jsonl"), options.Site);
            AuditLog audit;
            try
            {
                audit = AuditLog.Open(AuditDirectory(options.DataDirectory), options.Site, kit.IdentityKey, $"securefed/{kit.Manifest.FederationName}/{options.Site}", options.RepairTornAuditTail);
            }
            catch (InvalidDataException ex) when (ex.InnerException is AuditLogTornTailException torn)
            {
                throw new InvalidDataException(torn.Explain(TornTailHint), ex);
            }

            return new AgentState(kit, ledger, audit);
        }
        catch
        {
            kit.Dispose();
            throw;
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
