using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using SecureFed.Agent;

namespace SecureFed.Integration.Tests.Operations;

public sealed class AgentTelemetryOptionsTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("http://127.0.0.1:4317")]
    [InlineData("https://collector.hospital.example:4318")]
    public void Validate_OtlpEndpointUnsetOrHttpUrl_IsAccepted(string? endpoint)
    {
        AgentOptions options = Valid();
        options.OtlpEndpoint = endpoint;
        Assert.Empty(options.Validate());
    }

    [Theory]
    [InlineData("grpc://collector:4317", "must be an http:// or https:// URL")]
    [InlineData("collector:4317", "must be an http:// or https:// URL")]
    [InlineData("http://aggregator.example:7443", "is the aggregator's address")]
    public void Validate_BadOtlpEndpoint_NamesTheSetting(string endpoint, string problem)
    {
        AgentOptions options = Valid();
        options.OtlpEndpoint = endpoint;
        string error = Assert.Single(options.Validate());
        Assert.StartsWith("SecureFed:OtlpEndpoint ", error, StringComparison.Ordinal);
        Assert.Contains(problem, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("http://127.0.0.1:0")]
    [InlineData("http://127.0.0.1:9464")]
    [InlineData("http://localhost:9464/")]
    [InlineData("http://[::1]:9464")]
    public void Validate_AdminListenUnsetOrLoopbackHttp_IsAccepted(string? listen)
    {
        AgentOptions options = Valid();
        options.AdminListen = listen;
        Assert.Empty(options.Validate());
        Assert.Equal(!string.IsNullOrEmpty(listen), options.AdminEnabled);
    }

    [Theory]
    [InlineData("https://127.0.0.1:9464", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("http://127.0.0.1:70000", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("http://127.0.0.1:9464/metrics", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("127.0.0.1:9464", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("http://0.0.0.0:9464", "must bind a loopback address")]
    [InlineData("http://10.1.2.3:9464", "must bind a loopback address")]
    [InlineData("http://agent.hospital.example:9464", "must bind a loopback address")]
    public void Validate_BadAdminListen_NamesTheSetting(string listen, string problem)
    {
        AgentOptions options = Valid();
        options.AdminListen = listen;
        string error = Assert.Single(options.Validate());
        Assert.StartsWith("SecureFed:AdminListen ", error, StringComparison.Ordinal);
        Assert.Contains(problem, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_AdminListenOnTheAggregatorsPort_IsRefused()
    {
        AgentOptions options = Valid();
        options.Aggregator = "https://127.0.0.1:7443";
        options.AdminListen = "http://127.0.0.1:7443";
        string error = Assert.Single(options.Validate());
        Assert.Contains("another port than the aggregator's", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Build_NonLoopbackAdminListen_FailsNamingTheSetting()
    {
        IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SecureFed:Site"] = "site-de",
            ["SecureFed:Aggregator"] = "https://aggregator.example:7443",
            ["SecureFed:AdminListen"] = "http://0.0.0.0:9464",
        }).Build();
        var spec = new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]);
        OptionsValidationException error = Assert.Throws<OptionsValidationException>(() => AgentHost.Build(configuration, spec, new FakeTrainer("site-de", 10, 10)));
        Assert.Contains("SecureFed:AdminListen must bind a loopback address", error.Message, StringComparison.Ordinal);
    }

    private static AgentOptions Valid() => new() { Site = "site-de", Aggregator = "https://aggregator.example:7443" };
}
