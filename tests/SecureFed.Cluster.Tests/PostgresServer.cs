using SecureFed.Cluster.Bench;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A throw-away PostgreSQL server for one test class (<see cref="ThrowawayPostgres"/>: initdb in a temporary folder,
/// pg_ctl start on a free port of 127.0.0.1, one database; stopped and deleted on dispose). <see cref="Unavailable"/>
/// says why it could not start (no binaries found).
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private ThrowawayPostgres? _server;

    public string ConnectionString => _server?.ConnectionString ?? "";

    public string? Unavailable { get; private set; }

    public async Task InitializeAsync()
    {
        Unavailable = ThrowawayPostgres.Unavailable();
        if (Unavailable is null)
        {
            _server = await ThrowawayPostgres.StartAsync("securefed_test", CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        }
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
