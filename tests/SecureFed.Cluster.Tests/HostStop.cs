using Microsoft.Extensions.Hosting;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Stops a test's web host (a front, an aggregator service) without racing its shutdown timeout. Before, tests waited
/// <c>StopAsync().WaitAsync(30 s)</c>, as long as the host's own shutdown timeout (30 s): a stop that waited for a call still
/// in flight threw a <see cref="TimeoutException"/> from the test's clean-up, which replaced whatever the test body had
/// thrown. Here the stop is given a token instead: Kestrel waits for calls in flight until <see cref="Grace"/>, then aborts
/// their connections and returns; nothing of ours times out. (A front's prompt stop is asserted where it is the point:
/// <c>FrontForwardingTests.StopAsync_ForwardedLongPollInFlight_EndsUnavailableNamingTheStopAndTheFrontStops</c>.)
/// </summary>
internal static class HostStop
{
    /// <summary>How long a stop waits for calls in flight before their connections are aborted: 15 s.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(15);

    /// <summary>Stops <paramref name="host"/>, aborting what is still in flight after <see cref="Grace"/>.</summary>
    public static async Task StopAsync(IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        using var abort = new CancellationTokenSource(Grace);
        await host.StopAsync(abort.Token);
    }
}
