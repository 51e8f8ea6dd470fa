using System.Globalization;
using SecureFed.Privacy;

namespace SecureFed.Aggregator;

/// <summary>
/// The federation-level ledger of the site guarantee (update-level distributed DP): the zCDP cost ρ of every round whose
/// unmasking request went out (completed, or aborted or interrupted after it, when the sum may have been unmasked) is appended to a <see cref="PrivacyLedger"/> file, and a round is only opened when ε after it (at the
/// federation's δ, worst case with only t survivors) stays within budget.
/// </summary>
public sealed class FederationBudget
{
    private readonly PrivacyLedger _ledger;

    private FederationBudget(PrivacyLedger ledger) => _ledger = ledger;

    /// <summary>Opens (or creates) the ledger; a corrupt ledger is a hard error.</summary>
    public static FederationBudget Open(string path, string federation) => new(PrivacyLedger.Open(path, "aggregator:" + federation));

    /// <summary>Checks whether a round costing ρ fits the budget.</summary>
    public BudgetDecision Check(double rho, double budgetEpsilon, double delta)
    {
        LedgerDecision d = _ledger.Check(Guarantee.Site, PlannedMechanism.Zcdp(rho), budgetEpsilon, delta);
        return new BudgetDecision(d.Allowed, d.EpsilonBefore, d.EpsilonAfter, d.Reason);
    }

    /// <summary>Records a completed round's cost; returns ε spent after it.</summary>
    public double Record(long round, double rho, double delta)
    {
        LedgerEntry entry = _ledger.Append(round, Guarantee.Site, PlannedMechanism.Zcdp(rho), delta);
        return entry.EpsilonAfter;
    }

    /// <summary>
    /// The site-level cost recorded for <paramref name="round"/>: ρ, ε spent after it and the δ that ε is at (the δ of
    /// when it was charged, which a restart with another <c>Delta</c> does not change); null when it was not charged.
    /// </summary>
    public (double Rho, double EpsilonAfter, double Delta)? Charge(long round) =>
        _ledger.Entries.LastOrDefault(e => e.Round == round && e.Guarantee == Guarantee.Site) is { Mechanism: ZcdpMechanism zcdp } entry
            ? (zcdp.Rho, entry.EpsilonAfter, entry.Delta)
            : null;

    /// <summary>
    /// ε spent after <paramref name="round"/>: ε after the last site-level charge of that round or an earlier one (0 when
    /// none), what an aborted attempt's outcome reported when it ended, read back later (rounds are charged in order).
    /// </summary>
    public double SpentAfter(long round) =>
        _ledger.Entries.LastOrDefault(e => e.Round <= round && e.Guarantee == Guarantee.Site)?.EpsilonAfter ?? 0;

    /// <summary>Whether a site-level cost was recorded for <paramref name="round"/> (a round is charged once).</summary>
    public bool Charged(long round) => Charge(round) is not null;

    /// <summary>
    /// Checks the ledger against the aggregator's audit log, which records every entry as <c>privacy.spent</c> right after it
    /// is appended: <paramref name="count"/> entries and <paramref name="epsilon"/> spent at <paramref name="delta"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The ledger is behind (deleted, cut short or an older copy).</exception>
    public void EnsureNotBehind(long count, double epsilon, double delta, string source) =>
        _ledger.EnsureNotBehind(Guarantee.Site, count, epsilon, delta, source);

    /// <summary>ε spent so far at δ.</summary>
    public double Spent(double delta) => _ledger.Spent(Guarantee.Site, delta).Epsilon;

    /// <summary>A short description for status output.</summary>
    public string Describe(double delta) => $"site-level ε = {Spent(delta).ToString("F3", CultureInfo.InvariantCulture)} (δ = {delta.ToString("G3", CultureInfo.InvariantCulture)})";
}
