using System.Globalization;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// What <see cref="CoordinatorCommitBench"/> runs: <see cref="Versions"/> model versions of <see cref="Parameters"/>
/// parameters each, one commit point per version, then one takeover restoring them all; <see cref="Repeats"/> times,
/// each on a federation of its own in the same database.
/// </summary>
public sealed record CoordinatorCommitBenchOptions
{
    /// <summary>
    /// The largest model: each version is one SQLite value in the round store (at most 1,000,000,000 bytes) and one
    /// PostgreSQL <c>bytea</c> in the cluster's database (at most 1 GB), 4 bytes a parameter
    /// (<see cref="ClusterBenchOptions.MaxFrontParameters"/>).
    /// </summary>
    public const int MaxParameters = ClusterBenchOptions.MaxFrontParameters;

    /// <summary>The most model versions (each is written to the round store, to PostgreSQL and back to a second round store).</summary>
    public const int MaxVersions = 50;

    /// <summary>The most repeats.</summary>
    public const int MaxRepeats = 20;

    /// <summary>Model parameters per version (float32). <value>The default value is 110,000,000 (440 MB, a BERT-base-sized model).</value></summary>
    public int Parameters { get; init; } = 110_000_000;

    /// <summary>Model versions committed before the takeover (version 0 at start-up, then one per round). <value>The default value is 3.</value></summary>
    public int Versions { get; init; } = 3;

    /// <summary>How many times the whole sequence (commit points, then takeover) runs. <value>The default value is 1.</value></summary>
    public int Repeats { get; init; } = 1;

    /// <summary>
    /// Length of the coordinator lease (renewed every 3 s, given up 3 s early, as the product's defaults). Renewals go
    /// through while a commit point sends its model version (the locking fence is the transaction's last statement); a
    /// lease lost anyway ends the repeat and is reported. <value>The default value is 15 (the product's <c>LeaseSeconds</c> default).</value>
    /// </summary>
    public double LeaseSeconds { get; init; } = Lease.LeaseTerms.Default.Duration.TotalSeconds;

    /// <summary>The lease terms of <see cref="LeaseSeconds"/>.</summary>
    public Lease.LeaseTerms LeaseTerms => new(TimeSpan.FromSeconds(LeaseSeconds), Lease.LeaseTerms.Default.RenewInterval, Lease.LeaseTerms.Default.SafetyMargin);

    /// <summary>PostgreSQL database to use; null starts a throw-away server (<see cref="ThrowawayPostgres"/>).</summary>
    public string? ConnectionString { get; init; }

    /// <summary>
    /// PostgreSQL's <c>fsync</c> on the throw-away server: true as a production server runs (every commit waits for its
    /// WAL to reach the disk), false not crash-safe but faster; null is false, as the earlier figures ran. Only for the
    /// throw-away server: an external server (<see cref="ConnectionString"/>) runs with its own setting, which the bench
    /// reads back and reports as for the throw-away one. <value>The default value is null (fsync off).</value>
    /// </summary>
    public bool? Fsync { get; init; }

    /// <summary>Every problem, each naming the option (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Parameters < 1 || Parameters > MaxParameters)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"--parameters must be between 1 and {MaxParameters} (each model version is one PostgreSQL bytea value of at most 1 GB and one SQLite value of at most 1,000,000,000 bytes, 4 bytes a parameter), got {Parameters}."));
        }

        if (Versions < 1 || Versions > MaxVersions)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--versions must be between 1 and {MaxVersions}, got {Versions}."));
        }

        if (Repeats < 1 || Repeats > MaxRepeats)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--repeats must be between 1 and {MaxRepeats}, got {Repeats}."));
        }

        if (!(LeaseSeconds >= 7 && LeaseSeconds <= 600))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"--lease-seconds must be between 7 and 600 (renewed every 3 s, given up 3 s early), got {LeaseSeconds}."));
        }

        if (BenchConnectionString.Problem(ConnectionString) is string connection)
        {
            problems.Add(connection);
        }

        if (Fsync is not null && ConnectionString is not null)
        {
            problems.Add("--fsync cannot be used with --connection-string: the external server runs with its own fsync setting, which the bench reads back (SHOW fsync) and reports.");
        }

        return problems;
    }
}
