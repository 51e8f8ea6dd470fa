using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A torn audit-log tail (a crash mid-write) stops the aggregator and the agent with a message naming the setting that
/// repairs it, as the operator types it; with <c>RepairTornAuditTail</c> they start and the torn bytes are kept in
/// <c>audit/quarantine/</c>, byte for byte.
/// </summary>
public sealed class TornAuditTailStartTests : IDisposable
{
    private static readonly byte[] Torn = "{\"actor\":\"x\",\"event\":\"round.ope"u8.ToArray();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-torn-" + Guid.NewGuid().ToString("N"));
    private readonly ProvisionResult _fed;

    public TornAuditTailStartTests()
    {
        _fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "torn", ["site-a", "site-b"], "127.0.0.1"));
    }

    [Fact]
    public void AggregatorStateOpen_TornTailWithoutTheSetting_RefusesNamingTheSettingAndKeepsTheLog()
    {
        AggregatorOptions options = AggregatorOptions();
        using (AggregatorState.Open(options, new float[8]))
        {
        }

        string log = Path.Combine(AggregatorState.AuditDirectory(options.DataDirectory), AuditLog.LogFileName);
        byte[] before = AppendTorn(log);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(options, new float[8]));

        Assert.Contains("is torn", ex.Message, StringComparison.Ordinal);
        Assert.Contains("--SecureFed:RepairTornAuditTail=true", ex.Message, StringComparison.Ordinal);
        Assert.Contains("\"RepairTornAuditTail\": true", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("repairTornTail", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(log));
    }

    [Fact]
    public void AggregatorStateOpen_TornTailWithTheSetting_StartsAndQuarantinesTheTornBytes()
    {
        AggregatorOptions options = AggregatorOptions();
        using (AggregatorState.Open(options, new float[8]))
        {
        }

        string auditDir = AggregatorState.AuditDirectory(options.DataDirectory);
        byte[] withTorn = AppendTorn(Path.Combine(auditDir, AuditLog.LogFileName));
        options.RepairTornAuditTail = true;

        using (AggregatorState.Open(options, new float[8]))
        {
        }

        AssertQuarantined(auditDir, withTorn);
    }

    [Fact]
    public void AgentStateOpen_TornTail_RefusedNamingTheSettingThenRepairedWithIt()
    {
        var options = new AgentOptions { Site = "site-a", KitDirectory = _fed.SiteKitDirectories["site-a"], DataDirectory = Path.Combine(_dir, "agent") };
        using (AgentState.Open(options))
        {
        }

        string auditDir = AgentState.AuditDirectory(options.DataDirectory);
        byte[] withTorn = AppendTorn(Path.Combine(auditDir, AuditLog.LogFileName));

        var ex = Assert.Throws<InvalidDataException>(() => AgentState.Open(options));
        Assert.Contains("--SecureFed:RepairTornAuditTail=true", ex.Message, StringComparison.Ordinal);
        Assert.Equal(withTorn, File.ReadAllBytes(Path.Combine(auditDir, AuditLog.LogFileName)));

        options.RepairTornAuditTail = true;
        using (AgentState.Open(options))
        {
        }

        AssertQuarantined(auditDir, withTorn);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The torn bytes are in quarantine/ exactly, the log holds every intact line before them and verifies on.</summary>
    private static void AssertQuarantined(string auditDir, byte[] withTorn)
    {
        string quarantined = Assert.Single(Directory.GetFiles(Path.Combine(auditDir, "quarantine")));
        Assert.Equal(Torn, File.ReadAllBytes(quarantined));
        byte[] now = File.ReadAllBytes(Path.Combine(auditDir, AuditLog.LogFileName));
        int intact = withTorn.Length - Torn.Length;
        Assert.Equal(withTorn.AsSpan(0, intact).ToArray(), now.AsSpan(0, intact).ToArray());
        Assert.Contains("torn", System.Text.Encoding.UTF8.GetString(now.AsSpan(intact)), StringComparison.OrdinalIgnoreCase);
    }

    private static byte[] AppendTorn(string log)
    {
        using (var stream = new FileStream(log, FileMode.Append))
        {
            stream.Write(Torn);
        }

        return File.ReadAllBytes(log);
    }

    private AggregatorOptions AggregatorOptions() => new()
    {
        Federation = "torn",
        KitDirectory = _fed.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_dir, "aggregator"),
    };
}
