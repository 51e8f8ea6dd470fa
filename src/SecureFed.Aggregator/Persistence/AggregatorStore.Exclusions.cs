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
    public IReadOnlyList<SiteExclusionRecord> ListExclusions() => Run(() => ExclusionRows(_connection));

    /// <summary>
    /// The rows of the stopped aggregator's store at <paramref name="path"/> (<c>securefed aggregator exclusions</c>), by
    /// site; none for a store made before schema version 4. The store is held exclusively while it is read.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">An aggregator has the store open, or it cannot be read.</exception>
    /// <exception cref="InvalidDataException">The file is not a SecureFed aggregator database.</exception>
    public static IReadOnlyList<SiteExclusionRecord> ReadExclusions(string path)
    {
        string fullPath = ExistingStorePath(path, "read the exclusions of");
        using SqliteConnection connection = OpenExclusive(fullPath, "read the exclusions of");
        try
        {
            return ExclusionRows(connection);
        }
        catch (SqliteException ex)
        {
            throw Translate(ex, fullPath);
        }
    }

    /// <summary>
    /// Deletes the row of <paramref name="site"/> from the stopped aggregator's store at <paramref name="path"/>
    /// (<c>securefed aggregator exclusions --clear</c>): the site is no longer excluded when the aggregator starts, and its
    /// blame count starts again from 0 (an operator's remedy when an honest site was framed, threat model C18). Returns
    /// the row as it was.
    /// </summary>
    /// <exception cref="FileNotFoundException">There is no file at <paramref name="path"/>.</exception>
    /// <exception cref="IOException">An aggregator has the store open, or it cannot be written; nothing was changed.</exception>
    /// <exception cref="InvalidDataException">The file is not a SecureFed aggregator database.</exception>
    /// <exception cref="KeyNotFoundException">The store keeps no row for <paramref name="site"/> (the message lists the sites it keeps); nothing was changed.</exception>
    public static SiteExclusionRecord ClearExclusion(string path, string site)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(site);
        string fullPath = ExistingStorePath(path, "clear an exclusion in");
        using SqliteConnection connection = OpenExclusive(fullPath, "clear an exclusion in");
        try
        {
            IReadOnlyList<SiteExclusionRecord> rows = ExclusionRows(connection);
            SiteExclusionRecord row = rows.FirstOrDefault(r => string.Equals(r.Site, site, StringComparison.Ordinal))
                ?? throw new KeyNotFoundException(rows.Count == 0
                    ? $"Aggregator database '{fullPath}' keeps no blamed or excluded site; nothing was changed."
                    : $"Aggregator database '{fullPath}' keeps no exclusion of site '{site}' (it keeps: {string.Join(", ", rows.Select(r => r.Site))}); nothing was changed.");
            using SqliteTransaction tx = connection.BeginTransaction();
            Execute(connection, tx, "DELETE FROM site_exclusions WHERE site = $site;", ("$site", site));
            tx.Commit();
            return row;
        }
        catch (SqliteException ex)
        {
            throw Translate(ex, fullPath);
        }
    }

    private static IReadOnlyList<SiteExclusionRecord> ExclusionRows(SqliteConnection connection)
    {
        var exclusions = new List<SiteExclusionRecord>();
        if (Scalar(connection, null, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'site_exclusions';") is null)
        {
            return exclusions;
        }

        using SqliteCommand cmd = Command(connection, null, "SELECT site, attempts_left, blame_count, last_blamed_round FROM site_exclusions ORDER BY site;");
        using SqliteDataReader reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            exclusions.Add(new SiteExclusionRecord(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
        }

        return exclusions;
    }
}
