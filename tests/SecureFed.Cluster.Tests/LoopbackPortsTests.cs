using System.Net;
using System.Net.Sockets;
using SecureFed.Cluster.Bench;

namespace SecureFed.Cluster.Tests;

/// <summary>The ports benchmarks and tests give the processes they start (silo, gateway, Kestrel).</summary>
public sealed class LoopbackPortsTests
{
    [Fact]
    public void Next_ManyCalls_NeverTheSamePortTwiceAndEachBindable()
    {
        // Binding port 0 and releasing it 300 times returned some port twice in 19 of 20 trials on Debian 12: what made
        // a bench silo's SiloPort equal its GatewayPort.
        int[] ports = [.. Enumerable.Range(0, 300).Select(_ => LoopbackPorts.Next())];

        Assert.Equal(ports.Length, ports.Distinct().Count());
        // Below the kernel's ephemeral range: no outgoing connection of any process can take one before it is bound.
        Assert.All(ports, p => Assert.InRange(p, LoopbackPorts.Lowest, LoopbackPorts.EphemeralLow - 1));
        using var listener = new TcpListener(IPAddress.Loopback, ports[^1]);
        listener.Start();
    }

    [Fact]
    public async Task Next_CalledConcurrently_StillDistinct()
    {
        int[][] batches = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => Enumerable.Range(0, 50).Select(_ => LoopbackPorts.Next()).ToArray())));

        int[] all = [.. batches.SelectMany(b => b)];
        Assert.Equal(all.Length, all.Distinct().Count());
    }
}
