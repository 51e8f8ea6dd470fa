using System.Globalization;
using SecureFed.Crypto;
using SecureFed.Protocol;
using SecureFed.Testing;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// n simulated sites (real <see cref="ClientRound"/>s) whose every message goes both to a single-process
/// <see cref="ServerRound"/> and to the cluster, so that the two results can be compared for the very same inputs.
/// </summary>
internal sealed class RoundScript : IDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly ClientRound[] _clients;

    public RoundScript(int n, int seed, long round, int vectorLength, int bitWidth, int degree, string federation = "cluster-test")
    {
        Random = new DeterministicRandomSource(seed);
        Identities = [.. Enumerable.Range(0, n).Select(_ => Ed25519PrivateKey.Generate(Random))];
        var participants = Enumerable.Range(1, n)
            .Select(i => new Participant(i, "site-" + i.ToString("D3", CultureInfo.InvariantCulture), Identities[i - 1].PublicKey))
            .ToArray();
        Parameters = new RoundParameters(federation, round, "session-" + seed.ToString(CultureInfo.InvariantCulture), participants,
            ((Math.Min(degree, n - 1) + 1) / 2) + 1, degree, vectorLength, bitWidth);
        var rng = new Random(seed);
        uint mask = bitWidth == 32 ? uint.MaxValue : (1u << bitWidth) - 1;
        Inputs = [.. Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, vectorLength).Select(_ => (uint)rng.NextInt64(0, 1L << 32) & mask).ToArray())];
        Single = new ServerRound(Parameters);
        _clients = [.. Enumerable.Range(1, n).Select(i => new ClientRound(Parameters, Parameters[i].Name, Identities[i - 1], Random))];
    }

    public DeterministicRandomSource Random { get; }

    public Ed25519PrivateKey[] Identities { get; }

    public RoundParameters Parameters { get; }

    public uint[][] Inputs { get; }

    public ServerRound Single { get; }

    public ClientRound Client(int index) => _clients[index - 1];

    public uint[] ExpectedSum(IEnumerable<int> contributors)
    {
        var sum = new uint[Parameters.VectorLength];
        foreach (int u in contributors)
        {
            ModularVector.Add(sum, Inputs[u - 1], Parameters.BitWidth);
        }

        return sum;
    }

    /// <summary>Stages 0 and 1 with every site except <paramref name="silentBeforeShares"/> sharing keys.</summary>
    public async Task ThroughShareKeysAsync(ClusterRoundClient cluster, IReadOnlyCollection<int> silentBeforeShares)
    {
        foreach (ClientRound c in _clients)
        {
            KeyAdvertisement ad = c.AdvertiseKeys();
            Single.AcceptAdvertisement(ad);
            Assert.True(await cluster.Round.AcceptAdvertisementAsync(ad).WaitAsync(Timeout));
        }

        Assert.Equal(Single.CloseAdvertiseKeys(), await cluster.Round.CloseAdvertiseKeysAsync().WaitAsync(Timeout));
        foreach (ClientRound c in _clients.Where(c => !silentBeforeShares.Contains(c.Index)))
        {
            KeyAdvertisement[] ads = await cluster.Round.AdvertisementsForAsync(c.Index).WaitAsync(Timeout);
            IReadOnlyList<EncryptedShare> shares = c.ShareKeys(ads);
            Single.AcceptShares(c.Index, shares);
            Assert.True(await cluster.Round.AcceptSharesAsync(c.Index, [.. shares]).WaitAsync(Timeout));
        }

        Assert.Equal(Single.CloseShareKeys(), await cluster.Round.CloseShareKeysAsync().WaitAsync(Timeout));
    }

    /// <summary>Stage 2 for <paramref name="senders"/>: masks each input once and sends the same words to both servers.</summary>
    public async Task SendMaskedInputsAsync(ClusterRoundClient cluster, IEnumerable<int> senders)
    {
        foreach (int u in senders)
        {
            EncryptedShare[] forMe = await cluster.Round.SharesForAsync(u).WaitAsync(Timeout);
            var masked = new uint[Parameters.VectorLength];
            Client(u).MaskInput(forMe, Inputs[u - 1], masked);
            Single.AcceptMaskedInput(u, masked);
            await cluster.SendMaskedInputAsync(u, masked, CancellationToken.None).WaitAsync(Timeout);
        }
    }

    /// <summary>Stages 3 and 4 (sites in <paramref name="silentAfterInput"/> say nothing more) and both results.</summary>
    public async Task<(AggregationResult Single, AggregationResult Cluster)> FinishAsync(ClusterRoundClient cluster, IReadOnlyCollection<int> silentAfterInput)
    {
        AggregationResult single = await ThroughUnmaskingAsync(cluster, silentAfterInput);
        AggregationResult clustered = await cluster.FinishAsync(CancellationToken.None).WaitAsync(Timeout);
        return (single, clustered);
    }

    /// <summary>Closes the masked input, consistency and unmasking stages on both sides and finishes the single process's round (the cluster's is left to the caller).</summary>
    public async Task<AggregationResult> ThroughUnmaskingAsync(ClusterRoundClient cluster, IReadOnlyCollection<int> silentAfterInput)
    {
        await UnmaskAsync(cluster, silentAfterInput);
        return Single.Finish(maxDegreeOfParallelism: 1);
    }

    /// <summary>
    /// Closes the masked input and consistency stages on both sides and gives both every signer's unmasking response,
    /// after <paramref name="tamper"/> (if any) changed it; finishes neither round.
    /// </summary>
    public async Task UnmaskAsync(ClusterRoundClient cluster, IReadOnlyCollection<int> silentAfterInput, Action<UnmaskResponse>? tamper = null)
    {
        IReadOnlyList<int> survivors = Single.CloseMaskedInput();
        Assert.Equal(survivors, await cluster.Round.CloseMaskedInputAsync().WaitAsync(Timeout));
        foreach (int u in survivors.Where(u => !silentAfterInput.Contains(u)))
        {
            ConsistencySignature sig = Client(u).SignSurvivors(survivors);
            Single.AcceptConsistencySignature(sig);
            Assert.True(await cluster.Round.AcceptConsistencySignatureAsync(sig).WaitAsync(Timeout));
        }

        UnmaskRequest request = Single.CloseConsistency();
        UnmaskRequest clusterRequest = await cluster.Round.CloseConsistencyAsync().WaitAsync(Timeout);
        Assert.Equal(request.Dropped, clusterRequest.Dropped);
        foreach (ConsistencySignature signer in request.Signatures)
        {
            UnmaskResponse response = Client(signer.Sender).Unmask(request);
            tamper?.Invoke(response);
            Single.AcceptUnmaskResponse(response);
            Assert.True(await cluster.Round.AcceptUnmaskResponseAsync(response).WaitAsync(Timeout));
        }
    }

    public void Dispose()
    {
        foreach (ClientRound c in _clients)
        {
            c.Dispose();
        }

        foreach (Ed25519PrivateKey id in Identities)
        {
            id.Dispose();
        }

        Random.Dispose();
    }
}
