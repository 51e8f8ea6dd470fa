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

    /// <summary>Under a quorum announced for as many colluders as the site guards against (at most t − 1), it declines only from t on.</summary>
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
            threshold: (n / 2) + 1, graphDegree: n - 1, vectorLength: 4, bitWidth: 32, consistencyColluders: Math.Min(colluders, n / 2));

        Assert.Equal(expected, AgentRunner.ColludingSitesRefusal(parameters, colluders));
        Assert.InRange(parameters.SignatureQuorum(Math.Min(colluders, parameters.Threshold - 1)), parameters.Threshold, n);
        foreach (Ed25519PrivateKey key in keys)
        {
            key.Dispose();
        }
    }

    /// <summary>
    /// A site that requires more consistency signatures than the round's announced quorum (or, under the complete graph
    /// with nothing announced, more than t) declines before any work, naming both settings; when its colluders need no
    /// more signatures than the round's (q is flat in c), it joins.
    /// </summary>
    [Theory]
    [InlineData(5, 0, 1, "this site guards against 1 colluding sites (SecureFed:ColludingSites) and answers the unmasking request only with 4 of the 5 consistency signatures, but the round's consistency quorum is announced for 0 (3 signatures): ask the aggregator's operator to set SecureFed:ConsistencyColluders to at least 1, or lower this site's SecureFed:ColludingSites")]
    [InlineData(5, 1, 1, null)]
    [InlineData(5, 2, 1, null)]
    [InlineData(7, 1, 2, null)] // q(1) = q(2) = 5: the same signatures, nothing to decline
    [InlineData(7, 1, 3, "this site guards against 3 colluding sites (SecureFed:ColludingSites) and answers the unmasking request only with 6 of the 7 consistency signatures, but the round's consistency quorum is announced for 1 (5 signatures): ask the aggregator's operator to set SecureFed:ConsistencyColluders to at least 3, or lower this site's SecureFed:ColludingSites")]
    [InlineData(4, 0, 1, null)] // an even cohort's t = 3 already keeps one colluder out: q(1) = q(0) = 3
    public void ColludingSitesRefusal_AnnouncedQuorum_DeclinesOnlyAboveIt(int n, int announced, int colluders, string? expected)
    {
        Ed25519PrivateKey[] keys = [.. Enumerable.Range(0, n).Select(_ => Ed25519PrivateKey.Generate(SystemRandomSource.Instance))];
        var parameters = new RoundParameters("fed", 1, new string('0', 32), [.. Enumerable.Range(1, n).Select(i => new Participant(i, $"site-{i}", keys[i - 1].PublicKey))],
            threshold: (n / 2) + 1, graphDegree: n - 1, vectorLength: 4, bitWidth: 32, consistencyColluders: announced);

        Assert.Equal(expected, AgentRunner.ColludingSitesRefusal(parameters, colluders));
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
