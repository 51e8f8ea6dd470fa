using System.Globalization;
using SecureFed.Crypto;
using SecureFed.Protocol;
using SecureFed.Testing;

namespace SecureFed.Protocol.Tests;

/// <summary>Builds cohorts, identities and inputs for protocol tests (deterministic per seed).</summary>
internal sealed class ProtocolFixture : IDisposable
{
    public ProtocolFixture(int n, int seed, int vectorLength = 257, int bitWidth = 32, int? threshold = null, int? degree = null, int consistencyColluders = 0)
    {
        Random = new DeterministicRandomSource(seed);
        Identities = [.. Enumerable.Range(0, n).Select(_ => Ed25519PrivateKey.Generate(Random))];
        var participants = Enumerable.Range(1, n)
            .Select(i => new Participant(i, "site-" + i.ToString("D3", CultureInfo.InvariantCulture), Identities[i - 1].PublicKey))
            .ToArray();
        Parameters = new RoundParameters("test-federation", 7, "session-" + seed.ToString(CultureInfo.InvariantCulture), participants,
            threshold ?? Math.Max(2, (n / 2) + 1), degree ?? n - 1, vectorLength, bitWidth, consistencyColluders: consistencyColluders);
        var rng = new Random(seed);
        uint mask = bitWidth == 32 ? uint.MaxValue : (1u << bitWidth) - 1;
        Inputs = [.. Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, vectorLength).Select(_ => (uint)rng.NextInt64(0, 1L << 32) & mask).ToArray())];
    }

    public DeterministicRandomSource Random { get; }

    public Ed25519PrivateKey[] Identities { get; }

    public RoundParameters Parameters { get; }

    public uint[][] Inputs { get; }

    public uint[] ExpectedSum(IEnumerable<int> contributors)
    {
        var sum = new uint[Parameters.VectorLength];
        foreach (int u in contributors)
        {
            ModularVector.Add(sum, Inputs[u - 1], Parameters.BitWidth);
        }

        return sum;
    }

    public ClientRound Client(int index) => new(Parameters, Parameters[index].Name, Identities[index - 1], Random);

    /// <summary>Runs AdvertiseKeys and ShareKeys for every site; the server is then collecting masked inputs.</summary>
    /// <param name="maskingParallelism">Each client's <see cref="ClientRound.MaxDegreeOfParallelism"/>.</param>
    public (ClientRound[] Clients, ServerRound Server) ThroughShareKeys(int maskingParallelism = -1, int colluders = 0)
    {
        var clients = Enumerable.Range(1, Parameters.CohortSize)
            .Select(i => new ClientRound(Parameters, Parameters[i].Name, Identities[i - 1], Random) { MaxDegreeOfParallelism = maskingParallelism, Colluders = colluders })
            .ToArray();
        var server = new ServerRound(Parameters);
        foreach (var c in clients)
        {
            server.AcceptAdvertisement(c.AdvertiseKeys());
        }

        server.CloseAdvertiseKeys();
        foreach (var c in clients)
        {
            server.AcceptShares(c.Index, c.ShareKeys(server.AdvertisementsFor(c.Index)));
        }

        server.CloseShareKeys();
        return (clients, server);
    }

    public void Dispose()
    {
        foreach (Ed25519PrivateKey id in Identities)
        {
            id.Dispose();
        }

        Random.Dispose();
    }
}
