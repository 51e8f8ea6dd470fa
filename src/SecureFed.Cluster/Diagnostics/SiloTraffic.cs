using System.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;

namespace SecureFed.Cluster.Diagnostics;

/// <summary>
/// Counts the Orleans message bytes this process receives and sends (header + body of every message, on every
/// connection: from clients through the gateway and from other silos), from Orleans' own instruments
/// <c>orleans-messaging-received-messages-size</c> and <c>orleans-messaging-sent-messages-size</c>. Listens from the
/// moment the host starts it; what the PostgreSQL driver exchanges is not counted.
/// </summary>
internal sealed class SiloTraffic : IHostedService, IDisposable
{
    private const string ReceivedInstrument = "orleans-messaging-received-messages-size";
    private const string SentInstrument = "orleans-messaging-sent-messages-size";
    private readonly MeterListener _listener = new();
    private long _received;
    private long _sent;

    public SiloTraffic()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Name is ReceivedInstrument or SentInstrument)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => Add(instrument, value));
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => Add(instrument, value));
        _listener.Start();
    }

    /// <summary>Message bytes received since the listener started.</summary>
    public long BytesReceived => Interlocked.Read(ref _received);

    /// <summary>Message bytes sent since the listener started.</summary>
    public long BytesSent => Interlocked.Read(ref _sent);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _listener.Dispose();

    private void Add(Instrument instrument, long value)
    {
        if (instrument.Name == ReceivedInstrument)
        {
            Interlocked.Add(ref _received, value);
        }
        else
        {
            Interlocked.Add(ref _sent, value);
        }
    }
}
