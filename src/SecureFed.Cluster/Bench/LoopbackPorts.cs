using System.Net;
using System.Net.Sockets;

namespace SecureFed.Cluster.Bench;

/// <summary>
/// Free TCP ports on 127.0.0.1 for the processes a benchmark or a test starts (silo, gateway and Kestrel ports).
/// </summary>
/// <remarks>
/// A port is found by binding port 0 and releasing it, so the kernel may hand the same port out again before the
/// process it was meant for binds it; two such calls in a row have returned the same port (a silo then refused its
/// own configuration: "SiloPort and GatewayPort must differ"). <see cref="Next"/> therefore never returns a port twice
/// in one process. A port can still be taken by another process before it is bound; that fails loudly at the bind.
/// </remarks>
public static class LoopbackPorts
{
    private const int MaxTries = 1000;
    private static readonly HashSet<int> HandedOut = [];

    /// <summary>A port that is free now and that this process has not handed out before.</summary>
    /// <exception cref="InvalidOperationException">No such port was found in 1,000 tries.</exception>
    public static int Next()
    {
        lock (HandedOut)
        {
            for (int attempt = 0; attempt < MaxTries; attempt++)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                int port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (HandedOut.Add(port))
                {
                    return port;
                }
            }

            throw new InvalidOperationException($"no free TCP port on 127.0.0.1 that this process has not already handed out ({MaxTries} tries, {HandedOut.Count} handed out)");
        }
    }
}
