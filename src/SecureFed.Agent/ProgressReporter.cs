using Grpc.Core;
using Microsoft.Extensions.Logging;
using SecureFed.Wire.V1;

namespace SecureFed.Agent;

/// <summary>
/// While the site trains for a round, tells the aggregator every <c>progress_interval_seconds</c> of the announcement
/// that it is still at work (docs/PROTOCOL.md "Training progress"), so that an agent that crashes or loses its network
/// while training is found gone after <c>progress_silence_seconds</c> instead of at the training deadline. The first
/// report goes at once. It stops when disposed (before the keys are sent, or when the round ends otherwise), when the
/// aggregator does not serve reports (an earlier version: UNIMPLEMENTED) or refuses one (the round has moved on); an
/// undelivered report is only logged, the next one follows on time.
/// </summary>
internal sealed class ProgressReporter : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly Task _loop;

    private ProgressReporter(Func<CancellationToken, Task> loop, CancellationToken cancellationToken)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _loop = Task.Run(() => loop(_stop.Token), CancellationToken.None);
    }

    /// <summary>Starts the reports when <paramref name="intervalSeconds"/> is positive; otherwise null (nothing to stop).</summary>
    public static ProgressReporter? Start(AggregatorClient client, Header header, uint intervalSeconds, ILogger logger, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(header);
        if (intervalSeconds == 0)
        {
            return null;
        }

        TimeSpan interval = TimeSpan.FromSeconds(Math.Min(intervalSeconds, 3_600u));
        return new ProgressReporter(token => RunAsync(client, header, interval, logger, token), cancellationToken);
    }

    private static async Task RunAsync(AggregatorClient client, Header header, TimeSpan interval, ILogger logger, CancellationToken cancellationToken)
    {
        var request = new ProgressReport { Header = header };
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await client.ReportProgressAsync(request, interval, cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unimplemented or StatusCode.FailedPrecondition or StatusCode.PermissionDenied or StatusCode.InvalidArgument)
            {
                // An aggregator without reports, or one that has moved past this round: nothing more to say.
                Log.ProgressStopped(logger, header.Sender, (long)header.Round, $"{ex.StatusCode}: {AggregatorText.ForLog(ex.Status.Detail)}");
                return;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // Unreachable, retries spent, the circuit open: a report is never worth stopping the round for.
                Log.ProgressNotDelivered(logger, header.Sender, (long)header.Round, AggregatorText.ForLog(ex.Message), (int)interval.TotalSeconds);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Stops the reports and waits for the one in flight, if any, to end.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // stopped mid-call
        }

        _stop.Dispose();
    }
}
