using Microsoft.Extensions.Configuration;
using SecureFed.Aggregator;
using SecureFed.Cli.Commands;

namespace SecureFed.Integration.Tests;

/// <summary>
/// A coordinator-eligible silo's <c>SecureFed:Listen</c> (docs/cluster.md §6): a missing or blank key is the aggregator's
/// default address, as if configured; any other value, port 0 included, is kept.
/// </summary>
public sealed class CoordinatorListenTests
{
    [Fact]
    public void ResolveCoordinatorListen_NoKey_TheAggregatorsDefaultAddress()
    {
        IConfiguration configuration = Configuration(new() { ["SecureFed:Federation"] = "fed" });

        (IConfiguration resolved, bool defaulted) = ServiceCommands.ResolveCoordinatorListen(configuration);

        Assert.True(defaulted);
        Assert.Equal(new AggregatorOptions().Listen, resolved["SecureFed:Listen"]);
        Assert.Equal("fed", resolved["SecureFed:Federation"]); // the rest of the configuration kept
        Assert.Null(configuration["SecureFed:Listen"]); // the given configuration unchanged
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    public void ResolveCoordinatorListen_BlankKey_TheAggregatorsDefaultAddress(string listen)
    {
        (IConfiguration resolved, bool defaulted) = ServiceCommands.ResolveCoordinatorListen(Configuration(new() { ["SecureFed:Listen"] = listen }));

        Assert.True(defaulted);
        Assert.Equal(new AggregatorOptions().Listen, resolved["SecureFed:Listen"]);
    }

    [Theory]
    [InlineData("https://127.0.0.1:7450")]
    [InlineData("https://0.0.0.0:7443")]
    [InlineData("https://127.0.0.1:0")] // port 0: still picked by the standby front
    public void ResolveCoordinatorListen_GivenAddress_Unchanged(string listen)
    {
        IConfiguration configuration = Configuration(new() { ["SecureFed:Listen"] = listen });

        (IConfiguration resolved, bool defaulted) = ServiceCommands.ResolveCoordinatorListen(configuration);

        Assert.False(defaulted);
        Assert.Same(configuration, resolved);
        Assert.Equal(listen, resolved["SecureFed:Listen"]);
    }

    private static IConfiguration Configuration(Dictionary<string, string?> values)
        => new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    [Theory]
    [InlineData(true, false, "the address this silo's standby front picked for SecureFed:Listen port 0 and announced", "give SecureFed:Listen a fixed port")]
    [InlineData(false, true, "the aggregator's default address, which this silo's standby front served (its configuration has no SecureFed:Listen)", "set SecureFed:Listen to a free address")]
    [InlineData(false, false, "this silo's SecureFed:Listen, which its standby front served", "set SecureFed:Listen to a free address")]
    public void TakenAfterFrontStopped_NamesTheAddressWhereItCameFromAndTheRemedy(bool picked, bool defaulted, string origin, string remedy)
    {
        string message = ServiceCommands.TakenAfterFrontStopped(new Uri("https://127.0.0.1:7443"), picked, defaulted, "Address already in use");

        Assert.StartsWith($"coordinator lease taken, but the aggregator service cannot bind https://127.0.0.1:7443, {origin}: another process took it after the front stopped (Address already in use).", message, StringComparison.Ordinal);
        Assert.Contains("The lease is released for another coordinator-eligible silo", message, StringComparison.Ordinal);
        Assert.EndsWith(remedy + ".", message, StringComparison.Ordinal);
    }
}
