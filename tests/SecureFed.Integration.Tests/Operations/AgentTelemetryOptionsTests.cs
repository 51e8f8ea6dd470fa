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

    private static AgentOptions Valid() => new() { Site = "site-de", Aggregator = "https://aggregator.example:7443" };
}
