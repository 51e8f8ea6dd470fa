using System.Diagnostics.Metrics;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// Npgsql's count of bytes written to the server by one data source (its pool name): the metric
/// <c>db.client.operation.npgsql.bytes_written</c>, read by <c>bench coordinator-commit</c> and the commit-point tests.
/// </summary>
public sealed class NpgsqlBytesWritten : IDisposable
{
    private readonly MeterListener _listener = new();
    private long _total;

    /// <summary>Starts counting the bytes written by the data source whose pool is named <paramref name="pool"/>.</summary>
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

    /// <summary>Bytes written so far.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Stops counting.</summary>
    public void Dispose() => _listener.Dispose();
}
