using System.Text.Json;
using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Settings of the wrong shape or type, which configuration binding would drop silently or report one at a time in .NET
/// terms, stop the aggregator, the agent and a cluster silo with a usage error (exit 2) naming each key, its value and
/// the expected type, all at once, before anything starts.
/// </summary>
public sealed class ServiceSettingShapeTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-setting-shape-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Aggregator_ListsAsOneValueObjectForANumberAndAWordForANumber_UsageErrorNamingEachAtOnce()
    {
        string config = Config(new { SecureFed = new { Federation = "shape", Rounds = "ten", MinSites = new { a = 1 } } });

        var (code, err) = await Run("aggregator", "--config", config, "--SecureFed:DpSgdLayerScales=0.5,0.5", "--SecureFed:EvaluationEntityTypes=Disease");

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains("SecureFed:DpSgdLayerScales is a list, but it was given as one value '0.5,0.5'", err, StringComparison.Ordinal);
        Assert.Contains("--SecureFed:DpSgdLayerScales:0=0.5 --SecureFed:DpSgdLayerScales:1=0.5", err, StringComparison.Ordinal);
        Assert.Contains("\"DpSgdLayerScales\": [0.5, 0.5]", err, StringComparison.Ordinal);
        Assert.Contains("SecureFed:EvaluationEntityTypes is a list, but it was given as one value 'Disease'", err, StringComparison.Ordinal);
        Assert.Contains("\"EvaluationEntityTypes\": [\"Disease\"]", err, StringComparison.Ordinal);
        Assert.Contains("SecureFed:MinSites must be a whole number", err, StringComparison.Ordinal);
        Assert.Contains("gives it an object or list (with a)", err, StringComparison.Ordinal);
        Assert.Contains("SecureFed:Rounds is 'ten', which is not a whole number", err, StringComparison.Ordinal);
        Assert.DoesNotContain("System.Int32", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    /// <summary>
    /// Layer scales of another count than the model's parameter tensors: every agent declined every round naming the two
    /// counts, while the aggregator started and announced them (it knew only the spec's hash). A usage error at start-up now.
    /// </summary>
    [Fact]
    public async Task Aggregator_LayerScalesOfAnotherCountThanTheModelsTensors_UsageErrorNamingBothCounts()
    {
        string config = Config(new { SecureFed = new { Federation = "shape" } });

        var (code, err) = await Run("aggregator", "--config", config, "--SecureFed:DpSgdLayerScales:0=0.5", "--SecureFed:DpSgdLayerScales:1=0.5");

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Matches(@"SecureFed:DpSgdLayerScales has 2 entries, but the model \(the default clinical model\) has \d+ parameter tensors: every agent would decline every round", err);
        Assert.Contains("securefed model layer-scales", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Agent_WordForABooleanAndObjectForANumber_UsageErrorNamingBoth()
    {
        string config = Config(new { SecureFed = new { Site = "site-a", Aggregator = "https://127.0.0.1:7443", EpsilonBudget = new { x = 1 }, DpDropout = "yes" } });

        var (code, err) = await Run("agent", "--config", config);

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains("SecureFed:DpDropout is 'yes', which is not true or false.", err, StringComparison.Ordinal);
        Assert.Contains("SecureFed:EpsilonBudget must be a number", err, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClusterSilo_ObjectForThePort_UsageErrorNamingTheKey()
    {
        string config = Config(new { SecureFed = new { Federation = "shape", Cluster = new { ConnectionString = "Host=127.0.0.1;Database=securefed", SiloPort = new { x = 1 }, GatewayPort = "thirty" } } });

        var (code, err) = await Run("aggregator", "--config", config);

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains("SecureFed:Cluster:SiloPort must be a whole number", err, StringComparison.Ordinal);
        Assert.Contains("SecureFed:Cluster:GatewayPort is 'thirty', which is not a whole number", err, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));
        return (code, stderr.ToString());
    }

    private string Config(object content)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, JsonSerializer.Serialize(content));
        return path;
    }
}
