using System.Diagnostics.Metrics;

namespace SecureFed.Cluster.Tests;

/// <summary>Npgsql's count of bytes written to the server by one data source (its pool name).</summary>
internal sealed class NpgsqlBytesWritten : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _total;

    public NpgsqlBytesWritten(string pool)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Npgsql" && instrument.Name == "db.client.operation.npgsql.bytes_written")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                if (tag.Key == "db.client.connection.pool.name" && Equals(tag.Value, pool))
                {
                    Interlocked.Add(ref _total, value);
                }
            }
        });
        _listener.Start();
    }

    public long Total => Interlocked.Read(ref _total);

    public void Dispose() => _listener.Dispose();
}
