using System.Net;
using System.Net.Sockets;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// Free TCP ports on 127.0.0.1 for the processes a benchmark or a test starts (silo, gateway and Kestrel ports).
/// </summary>
/// <remarks>
/// A port handed out here is bound later by another process, so it must stay free in between. Ports are therefore taken
/// below the kernel's ephemeral range (<c>/proc/sys/net/ipv4/ip_local_port_range</c>, 32768-60999 on Debian 12), where
/// the kernel never puts the local end of an outgoing connection: a port found by binding port 0 was inside that range,
/// and a PostgreSQL or gRPC client connection of any process could take it first (a cluster test's silo then failed with
/// "Address already in use"). A random port of the range is tried by binding it; <see cref="Next"/> never returns a port
/// twice in one process (two such calls could otherwise return the same port, and a silo then refused its own
/// configuration: "SiloPort and GatewayPort must differ"). Another process that binds the same fixed port first still
/// makes the bind fail loudly; random choice over about 22,000 ports makes that rare.
/// </remarks>
public static class LoopbackPorts
{
    private const int MaxTries = 1000;

    /// <summary>The lowest port handed out (above the well-known and most registered service ports in use on a test machine).</summary>
    internal const int Lowest = 10_000;

    private static readonly HashSet<int> HandedOut = [];

    /// <summary>The first port of the kernel's ephemeral range (32768 when it cannot be read).</summary>
    internal static int EphemeralLow { get; } = ReadEphemeralLow();

    /// <summary>A port that is free now, below the ephemeral range, and that this process has not handed out before.</summary>
    /// <exception cref="InvalidOperationException">No such port was found in 1,000 tries.</exception>
    public static int Next()
    {
        lock (HandedOut)
        {
            int high = Math.Max(Lowest + 1_000, EphemeralLow);
            for (int attempt = 0; attempt < MaxTries; attempt++)
            {
                int port = Random.Shared.Next(Lowest, high);
                if (!HandedOut.Contains(port) && Bindable(port))
                {
                    HandedOut.Add(port);
                    return port;
                }
            }

            throw new InvalidOperationException($"no free TCP port on 127.0.0.1 in {Lowest}-{high - 1} that this process has not already handed out ({MaxTries} tries, {HandedOut.Count} handed out)");
        }
    }

    private static bool Bindable(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int ReadEphemeralLow()
    {
        try
        {
            string[] range = File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return int.TryParse(range[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int low) && low > Lowest ? low : 32_768;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or IndexOutOfRangeException)
        {
            return 32_768;
        }
    }
}
