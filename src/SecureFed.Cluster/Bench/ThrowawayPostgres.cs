using System.Diagnostics;
using System.Globalization;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// A throw-away PostgreSQL server for a benchmark or a test: <c>initdb</c> in a temporary folder, <c>pg_ctl start</c> on a
/// free port of 127.0.0.1 (trust authentication, fsync off unless asked for on), one database; stopped (immediate) and
/// deleted on dispose.
/// Runs the server as user 'postgres' when this process runs as root (initdb refuses root).
/// </summary>
public sealed class ThrowawayPostgres : IAsyncDisposable
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(90);
    private readonly string _dir;
    private readonly string _bin;

    private ThrowawayPostgres(string dir, string bin, string connectionString)
    {
        _dir = dir;
        _bin = bin;
        ConnectionString = connectionString;
    }

    /// <summary>Npgsql connection string of the server's database.</summary>
    public string ConnectionString { get; }

    /// <summary>The server's data directory (its <c>postmaster.pid</c> names the postmaster's process id on its first line).</summary>
    public string DataDirectory => Path.Combine(_dir, "data");

    /// <summary>
    /// The folder of the PostgreSQL server programs (initdb, pg_ctl, createdb): on PATH or under
    /// /usr/lib/postgresql/*/bin; null when there is none.
    /// </summary>
    public static string? FindBinaries()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string initdb = Path.Combine(dir, "initdb");
            if (File.Exists(initdb) && File.Exists(Path.Combine(dir, "pg_ctl")))
            {
                // Debian links a few programs into /usr/local/bin; createdb lives next to the real initdb.
                string real = File.ResolveLinkTarget(initdb, returnFinalTarget: true)?.FullName ?? initdb;
                return Path.GetDirectoryName(real);
            }
        }

        return Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb"))).Order(StringComparer.Ordinal).LastOrDefault()
            : null;
    }

    /// <summary>Why no server can be started here, or null when the programs were found.</summary>
    public static string? Unavailable()
        => FindBinaries() is null
            ? "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; install Debian's 'postgresql' package"
            : null;

    /// <summary>Creates and starts the server, fsync off, with one database named <paramref name="database"/>.</summary>
    /// <exception cref="InvalidOperationException">The programs are missing, or one of them failed (its output is in the message).</exception>
    public static Task<ThrowawayPostgres> StartAsync(string database, CancellationToken cancellationToken)
        => StartAsync(database, fsync: false, cancellationToken);

    /// <summary>
    /// Creates and starts the server with one database named <paramref name="database"/>, with <c>fsync</c> on (as a
    /// production server runs: every commit waits for its WAL to reach the disk) or off (faster, not crash-safe).
    /// </summary>
    /// <exception cref="InvalidOperationException">The programs are missing, or one of them failed (its output is in the message).</exception>
    public static async Task<ThrowawayPostgres> StartAsync(string database, bool fsync, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(database);
        string bin = FindBinaries() ?? throw new InvalidOperationException(Unavailable());
        string dir = Path.Combine(Path.GetTempPath(), "securefed-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dir);
        bool root = Environment.UserName == "root";
        int port = LoopbackPorts.Next();
        try
        {
            if (root)
            {
                await RunAsync("chown", ["postgres", dir], asPostgres: false, cancellationToken).ConfigureAwait(false);
            }

            string data = Path.Combine(dir, "data");
            await RunAsync(Path.Combine(bin, "initdb"), ["-D", data, "-U", "securefed", "--auth=trust", "-E", "UTF8", "--no-sync"], root, cancellationToken).ConfigureAwait(false);
            await RunAsync(Path.Combine(bin, "pg_ctl"), ["-D", data, "-l", Path.Combine(dir, "server.log"), "-w", "-t", "60",
                "-o", $"-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync={(fsync ? "on" : "off")}", "start"], root, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            Directory.Delete(dir, recursive: true);
            throw;
        }

        var server = new ThrowawayPostgres(dir, bin, $"Host=127.0.0.1;Port={port};Database={database};Username=securefed;Pooling=true");
        try
        {
            await RunAsync(Path.Combine(bin, "createdb"), ["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "securefed", database], root, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return server;
    }

    /// <summary>Stops the server and deletes its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (Directory.Exists(Path.Combine(_dir, "data")))
            {
                await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", Path.Combine(_dir, "data"), "-m", "immediate", "-w", "stop"], Environment.UserName == "root", CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static async Task RunAsync(string program, IReadOnlyList<string> arguments, bool asPostgres, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(asPostgres ? "runuser" : program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (asPostgres)
        {
            info.ArgumentList.Add("-u");
            info.ArgumentList.Add("postgres");
            info.ArgumentList.Add("--");
            info.ArgumentList.Add(program);
        }

        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using Process process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {program}");
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        Task<string> stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken).WaitAsync(CommandTimeout, cancellationToken).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await stderr.ConfigureAwait(false)}{await stdout.ConfigureAwait(false)}");
        }
    }
}
