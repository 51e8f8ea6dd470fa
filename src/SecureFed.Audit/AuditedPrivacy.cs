using System.Globalization;
using System.Text.Json;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit;

/// <summary>
/// What an audit log records of one privacy guarantee's charges (<see cref="AuditLog.ReadPrivacyCharges"/>): how many
/// lines name the guarantee, and per δ the line with the highest ε. A party logs each ledger entry right after appending
/// it, so its ledger may hold no less; the ledger's hash chain needs no key, and only this signed record shows that a
/// ledger was deleted, cut short or replaced by an older copy.
/// </summary>
/// <param name="Guarantee">The line's <c>guarantee</c> text, e.g. <c>record</c> or <c>site</c>.</param>
/// <param name="Entries">Lines naming the guarantee.</param>
/// <param name="HighestByDelta">Per δ in (0, 1), the line with the highest finite ε.</param>
public sealed record AuditedPrivacy(string Guarantee, long Entries, IReadOnlyList<AuditedEpsilon> HighestByDelta)
{
    /// <summary>Groups <paramref name="lines"/> by their <c>guarantee</c> text; a line without one counts nowhere.</summary>
    internal static IReadOnlyList<AuditedPrivacy> Of(IEnumerable<AuditEvent> lines, string logPath) =>
        [.. lines
            .Where(e => e.Fields.TryGetProperty(AuditFieldNames.Guarantee, out JsonElement g) && g.ValueKind == JsonValueKind.String)
            .GroupBy(e => e.Fields.GetProperty(AuditFieldNames.Guarantee).GetString()!, StringComparer.Ordinal)
            .Select(byGuarantee => new AuditedPrivacy(byGuarantee.Key, byGuarantee.Count(), HighestByDeltaOf(byGuarantee, logPath)))];

    private static IReadOnlyList<AuditedEpsilon> HighestByDeltaOf(IEnumerable<AuditEvent> lines, string logPath) =>
        [.. lines
            .Where(e => LogView.Number(e.Fields, AuditFieldNames.Epsilon) is { } eps && double.IsFinite(eps)
                && LogView.Number(e.Fields, AuditFieldNames.Delta) is > 0 and < 1)
            .GroupBy(e => LogView.Number(e.Fields, AuditFieldNames.Delta)!.Value)
            .Select(byDelta =>
            {
                AuditEvent top = byDelta.MaxBy(e => LogView.Number(e.Fields, AuditFieldNames.Epsilon)!.Value)!;
                return new AuditedEpsilon(byDelta.Key, LogView.Number(top.Fields, AuditFieldNames.Epsilon)!.Value, string.Create(
                    CultureInfo.InvariantCulture,
                    $"the audit log '{logPath}' (line {top.Line}, round {LogView.Number(top.Fields, AuditFieldNames.Round)})"));
            })];
}

/// <summary>The highest ε an audit log records for a guarantee at <paramref name="Delta"/>.</summary>
/// <param name="Delta">The δ.</param>
/// <param name="Epsilon">The highest ε logged at that δ.</param>
/// <param name="Source">Where: the log's path, the line and its round, for a message.</param>
public sealed record AuditedEpsilon(double Delta, double Epsilon, string Source);
