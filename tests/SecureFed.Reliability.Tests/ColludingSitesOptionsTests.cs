using Microsoft.Extensions.Configuration;
using SecureFed.Agent;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// The agent's <c>ColludingSites</c> (docs/PROTOCOL.md, "Consistency quorum"): binds from configuration, defaults to the
/// protocol's t signatures, refuses a negative value, and declines a round whose threshold it cannot guard below.
/// </summary>
public sealed class ColludingSitesOptionsTests
{
    [Fact]
    public void ColludingSites_DefaultBoundOrNegative_ZeroByDefaultNegativeRefusedNamingTheSetting()
    {
        Assert.Equal(0, Bind(null).ColludingSites);
        AgentOptions two = Bind("2");
        Assert.Equal(2, two.ColludingSites);
        Assert.Empty(two.Validate());
        Assert.Contains("SecureFed:ColludingSites must be 0 (the protocol's t signatures) or the number of colluding sites to guard against, got -1.", Bind("-1").Validate());
    }

    [Theory]
    [InlineData(5, 2, null)]
    [InlineData(5, 3, "this site guards against 3 colluding sites (SecureFed:ColludingSites), but the round's threshold is t = 3 of 5: 3 colluders can rebuild any site's secrets from their own shares")]
    [InlineData(4, 2, null)]
    [InlineData(3, 1, null)]
    [InlineData(3, 2, "this site guards against 2 colluding sites (SecureFed:ColludingSites), but the round's threshold is t = 2 of 3: 2 colluders can rebuild any site's secrets from their own shares")]
    public void ColludingSitesRefusal_CohortOfN_DeclinesOnlyFromTOn(int n, int colluders, string? expected)
    {
        Ed25519PrivateKey[] keys = [.. Enumerable.Range(0, n).Select(_ => Ed25519PrivateKey.Generate(SystemRandomSource.Instance))];
        var parameters = new RoundParameters("fed", 1, new string('0', 32), [.. Enumerable.Range(1, n).Select(i => new Participant(i, $"site-{i}", keys[i - 1].PublicKey))],
            threshold: (n / 2) + 1, graphDegree: n - 1, vectorLength: 4, bitWidth: 32);

        Assert.Equal(expected, AgentRunner.ColludingSitesRefusal(parameters, colluders));
        Assert.InRange(parameters.SignatureQuorum(Math.Min(colluders, parameters.Threshold - 1)), parameters.Threshold, n);
        foreach (Ed25519PrivateKey key in keys)
        {
            key.Dispose();
        }
    }

    private static AgentOptions Bind(string? colluders)
    {
        var settings = new Dictionary<string, string?> { ["SecureFed:Site"] = "site-a", ["SecureFed:Aggregator"] = "https://127.0.0.1:1" };
        if (colluders is not null)
        {
            settings["SecureFed:ColludingSites"] = colluders;
        }

        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AgentOptions.Section).Bind(options);
        return options;
    }
}
