using Microsoft.Data.Sqlite;

namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The sites found at fault (table <c>site_exclusions</c>, schema version 4): one row per site with the round attempts it
/// still sits out, its blame count and the round of its last blame, so that an excluded site stays excluded across a
/// restart of the aggregator (and, with the rest of this database, a takeover of the cluster's coordinator).
/// </summary>
public sealed partial class AggregatorStore
{
    /// <summary>
    /// Writes <paramref name="exclusions"/> in one transaction, each replacing the row of its site (a site with 0 attempts
    /// left keeps its row, and so its blame count). Nothing is written when it is empty.
    /// </summary>
    /// <exception cref="ArgumentException">A site's name is empty, or a count or round is out of range (attempts left
    /// below 0, blame count below 1, round below 1); nothing was written.</exception>
    public void SaveExclusions(IReadOnlyCollection<SiteExclusionRecord> exclusions)
    {
        ArgumentNullException.ThrowIfNull(exclusions);
        foreach (SiteExclusionRecord exclusion in exclusions)
        {
            ArgumentNullException.ThrowIfNull(exclusion, nameof(exclusions));
            if (string.IsNullOrWhiteSpace(exclusion.Site) || exclusion.AttemptsLeft < 0 || exclusion.BlameCount < 1 || exclusion.LastBlamedRound < 1)
            {
                throw new ArgumentException(
                    $"Cannot save the exclusion of site '{exclusion.Site}': {exclusion.AttemptsLeft} attempts left, blamed {exclusion.BlameCount} times, last in round {exclusion.LastBlamedRound} (a name, at least 0 attempts, 1 blame and round 1 are required); nothing was written.",
                    nameof(exclusions));
            }
        }

        if (exclusions.Count == 0)
        {
            return;
        }

        Run(() =>
        {
            using SqliteTransaction tx = _connection.BeginTransaction();
            string now = Now();
            foreach (SiteExclusionRecord exclusion in exclusions)
            {
                Execute(
                    _connection,
                    tx,
                    """
                    INSERT INTO site_exclusions (site, attempts_left, blame_count, last_blamed_round, updated_utc)
                        VALUES ($site, $left, $count, $round, $now)
                    ON CONFLICT (site) DO UPDATE SET attempts_left = excluded.attempts_left, blame_count = excluded.blame_count,
                        last_blamed_round = excluded.last_blamed_round, updated_utc = excluded.updated_utc;
                    """,
                    ("$site", exclusion.Site),
                    ("$left", exclusion.AttemptsLeft),
                    ("$count", exclusion.BlameCount),
                    ("$round", exclusion.LastBlamedRound),
                    ("$now", now));
            }

            tx.Commit();
        });
    }

    /// <summary>
    /// Every site's row as stored, by name, unchecked: the caller (<c>RoundCoordinator</c>, at start-up) decides which rows it
    /// can use; a row with a count out of range (only a file edited outside SecureFed has one) or of a site that is no
    /// longer in the federation is left in the database as it is.
    /// </summary>
    public IReadOnlyList<SiteExclusionRecord> ListExclusions() => Run(() =>
    {
        using SqliteCommand cmd = Command(_connection, null, "SELECT site, attempts_left, blame_count, last_blamed_round FROM site_exclusions ORDER BY site;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        var exclusions = new List<SiteExclusionRecord>();
        while (reader.Read())
        {
            exclusions.Add(new SiteExclusionRecord(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
        }

        return (IReadOnlyList<SiteExclusionRecord>)exclusions;
    });
}
