using SecureFed.Aggregator;

namespace SecureFed.Integration.Tests.Operations;

public sealed class AdminOptionsTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("http://127.0.0.1:9464")]
    [InlineData("http://127.0.0.1:0")]
    [InlineData("http://localhost:9464")]
    [InlineData("http://[::1]:9464")]
    public void Validate_LoopbackAdminListenOrNone_IsAccepted(string? admin)
    {
        Assert.Empty(Valid(admin).Validate());
    }

    [Theory]
    [InlineData("http://0.0.0.0:9464", "must bind a loopback address")]
    [InlineData("http://10.1.2.3:9464", "must bind a loopback address")]
    [InlineData("https://127.0.0.1:9464", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("http://127.0.0.1:9464/console", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("127.0.0.1:9464", "must be an http://127.0.0.1:PORT URL")]
    [InlineData("http://127.0.0.1:7443", "must use another port than SecureFed:Listen")]
    public void Validate_BadAdminListen_NamesTheSetting(string admin, string problem)
    {
        string error = Assert.Single(Valid(admin).Validate());
        Assert.StartsWith("SecureFed:AdminListen ", error, StringComparison.Ordinal);
        Assert.Contains(problem, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_BadOtlpEndpoint_NamesTheSetting()
    {
        AggregatorOptions options = Valid(null);
        options.OtlpEndpoint = "grpc://collector:4317";
        Assert.StartsWith("SecureFed:OtlpEndpoint must be an http:// or https:// URL", Assert.Single(options.Validate()), StringComparison.Ordinal);
    }

    [Fact]
    public void OperatorTokenVerifierPath_Unset_IsTheKitsVerifier()
    {
        AggregatorOptions options = Valid("http://127.0.0.1:9464");
        Assert.Equal(Path.Combine("kit", "operator-token.sha256"), options.OperatorTokenVerifierPath);
        options.OperatorTokenVerifier = "/etc/securefed/operator.sha256";
        Assert.Equal("/etc/securefed/operator.sha256", options.OperatorTokenVerifierPath);
    }

    private static AggregatorOptions Valid(string? admin) => new()
    {
        Federation = "fed",
        KitDirectory = "kit",
        ModelSpecSha256 = new string('a', 64),
        AdminListen = admin,
    };
}
