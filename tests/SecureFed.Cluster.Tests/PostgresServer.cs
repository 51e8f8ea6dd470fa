using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// A throw-away PostgreSQL server for one test class: initdb in a temporary folder, pg_ctl start on a free port of
/// 127.0.0.1, one database; stopped and deleted on dispose. Runs the server as user 'postgres' when the tests run as
/// root (initdb refuses root). <see cref="Unavailable"/> says why it could not start (no binaries found).
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private string? _dir;
    private string? _bin;

    public string ConnectionString { get; private set; } = "";

    public string? Unavailable { get; private set; }

    public async Task InitializeAsync()
    {
        _bin = FindBin();
        if (_bin is null)
        {
            Unavailable = "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; install Debian's 'postgresql' package";
            return;
        }

        _dir = Path.Combine(Path.GetTempPath(), "securefed-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(_dir);
        bool root = Environment.UserName == "root";
        if (root)
        {
            await RunAsync("chown", ["postgres", _dir], asPostgres: false);
        }

        int port = FreePort();
        string data = Path.Combine(_dir, "data");
        await RunAsync(Path.Combine(_bin, "initdb"), ["-D", data, "-U", "securefed", "--auth=trust", "-E", "UTF8", "--no-sync"], root);
        await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", data, "-l", Path.Combine(_dir, "server.log"), "-w", "-t", "60",
            "-o", $"-p {port} -k {_dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], root);
        await RunAsync(Path.Combine(_bin, "createdb"), ["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "securefed", "securefed_test"], root);
        ConnectionString = $"Host=127.0.0.1;Port={port};Database=securefed_test;Username=securefed;Pooling=true";
    }

    public async Task DisposeAsync()
    {
        if (_dir is not null && _bin is not null && Directory.Exists(Path.Combine(_dir, "data")))
        {
            try
            {
                await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", Path.Combine(_dir, "data"), "-m", "immediate", "-w", "stop"], Environment.UserName == "root");
            }
            finally
            {
                Directory.Delete(_dir, recursive: true);
            }
        }
    }

    private static string? FindBin()
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string program, IReadOnlyList<string> arguments, bool asPostgres)
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

        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(90));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await stderr}{await stdout}");
        }
    }
}
