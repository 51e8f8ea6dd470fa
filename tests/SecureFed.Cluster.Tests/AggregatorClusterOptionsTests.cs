namespace SecureFed.Cluster.Tests;

public sealed class AggregatorClusterOptionsTests
{
    [Fact]
    public void Validate_GoodSection_HasNoProblems()
    {
        var options = new AggregatorClusterOptions { ConnectionString = "Host=127.0.0.1;Port=5432;Database=securefed;Username=securefed" };

        Assert.Empty(options.Validate());
    }

    [Fact]
    public void Validate_EveryProblem_IsNamedAtOnce()
    {
        var options = new AggregatorClusterOptions
        {
            SiloPort = 0,
            GatewayPort = 70000,
            PrimarySiloPort = 11111,
            AdvertisedAddress = "not-an-ip",
            SliceSize = 10,
            ConnectionString = "Host=127.0.0.1",
        };

        IReadOnlyList<string> problems = options.Validate();

        Assert.Contains("SecureFed:Cluster:SiloPort must be between 1 and 65535, got 0.", problems);
        Assert.Contains("SecureFed:Cluster:GatewayPort must be between 1 and 65535, got 70000.", problems);
        Assert.Contains(problems, p => p.StartsWith("SecureFed:Cluster:PrimarySiloPort is no longer used: membership is kept in the PostgreSQL database", StringComparison.Ordinal));
        Assert.Contains("SecureFed:Cluster:AdvertisedAddress must be an IP address, got 'not-an-ip'.", problems);
        Assert.Contains(problems, p => p.StartsWith("SecureFed:Cluster:SliceSize must be between 1024", StringComparison.Ordinal));
        Assert.Contains("SecureFed:Cluster:ConnectionString must name a Database.", problems);
        Assert.Equal(6, problems.Count);
    }

    [Fact]
    public void Validate_SpillDirectory_BadPathsNamedGoodOneCreated()
    {
        string root = Directory.CreateTempSubdirectory("securefed-spill-option-").FullName;
        try
        {
            string file = Path.Combine(root, "a-file");
            File.WriteAllText(file, "not a directory");
            string created = Path.Combine(root, "spills", "here");
            const string Connection = "Host=127.0.0.1;Database=securefed";

            Assert.Contains("SecureFed:Cluster:SpillDirectory must be an absolute path, got 'relative/spills'.",
                new AggregatorClusterOptions { ConnectionString = Connection, SpillDirectory = "relative/spills" }.Validate());
            Assert.Contains($"SecureFed:Cluster:SpillDirectory '{file}' is a file, not a directory.",
                new AggregatorClusterOptions { ConnectionString = Connection, SpillDirectory = file }.Validate());
            string under = Assert.Single(new AggregatorClusterOptions { ConnectionString = Connection, SpillDirectory = Path.Combine(file, "sub") }.Validate());
            Assert.StartsWith($"SecureFed:Cluster:SpillDirectory '{Path.Combine(file, "sub")}' cannot be used for the slice spills: ", under, StringComparison.Ordinal);

            Assert.Empty(new AggregatorClusterOptions { ConnectionString = Connection, SpillDirectory = created }.Validate());
            Assert.True(Directory.Exists(created));
            Assert.Empty(Directory.EnumerateFileSystemEntries(created)); // the probe file is gone
            Assert.Empty(new AggregatorClusterOptions { ConnectionString = Connection }.Validate()); // empty: the default under TMPDIR
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void ValidateRole_ListenOnSliceOnlySilo_RefusedNamingCoordinator()
    {
        var sliceOnly = new AggregatorClusterOptions();
        var coordinator = new AggregatorClusterOptions { Coordinator = true };

        string problem = Assert.Single(sliceOnly.ValidateRole("https://127.0.0.1:7443", "/kits/aggregator"));

        Assert.StartsWith("SecureFed:Listen is set ('https://127.0.0.1:7443') but SecureFed:Cluster:Coordinator is false", problem, StringComparison.Ordinal);
        Assert.Empty(sliceOnly.ValidateRole(null, "/kits/aggregator"));
        Assert.Empty(coordinator.ValidateRole("https://127.0.0.1:7443"));
    }

    [Theory]
    [InlineData("http://127.0.0.1:7444", false)]
    [InlineData("https://silo-2.example:7444", false)]
    [InlineData("https://127.0.0.1:7444/upload", false)]
    [InlineData("https://127.0.0.1:7444", true)]
    public void Validate_BadAgentListen_NamesTheSetting(string agentListen, bool coordinator)
    {
        var options = new AggregatorClusterOptions { ConnectionString = "Host=127.0.0.1;Database=securefed", AgentListen = agentListen, Coordinator = coordinator };

        string problem = Assert.Single(options.Validate());

        Assert.StartsWith("SecureFed:Cluster:AgentListen ", problem, StringComparison.Ordinal);
        Assert.Contains(coordinator ? "the coordinator serves its slices on SecureFed:Listen" : "must be an https:// URL with an IP address and a port", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidateRole_AgentListenWithoutKit_RefusedNamingKitDirectory()
    {
        var options = new AggregatorClusterOptions { AgentListen = "https://127.0.0.1:0" };

        string problem = Assert.Single(options.ValidateRole(null, null));

        Assert.StartsWith("SecureFed:KitDirectory is required with SecureFed:Cluster:AgentListen", problem, StringComparison.Ordinal);
        Assert.Empty(options.ValidateRole(null, "/etc/securefed/aggregator-kit"));
    }

    [Fact]
    public void AdvertisedAgentEndpoint_UnspecifiedHost_BecomesAdvertisedAddress()
    {
        var options = new AggregatorClusterOptions { AdvertisedAddress = "10.0.0.7" };

        Assert.Equal(new Uri("https://10.0.0.7:7444"), options.AdvertisedAgentEndpoint(new Uri("https://0.0.0.0:7444")));
        Assert.Equal(new Uri("https://127.0.0.1:7444"), options.AdvertisedAgentEndpoint(new Uri("https://127.0.0.1:7444")));
    }

    [Theory]
    [InlineData("", "SecureFed:Cluster:ConnectionString is required")]
    [InlineData("Hots=x;Database=y", "SecureFed:Cluster:ConnectionString is not a valid Npgsql connection string")]
    public void Validate_BadConnectionString_SaysWhatIsWrong(string connectionString, string expected)
    {
        var options = new AggregatorClusterOptions { ConnectionString = connectionString };

        Assert.StartsWith(expected, Assert.Single(options.Validate()), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_PrimarySiloPortSet_RefusedAsRemovedWithTheReason()
    {
        var options = new AggregatorClusterOptions { PrimarySiloPort = 11111, ConnectionString = "Host=h;Database=d" };

        Assert.Equal(
            "SecureFed:Cluster:PrimarySiloPort is no longer used: membership is kept in the PostgreSQL database of SecureFed:Cluster:ConnectionString and no silo is primary; remove the setting.",
            Assert.Single(options.Validate()));
    }

    [Fact]
    public void Validate_SameSiloAndGatewayPort_IsAProblem()
    {
        var options = new AggregatorClusterOptions { SiloPort = 12000, GatewayPort = 12000, ConnectionString = "Host=h;Database=d" };

        Assert.Equal("SecureFed:Cluster:SiloPort and SecureFed:Cluster:GatewayPort must differ, both are 12000.", Assert.Single(options.Validate()));
    }
}
