namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The aggregator database schema as an ordered list of migrations. Migration <c>i</c> (1-based) brings the schema
/// from version <c>i-1</c> to <c>i</c>. Append new migrations; never edit a released one.
/// </summary>
internal static class StoreSchema
{
    public static readonly string[] Migrations =
    [
        // 1: federation, rounds and their stages, models, submissions, ledger.
        """
        CREATE TABLE federation (
            id           INTEGER PRIMARY KEY CHECK (id = 1),
            name         TEXT NOT NULL,
            created_utc  TEXT NOT NULL
        );
        CREATE TABLE rounds (
            round          INTEGER PRIMARY KEY CHECK (round > 0),
            status         TEXT NOT NULL CHECK (status IN ('running', 'completed', 'aborted')),
            configuration  TEXT NOT NULL,
            started_utc    TEXT NOT NULL,
            ended_utc      TEXT,
            model_sha256   TEXT,
            abort_reason   TEXT,
            participants   TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE round_stages (
            round          INTEGER NOT NULL REFERENCES rounds(round),
            seq            INTEGER NOT NULL,
            stage          TEXT NOT NULL,
            participants   TEXT NOT NULL,
            recorded_utc   TEXT NOT NULL,
            PRIMARY KEY (round, seq)
        );
        CREATE TABLE models (
            version      INTEGER PRIMARY KEY CHECK (version >= 0),
            round        INTEGER REFERENCES rounds(round),
            sha256       TEXT NOT NULL,
            size_bytes   INTEGER NOT NULL,
            bytes        BLOB NOT NULL,
            created_utc  TEXT NOT NULL
        );
        CREATE TABLE submissions (
            round         INTEGER NOT NULL REFERENCES rounds(round),
            site          TEXT NOT NULL,
            stage         TEXT NOT NULL,
            sha256        TEXT NOT NULL,
            recorded_utc  TEXT NOT NULL,
            PRIMARY KEY (round, site, stage)
        );
        CREATE TABLE ledger (
            seq           INTEGER PRIMARY KEY AUTOINCREMENT,
            round         INTEGER REFERENCES rounds(round),
            kind          TEXT NOT NULL,
            payload       TEXT NOT NULL,
            recorded_utc  TEXT NOT NULL
        );
        """,

        // 2: the model's bytes become the last column of models, so that a model is inserted as zeroblob(size) without
        // SQLite materializing it and then written with incremental blob I/O (AggregatorStore.SaveModelCore).
        """
        CREATE TABLE models_v2 (
            version      INTEGER PRIMARY KEY CHECK (version >= 0),
            round        INTEGER REFERENCES rounds(round),
            sha256       TEXT NOT NULL,
            size_bytes   INTEGER NOT NULL,
            created_utc  TEXT NOT NULL,
            bytes        BLOB NOT NULL
        );
        INSERT INTO models_v2 (version, round, sha256, size_bytes, created_utc, bytes)
            SELECT version, round, sha256, size_bytes, created_utc, bytes FROM models;
        DROP TABLE models;
        ALTER TABLE models_v2 RENAME TO models;
        """,

        // 3: the server update rule's state (AggregatorOptions.ServerOptimizer momentum or adam): the moments that go with
        // one model version, written in the transaction that stores that version (AggregatorStore.CompleteRoundWithModel),
        // so a model version never exists without its moments. At most one row: the latest version's.
        """
        CREATE TABLE server_optimizer (
            model_version    INTEGER PRIMARY KEY REFERENCES models(version),
            kind             TEXT NOT NULL,
            steps            INTEGER NOT NULL CHECK (steps >= 0),
            parameter_count  INTEGER NOT NULL CHECK (parameter_count >= 0),
            first            BLOB NOT NULL,
            second           BLOB NOT NULL
        );
        """,

        // 4: the sites found at fault (RoundCoordinator.Exclude, docs/PROTOCOL.md §3 "Blame"), one row per site: the round
        // attempts it still sits out (0 once served: the row stays, for its blame count), how many distinct attempts
        // blamed it (each further blame doubles the exclusion) and the last of them. Written in the transaction of each
        // change, read when the coordinator starts, so that a restart or a takeover neither frees an excluded site nor
        // forgets its blames.
        """
        CREATE TABLE site_exclusions (
            site               TEXT PRIMARY KEY NOT NULL,
            attempts_left      INTEGER NOT NULL CHECK (attempts_left >= 0),
            blame_count        INTEGER NOT NULL CHECK (blame_count >= 1),
            last_blamed_round  INTEGER NOT NULL CHECK (last_blamed_round > 0),
            updated_utc        TEXT NOT NULL
        );
        """,
    ];

    public static int LatestVersion => Migrations.Length;
}
