using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Hosting;
using Xunit.Abstractions;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// Stops a test's web host (a front, an aggregator service) without racing its shutdown timeout. Before, tests waited
/// <c>StopAsync().WaitAsync(30 s)</c>, as long as the host's own shutdown timeout (30 s): a stop that waited for a call still
/// in flight threw a <see cref="TimeoutException"/> from the test's clean-up, which replaced whatever the test body had
/// thrown. Here the stop is given a token instead: Kestrel waits for calls in flight until <see cref="Grace"/>, then aborts
/// their connections and returns; nothing of ours times out. (A front's prompt stop is asserted where it is the point:
/// <c>FrontForwardingTests.StopAsync_ForwardedLongPollInFlight_EndsUnavailableNamingTheStopAndTheFrontStops</c>.)
/// A stop that used the whole grace (a call hung where none should be) fails no test, so it is not silent either: it
/// writes a line with the elapsed time to the test's output (<see cref="ITestOutputHelper"/>, or the test process's
/// standard error when none is given), as does a stop that threw. No timing is asserted.
/// </summary>
internal static class HostStop
{
    /// <summary>How long a stop waits for calls in flight before their connections are aborted: 15 s.</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Stops <paramref name="host"/>, aborting what is still in flight after <see cref="Grace"/>; says so on
    /// <paramref name="output"/> when it had to.
    /// </summary>
    public static async Task StopAsync(IHost host, ITestOutputHelper? output = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        using var abort = new CancellationTokenSource(Grace);
        var clock = Stopwatch.StartNew();
        try
        {
            await host.StopAsync(abort.Token);
        }
        catch (Exception ex)
        {
            Write(output, string.Create(CultureInfo.InvariantCulture,
                $"HostStop: stopping the host threw after {clock.Elapsed.TotalSeconds:F1} s (grace {Grace.TotalSeconds:F0} s): {ex.GetType().Name}: {ex.Message}"));
            throw;
        }

        if (abort.IsCancellationRequested)
        {
            Write(output, string.Create(CultureInfo.InvariantCulture,
                $"HostStop: the host's stop used the whole grace of {Grace.TotalSeconds:F0} s (it took {clock.Elapsed.TotalSeconds:F1} s): calls still in flight after it had their connections aborted; something the stop should have ended hung"));
        }
    }

    private static void Write(ITestOutputHelper? output, string line)
    {
        if (output is not null)
        {
            try
            {
                output.WriteLine(line);
                return;
            }
            catch (InvalidOperationException)
            {
                // The test has already finished (a fixture's clean-up): the line goes to standard error instead.
            }
        }

        Console.Error.WriteLine(line);
    }
}
