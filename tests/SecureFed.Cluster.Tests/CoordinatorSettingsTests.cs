using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Audit;
using SecureFed.Cluster.Lease;
using SecureFed.Federation;

using static SecureFed.Cluster.Tests.CoordinatorStateTesting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The coordinator's round-affecting settings in the cluster's database (a throw-away PostgreSQL): saved at the commit
/// point with the state; a successor with the same settings takes over as before; one with other settings refuses the
/// role naming every differing setting with both values, and nothing saved or local changes; with
/// <c>AcceptChangedSettings</c> it takes over and the changes are in the audit log; a database saved by a version
/// without settings keeps working.
/// </summary>
public sealed class CoordinatorSettingsTests : IClassFixture<PostgresServer>, IDisposable
{
    private static readonly string[] CoordinatorTables =
        ["securefed_coordinator_state", "securefed_coordinator_models", "securefed_coordinator_audit", "securefed_coordinator_moments", "securefed_coordinator_settings"];

    private readonly PostgresServer _postgres;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-settings-" + Guid.NewGuid().ToString("N"));

    public CoordinatorSettingsTests(PostgresServer postgres)
    {
        _postgres = postgres;
    }

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [SkippableFact]
    public async Task TakeOver_SameSettings_TakesOverAsBeforeAndTheSettingsRowCarriesTheNewEpoch()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "settings-same";
        await using var federation = new FrontFederation(Path.Combine(_directory, "same"), Name, ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        AggregatorOptions optionsA = Options(federation, "silo-a-data", learningRate: 0.02, dpSgdNoise: 1.2);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", learningRate: 0.02, dpSgdNoise: 1.2);
        optionsB.StageTimeoutSeconds = 30; // not round-affecting: no difference
        string modelSha = await CoordinateOneRoundAsync(db, lease, optionsA);
        SavedRoundSettings? savedByA = await new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit);
        Assert.True(savedByA is not null, "silo A's commit point should have saved its settings");
        Assert.Equal((1L, RoundSettings.Of(optionsA).Sha256), (savedByA.Epoch, savedByA.Settings.Sha256));

        await ExpireAsync(db, Name);
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, RoundSettings.Of(optionsB), acceptChangedSettings: false, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);

        Assert.Equal(2, fenceB.Epoch);
        Assert.Empty(fenceB.SettingsChanges);
        using (AggregatorState b = AggregatorState.Open(optionsB))
        {
            Assert.Equal((1L, modelSha), (b.Model.Version, b.Model.Sha256));
            await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit);
            Assert.DoesNotContain(File.ReadAllLines(AuditLogPath(optionsB)), l => l.Contains(AuditEvents.CoordinatorSettingsChanged, StringComparison.Ordinal));
        }

        SavedRoundSettings? savedByB = await new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal((2L, savedByA.Settings.Sha256), (savedByB!.Epoch, savedByB.Settings.Sha256));
    }

    [SkippableFact]
    public async Task TakeOver_DifferentSettings_RefusedNamingEachWithBothValuesNothingStoredChangedAndLeaseReleased()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "settings-refused";
        await using var federation = new FrontFederation(Path.Combine(_directory, "refused"), Name, ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        AggregatorOptions optionsA = Options(federation, "silo-a-data", learningRate: 0.02, dpSgdNoise: 1.2);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", learningRate: 0.03, dpSgdNoise: 1.0);
        string modelSha = await CoordinateOneRoundAsync(db, lease, optionsA);
        Directory.CreateDirectory(optionsB.DataDirectory);
        File.WriteAllText(Path.Combine(optionsB.DataDirectory, "aggregator.db"), "B's own round store");
        Dictionary<string, string> localBefore = Contents(optionsB.DataDirectory);
        Dictionary<string, string> savedBefore = await SavedRowsAsync(db, Name);
        const string Expected = "DpSgdNoiseMultiplier 1.2 → 1; ServerLearningRate 0.02 → 0.03";

        // At start-up, read without the lease: refused already, naming every difference with both values.
        SavedRoundSettings? saved = await new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit);
        var atStart = Assert.Throws<CoordinatorSettingsChangedException>(() =>
            ClusterCoordinatorFence.CheckSettings(Name, RoundSettings.Of(optionsB), saved, acceptChanged: false, NullLogger.Instance));
        Assert.Contains($"differ from those saved by lease epoch 1 of federation '{Name}': {Expected};", atStart.Message, StringComparison.Ordinal);

        // At takeover: the lease is acquired (epoch 2), the role refused, the lease released at once.
        await ExpireAsync(db, Name);
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        var refused = await Assert.ThrowsAsync<CoordinatorSettingsChangedException>(() => ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, RoundSettings.Of(optionsB), acceptChangedSettings: false, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit));

        Assert.Contains($"differ from those saved by lease epoch 1 of federation '{Name}': {Expected};", refused.Message, StringComparison.Ordinal);
        Assert.Contains("AcceptChangedSettings", refused.Message, StringComparison.Ordinal);
        Assert.Equal(
            [new RoundSettingChange("DpSgdNoiseMultiplier", "1.2", "1"), new RoundSettingChange("ServerLearningRate", "0.02", "0.03")],
            refused.Changes);
        AssertUntouched(optionsB.DataDirectory, localBefore);
        Assert.Equal(savedBefore, await SavedRowsAsync(db, Name));

        // The lease was released: a silo configured as A takes over at once (no expiry) and restores everything A saved.
        AggregatorOptions optionsC = Options(federation, "silo-c-data", learningRate: 0.02, dpSgdNoise: 1.2);
        var keeperC = new CoordinatorLeaseKeeper(lease, "silo-c", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceC = await ClusterCoordinatorFence.TakeOverAsync(
            keeperC, new PostgresCoordinatorState(db, lease), optionsC.DataDirectory, RoundSettings.Of(optionsC), acceptChangedSettings: false, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal(3, fenceC.Epoch);
        using AggregatorState c = AggregatorState.Open(optionsC);
        Assert.Equal((1L, modelSha), (c.Model.Version, c.Model.Sha256));
        Assert.Equal(RoundStatus.Completed, c.Store.GetRound(1)!.Status);
    }

    [SkippableFact]
    public async Task TakeOver_DifferentSettingsAccepted_TakesOverAuditsEveryChangeAndItsSettingsAreTheSavedOnes()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "settings-accepted";
        await using var federation = new FrontFederation(Path.Combine(_directory, "accepted"), Name, ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        AggregatorOptions optionsA = Options(federation, "silo-a-data", learningRate: 0.02, dpSgdNoise: 1.2);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", learningRate: 0.03, dpSgdNoise: 1.0);
        string modelSha = await CoordinateOneRoundAsync(db, lease, optionsA);
        string savedSha = RoundSettings.Of(optionsA).Sha256;

        await ExpireAsync(db, Name);
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        await using (ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, RoundSettings.Of(optionsB), acceptChangedSettings: true, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit))
        {
            Assert.Equal(2, fenceB.Epoch);
            Assert.Equal(["DpSgdNoiseMultiplier", "ServerLearningRate"], fenceB.SettingsChanges.Select(c => c.Name));
            using AggregatorState b = AggregatorState.Open(optionsB);
            Assert.Equal((1L, modelSha), (b.Model.Version, b.Model.Sha256));
            await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit);
            await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit); // a later commit point audits nothing again
        }

        // B's audit log (and the saved one) holds one event with every change, both values and both digests, and verifies.
        string[] changed = [.. File.ReadAllLines(AuditLogPath(optionsB)).Where(l => l.Contains($"\"{AuditEvents.CoordinatorSettingsChanged}\"", StringComparison.Ordinal))];
        string line = Assert.Single(changed);
        JsonElement fields = Fields(line);
        Assert.Equal((2L, 1L), (fields.GetProperty("epoch").GetInt64(), fields.GetProperty("saved_epoch").GetInt64()));
        Assert.Equal((savedSha, RoundSettings.Of(optionsB).Sha256), (fields.GetProperty("saved_sha256").GetString(), fields.GetProperty("sha256").GetString()));
        JsonElement changes = fields.GetProperty("changes");
        Assert.Equal(("0.02", "0.03"), (changes.GetProperty("ServerLearningRate").GetProperty("previous").GetString(), changes.GetProperty("ServerLearningRate").GetProperty("current").GetString()));
        Assert.Equal(("1.2", "1"), (changes.GetProperty("DpSgdNoiseMultiplier").GetProperty("previous").GetString(), changes.GetProperty("DpSgdNoiseMultiplier").GetProperty("current").GetString()));
        AuditVerification verified = AuditVerifier.Verify(AggregatorState.AuditDirectory(optionsB.DataDirectory));
        Assert.True(verified.Ok, verified.FirstProblem);
        string savedLog = Path.Combine(_directory, "accepted-saved-audit.jsonl");
        await new PostgresCoordinatorState(db, lease).RestoreAuditAsync(savedLog, CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Contains(line, File.ReadAllLines(savedLog));

        // B's settings are now the saved ones: a silo still configured as A is refused, naming the change back.
        SavedRoundSettings? saved = await new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal((2L, RoundSettings.Of(optionsB).Sha256), (saved!.Epoch, saved.Settings.Sha256));
        var back = Assert.Throws<CoordinatorSettingsChangedException>(() =>
            ClusterCoordinatorFence.CheckSettings(Name, RoundSettings.Of(optionsA), saved, acceptChanged: false, NullLogger.Instance));
        Assert.Contains("lease epoch 2 of federation 'settings-accepted': DpSgdNoiseMultiplier 1 → 1.2; ServerLearningRate 0.03 → 0.02;", back.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task TakeOver_DatabaseWithoutSettings_TakesOverWithoutComparingAndSavesItsOwn()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "settings-legacy";
        await using var federation = new FrontFederation(Path.Combine(_directory, "legacy"), Name, ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        AggregatorOptions optionsA = Options(federation, "silo-a-data", learningRate: 0.02, dpSgdNoise: 1.2);
        AggregatorOptions optionsB = Options(federation, "silo-b-data", learningRate: 0.03, dpSgdNoise: 1.0);

        // A coordinator of an earlier version: saves its state, no settings (and its database has no settings table).
        string modelSha = await CoordinateOneRoundAsync(db, lease, optionsA, withSettings: false);
        await ExecuteAsync(db, "DROP TABLE IF EXISTS securefed_coordinator_settings");

        await ExpireAsync(db, Name);
        var keeperB = new CoordinatorLeaseKeeper(lease, "silo-b", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fenceB = await ClusterCoordinatorFence.TakeOverAsync(
            keeperB, new PostgresCoordinatorState(db, lease), optionsB.DataDirectory, RoundSettings.Of(optionsB), acceptChangedSettings: false, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);

        Assert.Empty(fenceB.SettingsChanges);
        using AggregatorState b = AggregatorState.Open(optionsB);
        Assert.Equal((1L, modelSha), (b.Model.Version, b.Model.Sha256));
        await fenceB.CommitAsync(b, CancellationToken.None).WaitAsync(WaitLimit);
        SavedRoundSettings? saved = await new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal((2L, RoundSettings.Of(optionsB).Sha256), (saved!.Epoch, saved.Settings.Sha256));
    }

    [SkippableFact]
    public async Task LoadSettingsAsync_TextChangedInTheDatabase_RefusedAsCorrupt()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "settings-corrupt";
        await using var federation = new FrontFederation(Path.Combine(_directory, "corrupt"), Name, ["site-a", "site-b", "site-c"]);
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        await CoordinateOneRoundAsync(db, lease, Options(federation, "silo-a-data", learningRate: 0.02, dpSgdNoise: 1.2));
        await ExecuteAsync(db, $"UPDATE securefed_coordinator_settings SET settings = replace(settings, 'ServerLearningRate=0.02', 'ServerLearningRate=0.03') WHERE federation = '{Name}'");

        var ex = await Assert.ThrowsAsync<InvalidDataException>(() => new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit));

        Assert.Contains($"the coordinator settings of federation '{Name}' saved by lease epoch 1 in the cluster's database (table securefed_coordinator_settings) are corrupt", ex.Message, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Aggregator_CoordinatorSiloWithOtherSettings_RefusedAtStartUpBeforeTheSiloStarts()
    {
        Skip.If(_postgres.Unavailable is not null, _postgres.Unavailable);
        const string Name = "settings-cli";
        await using NpgsqlDataSource db = NpgsqlDataSource.Create(_postgres.ConnectionString);
        var lease = new PostgresCoordinatorLease(db, Name);
        long epoch = (await lease.TryAcquireAsync("silo-a", TimeSpan.FromMinutes(5), CancellationToken.None).WaitAsync(WaitLimit))!.Value;
        await new PostgresCoordinatorState(db, lease).SaveAsync(
            new Dictionary<string, byte[]>(StringComparer.Ordinal), new Dictionary<string, string>(StringComparer.Ordinal), [], _ => throw new InvalidOperationException("no models"),
            auditLog: null, moments: null, RoundSettings.Parse("ServerLearningRate=0.02\n"), "silo-a", epoch, CancellationToken.None).WaitAsync(WaitLimit);
        Directory.CreateDirectory(_directory);
        string config = Path.Combine(_directory, "silo-b.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new
        {
            SecureFed = new
            {
                Federation = Name,
                Listen = "https://127.0.0.1:0",
                KitDirectory = _directory,
                DataDirectory = Path.Combine(_directory, "silo-b-data"),
                ServerLearningRate = 0.03,
                Cluster = new { ConnectionString = _postgres.ConnectionString, Coordinator = true, Tls = "off", SiloPort = SiloProcess.FreePort(), GatewayPort = SiloProcess.FreePort() },
            },
        }));

        (int code, string stdout, string stderr) = await RunCliAsync("aggregator", "--config", config);

        Assert.True(code == 2, $"a usage error (exit code 2) was expected, got {code}: {stderr}");
        Assert.Contains($"this silo's coordinator settings differ from those saved by lease epoch {epoch} of federation '{Name}': ", stderr, StringComparison.Ordinal);
        Assert.Contains("ServerLearningRate 0.02 → 0.03", stderr, StringComparison.Ordinal);
        Assert.Contains("SecureFed:Cluster:AcceptChangedSettings", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("listening on", stdout, StringComparison.Ordinal); // refused before the silo started
        Assert.False(Directory.Exists(Path.Combine(_directory, "silo-b-data")), "the refused silo should not have created its data directory");

        // With AcceptChangedSettings the same silo starts, says what it accepted, and waits for the lease (held by A), a
        // front on the port its Listen port 0 picks meanwhile, so it needs the aggregator's kit.
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_directory, "federation"), Name, ["site-a"], "127.0.0.1"));
        var aggregator = new Dictionary<string, object>
        {
            ["Listen"] = "https://127.0.0.1:0",
            ["KitDirectory"] = provisioned.AggregatorKitDirectory,
            ["DataDirectory"] = Path.Combine(_directory, "silo-b-data"),
            ["ServerLearningRate"] = 0.03,
        };
        var cluster = new Dictionary<string, object> { ["Tls"] = "off", ["AcceptChangedSettings"] = true };
        using (SiloProcess accepting = await SiloProcess.StartAsync(_directory, Name, SiloProcess.FreePort(), SiloProcess.FreePort(), _postgres.ConnectionString, aggregator, null, null, cluster,
            readyLine: "waiting for the coordinator lease"))
        {
            Assert.Contains($"coordinator settings differ from those saved by lease epoch {epoch}; accepted (SecureFed:Cluster:AcceptChangedSettings)", accepting.Output, StringComparison.Ordinal);
            Assert.Contains("ServerLearningRate 0.02 → 0.03", accepting.Output, StringComparison.Ordinal);
        }

        SavedRoundSettings? saved = await new PostgresCoordinatorState(db, lease).LoadSettingsAsync(CancellationToken.None).WaitAsync(WaitLimit);
        Assert.True(saved is not null && saved.Epoch == epoch && saved.Settings.Values["ServerLearningRate"] == "0.02", "a silo that has not taken over should not have changed the saved settings");
    }

    private static Task<(int Exit, string Output, string Error)> RunCliAsync(params string[] arguments) => SiloProcess.RunCliAsync(WaitLimit, arguments);

    /// <summary>Silo A: the first coordinator (epoch 1) completes round 1 with model version 1 and saves; returns the model's SHA-256.</summary>
    private static async Task<string> CoordinateOneRoundAsync(NpgsqlDataSource db, PostgresCoordinatorLease lease, AggregatorOptions options, bool withSettings = true)
    {
        var keeper = new CoordinatorLeaseKeeper(lease, "silo-a", Terms, TimeProvider.System, NullLogger.Instance);
        await using ClusterCoordinatorFence fence = await ClusterCoordinatorFence.TakeOverAsync(
            keeper, new PostgresCoordinatorState(db, lease), options.DataDirectory, withSettings ? RoundSettings.Of(options) : null, acceptChangedSettings: false, NullLogger.Instance, CancellationToken.None).WaitAsync(WaitLimit);
        Assert.Equal(1, fence.Epoch);
        using AggregatorState a = AggregatorState.Open(options);
        await fence.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
        long round = a.Store.BeginRound("{}");
        float[] initial = ModelState.FromBytes(File.ReadAllBytes(options.InitialModel!), "the initial model");
        byte[] bytes = ModelState.ToBytes([.. initial.Select(v => v + 0.25f)]);
        string sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        a.Store.CompleteRoundWithModel(round, 1, bytes, sha, ["site-a", "site-b"]);
        a.Budget.Record(round, 0.05, 1e-5);
        a.Audit.Append(AuditEvents.RoundCompleted, f => f.Add("round", round));
        a.Audit.Checkpoint();
        await fence.CommitAsync(a, CancellationToken.None).WaitAsync(WaitLimit);
        return sha;
    }

    /// <summary>Every saved row of the federation, per table, as an MD5 of the rows' text (so any change to any row shows).</summary>
    private static async Task<Dictionary<string, string>> SavedRowsAsync(NpgsqlDataSource db, string federation)
    {
        var digests = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string table in CoordinatorTables)
        {
            await using NpgsqlCommand command = db.CreateCommand($"SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t WHERE federation = $1");
            command.Parameters.Add(new NpgsqlParameter { Value = federation });
            digests[table] = (string)(await command.ExecuteScalarAsync().WaitAsync(WaitLimit))!;
        }

        // The lease row is not state: its epoch moves with every acquisition.
        return digests;
    }

    private static JsonElement Fields(string line)
    {
        using JsonDocument document = JsonDocument.Parse(line);
        return document.RootElement.GetProperty("fields").Clone();
    }

    private static string AuditLogPath(AggregatorOptions options) => Path.Combine(AggregatorState.AuditDirectory(options.DataDirectory), AuditLog.LogFileName);

    private AggregatorOptions Options(FrontFederation federation, string data, double learningRate, double dpSgdNoise) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_directory, data),
        InitialModel = federation.InitialModelPath,
        ServerLearningRate = learningRate,
        DpSgdNoiseMultiplier = dpSgdNoise,
    };
}
