using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace SecureFed.Agent;

/// <summary>Hosts the <see cref="AgentRunner"/> as a background service; stops the host when the federation finishes.</summary>
public sealed class AgentWorker : BackgroundService
{
    private readonly AgentOptions _options;
    private readonly AgentState _state;
    private readonly ILocalTrainer _trainer;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<AgentWorker> _logger;

    /// <summary>Creates the worker.</summary>
    public AgentWorker(IOptions<AgentOptions> options, AgentState state, ILocalTrainer trainer, IHostApplicationLifetime lifetime, ILogger<AgentWorker> logger, AgentTelemetry telemetry)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(telemetry);
        Telemetry = telemetry;
        _options = options.Value;
        _state = state;
        _trainer = trainer;
        _lifetime = lifetime;
        _logger = logger;
    }

    /// <summary>The site this worker serves.</summary>
    public string SiteName => _options.Site;

    /// <summary>Raised after every round (forwarded from the runner).</summary>
    public event EventHandler<AgentRoundReport>? RoundFinished;

    /// <summary>Raised once when the agent stops because of an error (before the host is told to stop).</summary>
    public event EventHandler<Exception>? Failed;

    /// <summary>The error that stopped the agent, or null while it runs or when it stopped normally.</summary>
    public Exception? Failure { get; private set; }

    /// <summary>Optional fault injection.</summary>
    public DropoutHook? Dropout { get; set; }

    /// <summary>Test hook forwarded to the runner.</summary>
    internal Action<long, uint[]>? InputCaptured { get; set; }

    /// <summary>This agent's metrics (meter <see cref="AgentTelemetry.Name"/>).</summary>
    public AgentTelemetry Telemetry { get; }

    /// <summary>The runner, once started.</summary>
    public AgentRunner? Runner { get; private set; }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var client = new AggregatorClient(_options.AggregatorEndpoints(), _state.Kit, TimeSpan.FromSeconds(_options.CallTimeoutSeconds), _options.MaxRetries, telemetry: Telemetry);
        Runner = new AgentRunner(_options, _state.Kit, client, _trainer, _state.Ledger, _state.Audit, _logger) { Dropout = Dropout, InputCaptured = InputCaptured, Telemetry = Telemetry };
        Runner.RoundFinished += (sender, report) => RoundFinished?.Invoke(this, report);
        try
        {
            await Runner.RunAsync(stoppingToken).ConfigureAwait(false);
            if (stoppingToken.IsCancellationRequested)
            {
                Log.StoppedByOperator(_logger, _options.Site); // stopped between two calls
            }
        }
        catch (Exception ex) when (IsStop(ex, stoppingToken))
        {
            // Ctrl-C (or the host stopping) while the agent waited, trained or talked to the aggregator: a clean stop.
            Log.StoppedByOperator(_logger, _options.Site);
        }
        catch (Exception ex) when (ex is AggregatorTrustException or AggregatorRefusedSiteException or AggregatorUnexpectedStatusException)
        {
            // Known reasons to stop, said in one line (the log needs no stack trace for them).
            Failure = ex;
            Log.AgentStopped(_logger, _options.Site, ex.Message);
            Failed?.Invoke(this, ex);
        }
        catch (Exception ex)
        {
            // Reported here (with the full trace in the log) and through Failure/Failed, not rethrown: the host
            // stops cleanly and whoever runs it decides how to tell the operator (one line, exit code 1).
            Failure = ex;
            Log.AgentFailed(_logger, _options.Site, ex);
            Failed?.Invoke(this, ex);
        }
        finally
        {
            _lifetime.StopApplication();
        }
    }

    /// <summary>
    /// True when <paramref name="exception"/> is how a stop requested through <paramref name="stoppingToken"/> surfaced:
    /// a cancellation, or a call the stop cancelled (<see cref="Grpc.Core.StatusCode.Cancelled"/>).
    /// </summary>
    internal static bool IsStop(Exception exception, CancellationToken stoppingToken)
        => stoppingToken.IsCancellationRequested
            && exception is OperationCanceledException or Grpc.Core.RpcException { StatusCode: Grpc.Core.StatusCode.Cancelled };
}
