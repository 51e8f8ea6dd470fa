namespace SecureFed.Cluster.Bench;

/// <summary>What <see cref="ClusterBench"/> runs: one round of <see cref="Agents"/> sites with a model of <see cref="Parameters"/> parameters.</summary>
public sealed record ClusterBenchOptions
{
    /// <summary>
    /// The largest model at grain level (<c>--front client</c>): one whole masked input must fit in one Orleans message
    /// (100 MiB body) for its single process, and Orleans writes a random 32-bit word in up to 5 bytes.
    /// </summary>
    public const int MaxParameters = 20_000_000;

    /// <summary>
    /// The largest slice through the gRPC front (<c>--front grpc</c>): a slice's sum travels from its silo to the
    /// coordinator in one Orleans message (100 MiB body, up to 5 bytes a word); whole inputs never do.
    /// </summary>
    public const int MaxSliceWords = 20_000_000;

    /// <summary>
    /// The largest model through the gRPC front: the coordinator stores each model version as one PostgreSQL
    /// <c>bytea</c> (at most 1 GB, 4 bytes a parameter) at its commit point.
    /// </summary>
    public const int MaxFrontParameters = 250_000_000;

    /// <summary>Silo processes of the cluster. <value>The default value is 3.</value></summary>
    public int Silos { get; init; } = 3;

    /// <summary>Sites in the round. <value>The default value is 5.</value></summary>
    public int Agents { get; init; } = 5;

    /// <summary>Model parameters d (the input vector has d + 1 words). <value>The default value is 16777216.</value></summary>
    public int Parameters { get; init; } = 16 * 1024 * 1024;

    /// <summary>Sites that share keys and then drop before sending their masked input (their pairwise masks are removed). <value>The default value is 0.</value></summary>
    public int Dropped { get; init; }

    /// <summary>PostgreSQL database of the cluster's grain state; null starts a throw-away server (<see cref="ThrowawayPostgres"/>).</summary>
    public string? ConnectionString { get; init; }

    /// <summary>
    /// Every problem common to both benchmarks, each naming the option (empty when valid); the upper bound on
    /// <see cref="Parameters"/> depends on the benchmark (<see cref="ValidateGrainLevel"/>, and the gRPC front's own).
    /// </summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Silos is < 1 or > 16)
        {
            problems.Add($"--silos must be between 1 and 16, got {Silos}.");
        }

        if (Agents is < 3 or > 100)
        {
            problems.Add($"--agents must be between 3 and 100, got {Agents}.");
        }

        if (Parameters < 1)
        {
            problems.Add($"--parameters must be at least 1, got {Parameters}.");
        }

        if (Dropped < 0 || (Agents >= 3 && Agents - Dropped < (Agents / 2) + 1))
        {
            problems.Add($"--dropped must be between 0 and {Math.Max(0, Agents - ((Agents / 2) + 1))} (the survivors must reach the threshold t = ⌊n/2⌋ + 1 = {(Agents / 2) + 1} of n = {Agents} sites), got {Dropped}.");
        }

        if (BenchConnectionString.Problem(ConnectionString) is string connection)
        {
            problems.Add(connection);
        }

        return problems;
    }

    /// <summary>The problems of the grain-level benchmark (<c>--front client</c>) beyond <see cref="Validate"/>.</summary>
    public IEnumerable<string> ValidateGrainLevel()
    {
        if (Parameters > MaxParameters)
        {
            yield return $"--parameters must be between 1 and {MaxParameters} with --front client (one masked input must fit in one 100 MiB Orleans message at up to 5 bytes a word), got {Parameters}.";
        }
    }
}
