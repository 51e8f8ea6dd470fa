using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Cluster.Lease;
using SecureFed.Federation;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// <c>securefed bench coordinator-commit</c>: the coordinator's commit points and a successor's takeover with large
/// models, through the product's own classes (<see cref="ClusterCoordinatorFence"/>, <see cref="PostgresCoordinatorState"/>,
/// <see cref="PostgresCoordinatorLease"/>, <see cref="CoordinatorSnapshot"/>) on a real <see cref="AggregatorState"/>:
/// silo A takes the lease, opens its data directory (model version 0 from the initial model file) and commits; then for
/// each further version a round completes with that model (streamed into the round store) and A commits again; then A lets
/// go and silo B takes over into an empty data directory, restoring every version from PostgreSQL. Each commit point and
/// the takeover are timed; bytes written to PostgreSQL (Npgsql's metric), peak resident set and managed allocations are
/// counted over each. The models are seeded pseudo-random floats (no run of repeated bytes to compress). Leases use
/// <see cref="CoordinatorCommitBenchOptions.LeaseTerms"/> (by default the product's); a commit point that outlasts the
/// lease ends that repeat (the product's next commit point would refuse too), reported in the result. The server's
/// <c>fsync</c> setting is read back from it; the throw-away server's own memory (its processes') is sampled over the
/// whole run (<see cref="ServerMemorySampler"/>).
/// </summary>
public static class CoordinatorCommitBench
{
    private const string Federation = "commit-bench";
    private static readonly string[] Sites = ["site-a", "site-b", "site-c"];

    /// <summary>Runs the benchmark; progress lines go to <paramref name="progress"/>.</summary>
    /// <exception cref="ArgumentException">The options are not valid (the message names each option).</exception>
    public static async Task<CoordinatorCommitBenchResult> RunAsync(CoordinatorCommitBenchOptions options, TextWriter progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(progress);
        IReadOnlyList<string> problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join("\n", problems), nameof(options));
        }

        var wall = Stopwatch.StartNew();
        long modelBytes = options.Parameters * (long)sizeof(float);
        ThrowawayPostgres? server = null;
        ServerMemorySampler? serverMemory = null;
        string dir = Path.Combine(Path.GetTempPath(), "securefed-commit-bench-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        try
        {
            string connectionString = options.ConnectionString ?? "";
            if (options.ConnectionString is null)
            {
                bool fsync = options.Fsync ?? false;
                await Say(progress, $"starting a throw-away PostgreSQL server (fsync {(fsync ? "on" : "off")})").ConfigureAwait(false);
                server = await ThrowawayPostgres.StartAsync("securefed_commit_bench", fsync, cancellationToken).ConfigureAwait(false);
                connectionString = server.ConnectionString;
                serverMemory = ServerMemorySampler.Start(server.DataDirectory);
                if (serverMemory is null)
                {
                    await Say(progress, "the server's memory cannot be sampled here (no /proc, or its postmaster.pid unreadable): not measured").ConfigureAwait(false);
                }
            }

            await Say(progress, "provisioning federation").ConfigureAwait(false);
            ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(dir, "federation"), Federation, Sites, "127.0.0.1"));
            string pool = "securefed-commit-bench-" + Guid.NewGuid().ToString("N");
            NpgsqlDataSource db = new NpgsqlDataSourceBuilder(connectionString) { Name = pool }.Build();
            await using (db.ConfigureAwait(false))
            {
                string fsyncSetting;
                await using (NpgsqlCommand show = db.CreateCommand("SHOW fsync"))
                {
                    fsyncSetting = (string?)await show.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) ?? "unknown";
                }

                await Say(progress, $"PostgreSQL fsync: {fsyncSetting} (SHOW fsync)").ConfigureAwait(false);
                using var sent = new NpgsqlBytesWritten(pool);
                bool vmHwm = PeakMemory.CanReset();
                var commits = new List<CoordinatorCommitFigures>();
                var takeovers = new List<CoordinatorTakeoverFigures>();
                long? lost = null;
                for (int repeat = 1; repeat <= options.Repeats; repeat++)
                {
                    (List<CoordinatorCommitFigures> c, CoordinatorTakeoverFigures? t) = await RunOnceAsync(
                        options, repeat, Path.Combine(dir, "r" + repeat.ToString(CultureInfo.InvariantCulture)), provisioned, db, sent, serverMemory, progress, cancellationToken).ConfigureAwait(false);
                    commits.AddRange(c);
                    if (t is null)
                    {
                        lost = c[^1].Version;
                        break;
                    }

                    takeovers.Add(t);
                }

                double?[] medianCommit = [.. Enumerable.Range(0, options.Versions).Select(v => Median(commits.Where(c => c.Version == v).Select(c => c.Seconds)))];
                ServerMemoryPeak? serverPeak = serverMemory is null ? null : await serverMemory.StopAsync().ConfigureAwait(false);
                if (serverPeak is not null)
                {
                    await Say(progress, string.Create(CultureInfo.InvariantCulture,
                        $"PostgreSQL server's peak memory over the run ({serverPeak.Samples} samples): resident sets summed {MiB(serverPeak.RssBytes)} MiB over up to {serverPeak.Processes} processes, largest process {MiB(serverPeak.ProcessRssBytes)} MiB, proportional sets summed {(serverPeak.PssBytes is long pss ? MiB(pss) + " MiB" : "not readable")}")).ConfigureAwait(false);
                }

                return new CoordinatorCommitBenchResult(
                    options.Parameters, modelBytes, options.Versions, options.Repeats, options.LeaseSeconds, fsyncSetting,
                    serverPeak?.RssBytes, serverPeak?.ProcessRssBytes, serverPeak?.PssBytes, serverPeak?.Processes,
                    lost, vmHwm, medianCommit, Median(takeovers.Select(t => t.Seconds)),
                    commits, takeovers, lost is null && takeovers.All(t => t.RestoredEqual), wall.Elapsed.TotalSeconds);
            }
        }
        finally
        {
            if (serverMemory is not null)
            {
                await serverMemory.DisposeAsync().ConfigureAwait(false);
            }

            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }

            Directory.Delete(dir, recursive: true);
        }
    }

    private static async Task<(List<CoordinatorCommitFigures>, CoordinatorTakeoverFigures?)> RunOnceAsync(
        CoordinatorCommitBenchOptions options, int repeat, string dir, ProvisionResult provisioned, NpgsqlDataSource db, NpgsqlBytesWritten sent, ServerMemorySampler? serverMemory, TextWriter progress, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dir);
        long modelBytes = options.Parameters * (long)sizeof(float);
        var lease = new PostgresCoordinatorLease(db, $"{Federation}-{repeat}");
        string initial = Path.Combine(dir, "model-0.bin");
        await Say(progress, $"repeat {repeat}: writing model version 0 ({options.Parameters:N0} parameters, {modelBytes:N0} bytes)").ConfigureAwait(false);
        string initialSha = WriteModel(initial, options.Parameters, Seed(repeat, 0));
        AggregatorOptions optionsA = Options(provisioned, Path.Combine(dir, "silo-a-data"), initial);
        var keeperA = new CoordinatorLeaseKeeper(lease, "silo-a", options.LeaseTerms, TimeProvider.System, NullLogger.Instance);
        var commits = new List<CoordinatorCommitFigures>();
        var committed = new Dictionary<long, string>();
        ClusterCoordinatorFence fenceA = await ClusterCoordinatorFence.TakeOverAsync(
            keeperA, new PostgresCoordinatorState(db, lease), optionsA.DataDirectory, NullLogger.Instance, cancellationToken).ConfigureAwait(false);
        await using (fenceA.ConfigureAwait(false))
        {
            using AggregatorState a = AggregatorState.Open(optionsA);
            File.Delete(initial);
            committed[0] = initialSha;
            commits.Add(await CommitAsync(fenceA, a, repeat, 0, modelBytes, sent, serverMemory, progress, cancellationToken).ConfigureAwait(false));
            for (long version = 1; version < options.Versions && commits[^1].LeaseHeldAfter; version++)
            {
                string path = Path.Combine(dir, $"model-{version}.bin");
                await Say(progress, $"repeat {repeat}: round {version} completes with model version {version}").ConfigureAwait(false);
                string sha = WriteModel(path, options.Parameters, Seed(repeat, version));
                long round = a.Store.BeginRound("{}");
                a.Store.RecordStage(round, "MaskedInput", Sites[..2]);
                using (FileStream model = File.OpenRead(path))
                {
                    a.Store.CompleteRoundWithModel(round, version, model, sha, Sites[..2], moments: null);
                }

                File.Delete(path);
                committed[version] = sha;
                commits.Add(await CommitAsync(fenceA, a, repeat, version, modelBytes, sent, serverMemory, progress, cancellationToken).ConfigureAwait(false));
            }
        }

        if (commits.Count < options.Versions || !commits[^1].LeaseHeldAfter)
        {
            await Say(progress, string.Create(CultureInfo.InvariantCulture,
                $"repeat {repeat}: the lease ({options.LeaseSeconds} s, given up {options.LeaseTerms.SafetyMargin.TotalSeconds} s early) was lost during the commit point of model version {commits[^1].Version} ({commits[^1].Seconds:F2} s): no renewal succeeded in time, so the coordinator's next commit point would be refused. Stopped (no takeover measured); a longer lease: --lease-seconds")).ConfigureAwait(false);
            Directory.Delete(dir, recursive: true);
            return (commits, null);
        }

        // Silo B takes over: the lease expired by hand (A let go), an empty data directory, every version restored.
        await using (NpgsqlCommand expire = db.CreateCommand("UPDATE securefed_coordinator_lease SET expires_utc = clock_timestamp() WHERE federation = $1"))
        {
            expire.Parameters.Add(new NpgsqlParameter { Value = lease.Federation });
            await expire.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        string dataB = Path.Combine(dir, "silo-b-data");
        await Say(progress, $"repeat {repeat}: silo B takes over, restoring {options.Versions} model version(s)").ConfigureAwait(false);
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", options.LeaseTerms, TimeProvider.System, NullLogger.Instance);
        Collect();
        serverMemory?.BeginStep();
        using var peak = PeakMemory.Start();
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var watch = Stopwatch.StartNew();
        ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), dataB, NullLogger.Instance, cancellationToken).ConfigureAwait(false);
        double seconds = watch.Elapsed.TotalSeconds;
        long takeoverAllocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        long peakBytes = peak.Stop();
        ServerMemoryPeak? serverPeak = serverMemory?.EndStep();
        await fenceB.DisposeAsync().ConfigureAwait(false);

        // Checked outside the timing: the same versions, each byte for byte the one committed.
        bool equal;
        int restoredCount;
        long latest;
        long restoredBytes;
        using (AggregatorStore original = AggregatorStore.Open(Path.Combine(optionsA.DataDirectory, CoordinatorSnapshot.RoundStoreName)))
        using (AggregatorStore restored = AggregatorStore.Open(Path.Combine(dataB, CoordinatorSnapshot.RoundStoreName)))
        {
            IReadOnlyList<ModelRecord> models = restored.ListModels();
            restoredCount = models.Count;
            latest = models.Count == 0 ? -1 : models.Max(m => m.Version);
            restoredBytes = models.Sum(m => m.SizeBytes);
            equal = restored.ListModelsWithoutBytes().Count == 0
                && models.Select(m => (m.Version, m.Sha256)).Order().SequenceEqual(committed.Select(c => (c.Key, c.Value)).Order())
                && models.All(m => SameBytes(original, restored, m.Version));
        }

        var takeover = new CoordinatorTakeoverFigures(repeat, seconds, restoredCount, latest, restoredBytes, peak.Before, peakBytes, takeoverAllocated, equal, serverPeak);
        await Say(progress, string.Create(CultureInfo.InvariantCulture,
            $"repeat {repeat}: takeover {seconds:F2} s, {restoredCount} version(s) restored (latest {latest}), {restoredBytes:N0} model bytes, peak working set {MiB(peakBytes)} MiB (before {MiB(peak.Before)} MiB), managed allocations {MiB(takeoverAllocated)} MiB{ServerLine(serverPeak)}; restored bytes equal: {(equal ? "yes" : "NO")}")).ConfigureAwait(false);
        Directory.Delete(dir, recursive: true);
        return (commits, takeover);
    }

    private static async Task<CoordinatorCommitFigures> CommitAsync(
        ClusterCoordinatorFence fence, AggregatorState state, int repeat, long version, long modelBytes, NpgsqlBytesWritten sent, ServerMemorySampler? serverMemory, TextWriter progress, CancellationToken cancellationToken)
    {
        Collect();
        serverMemory?.BeginStep();
        using var peak = PeakMemory.Start();
        long bytesBefore = sent.Total;
        long allocated = GC.GetTotalAllocatedBytes(precise: true);
        var watch = Stopwatch.StartNew();
        await fence.CommitAsync(state, cancellationToken).ConfigureAwait(false);
        double seconds = watch.Elapsed.TotalSeconds;
        long commitAllocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        long bytes = sent.Total - bytesBefore;
        long peakBytes = peak.Stop();
        ServerMemoryPeak? serverPeak = serverMemory?.EndStep();
        bool held = !fence.Lost.IsCancellationRequested;
        var figures = new CoordinatorCommitFigures(repeat, version, modelBytes, seconds, bytes, peak.Before, peakBytes, commitAllocated, held, serverPeak);
        await Say(progress, string.Create(CultureInfo.InvariantCulture,
            $"repeat {repeat}: commit point of model version {version}: {seconds:F2} s, {bytes:N0} bytes sent to PostgreSQL, peak working set {MiB(peakBytes)} MiB (before {MiB(peak.Before)} MiB), managed allocations {MiB(commitAllocated)} MiB{ServerLine(serverPeak)}; lease held after: {(held ? "yes" : "NO")}")).ConfigureAwait(false);
        return figures;
    }

    /// <summary>Writes <paramref name="parameters"/> seeded pseudo-random float32 values in [-0.05, 0.05) to <paramref name="path"/>; returns their SHA-256.</summary>
    private static string WriteModel(string path, int parameters, int seed)
    {
        var random = new Random(seed);
        var chunk = new float[1 << 20];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 20);
        for (int done = 0; done < parameters;)
        {
            int n = Math.Min(chunk.Length, parameters - done);
            for (int i = 0; i < n; i++)
            {
                chunk[i] = (float)((random.NextDouble() - 0.5) * 0.1);
            }

            ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(chunk.AsSpan(0, n)); // little-endian, as the model format
            hash.AppendData(bytes);
            file.Write(bytes);
            done += n;
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static bool SameBytes(AggregatorStore a, AggregatorStore b, long version)
    {
        using Stream x = a.OpenModel(version);
        using Stream y = b.OpenModel(version);
        var bx = new byte[1 << 20];
        var by = new byte[1 << 20];
        while (true)
        {
            int n = x.ReadAtLeast(bx, bx.Length, throwOnEndOfStream: false);
            int m = y.ReadAtLeast(by, by.Length, throwOnEndOfStream: false);
            if (n != m || !bx.AsSpan(0, n).SequenceEqual(by.AsSpan(0, m)))
            {
                return false;
            }

            if (n == 0)
            {
                return true;
            }
        }
    }

    private static AggregatorOptions Options(ProvisionResult provisioned, string dataDirectory, string initialModel) => new()
    {
        Federation = Federation,
        KitDirectory = provisioned.AggregatorKitDirectory,
        DataDirectory = dataDirectory,
        InitialModel = initialModel,
    };

    private static int Seed(int repeat, long version) => unchecked((repeat * 1_000_003) + (int)version);

    private static void Collect()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }

    private static double? Median(IEnumerable<double> values)
    {
        double[] sorted = [.. values.Order()];
        return sorted.Length == 0 ? null : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string ServerLine(ServerMemoryPeak? server) =>
        server is null ? "" : string.Create(CultureInfo.InvariantCulture,
            $", PostgreSQL server peak {(server.PssBytes is long pss ? MiB(pss) : "?")} MiB PSS / {MiB(server.RssBytes)} MiB RSS summed, largest process {MiB(server.ProcessRssBytes)} MiB");

    private static string MiB(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);

    private static Task Say(TextWriter progress, string line) =>
        progress.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"[{DateTime.UtcNow:HH:mm:ss}] {line}"));

    /// <summary>
    /// The process's resident set high-water mark over a span: Linux VmHWM reset at the start (writing 5 to
    /// /proc/self/clear_refs), and a sampler every 10 ms as well (the only source where VmHWM cannot be reset).
    /// </summary>
    private sealed class PeakMemory : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _sampler;
        private readonly bool _reset;
        private long _max;

        private PeakMemory()
        {
            Before = Read("VmRSS:");
            _reset = TryReset();
            _max = Before;
            _sampler = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    long now = Read("VmRSS:");
                    if (now > Interlocked.Read(ref _max))
                    {
                        Interlocked.Exchange(ref _max, now);
                    }

                    try
                    {
                        await Task.Delay(10, _stop.Token).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            });
        }

        /// <summary>The resident set just before the span.</summary>
        public long Before { get; }

        public static bool CanReset() => TryReset();

        public static PeakMemory Start() => new();

        /// <summary>Ends the span; the peak resident set over it.</summary>
        public long Stop()
        {
            _stop.Cancel();
            _sampler.Wait();
            long peak = Math.Max(Interlocked.Read(ref _max), Read("VmRSS:"));
            return _reset ? Math.Max(peak, Read("VmHWM:")) : peak;
        }

        public void Dispose()
        {
            if (!_stop.IsCancellationRequested)
            {
                _stop.Cancel();
            }

            _stop.Dispose();
        }

        private static bool TryReset()
        {
            try
            {
                File.WriteAllText("/proc/self/clear_refs", "5");
                return true;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }

        private static long Read(string field)
        {
            try
            {
                foreach (string line in File.ReadLines("/proc/self/status"))
                {
                    if (line.StartsWith(field, StringComparison.Ordinal))
                    {
                        return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                    }
                }
            }
            catch (IOException)
            {
            }

            return Environment.WorkingSet;
        }
    }
}
