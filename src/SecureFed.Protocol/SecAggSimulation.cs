using System.Diagnostics;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// Runs a whole round in memory: one <see cref="ServerRound"/> and n <see cref="ClientRound"/>s exchanging the
/// messages a network would carry, with scripted dropouts. Used by the tests and by <c>securefed bench secagg</c>;
/// it measures time per role and counts the bytes each client would send.
/// </summary>
public sealed class SecAggSimulation
{
    /// <summary>Bytes on the wire for an advertisement (two keys and a signature), excluding framing.</summary>
    public const int AdvertisementBytes = 32 + 32 + 64;

    /// <summary>Runs the round. <paramref name="inputs"/>[i] is the input of index i+1 (reduced mod 2^b).</summary>
    public static SimulationResult Run(
        RoundParameters parameters,
        IReadOnlyList<Ed25519PrivateKey> identities,
        IReadOnlyList<uint[]> inputs,
        IReadOnlyCollection<SimulatedDropout> dropouts,
        IRandomSource? random = null,
        int serverParallelism = -1,
        int clientParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(identities);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(dropouts);
        int n = parameters.CohortSize;
        if (identities.Count != n || inputs.Count != n)
        {
            throw new ArgumentException($"Need {n} identities and inputs; got {identities.Count} and {inputs.Count}.");
        }

        var dropAt = dropouts.ToDictionary(d => d.Index, d => d.BeforeStage);
        bool Alive(int index, ProtocolStage stage) => !dropAt.TryGetValue(index, out ProtocolStage s) || stage < s;

        var server = new ServerRound(parameters);
        var clients = new ClientRound[n];
        var bytesSent = new long[n];
        var maskTime = new TimeSpan[n];
        var clientTime = new TimeSpan[n];
        var serverWatch = new Stopwatch();
        try
        {
            for (int i = 0; i < n; i++)
            {
                clients[i] = new ClientRound(parameters, parameters[i + 1].Name, identities[i], random) { MaxDegreeOfParallelism = clientParallelism };
            }

            // Stage 0
            foreach (int u in Range(n))
            {
                if (!Alive(u, ProtocolStage.AdvertiseKeys))
                {
                    continue;
                }

                var watch = Stopwatch.StartNew();
                KeyAdvertisement ad = clients[u - 1].AdvertiseKeys();
                clientTime[u - 1] += watch.Elapsed;
                bytesSent[u - 1] += AdvertisementBytes;
                serverWatch.Start();
                server.AcceptAdvertisement(ad);
                serverWatch.Stop();
            }

            serverWatch.Start();
            server.CloseAdvertiseKeys();
            serverWatch.Stop();

            // Stage 1
            foreach (int u in Range(n))
            {
                if (!Alive(u, ProtocolStage.ShareKeys))
                {
                    continue;
                }

                serverWatch.Start();
                IReadOnlyList<KeyAdvertisement> ads = server.AdvertisementsFor(u);
                serverWatch.Stop();
                var watch = Stopwatch.StartNew();
                IReadOnlyList<EncryptedShare> shares = clients[u - 1].ShareKeys(ads);
                clientTime[u - 1] += watch.Elapsed;
                bytesSent[u - 1] += shares.Sum(s => s.Ciphertext.Length + 8L);
                serverWatch.Start();
                server.AcceptShares(u, shares);
                serverWatch.Stop();
            }

            serverWatch.Start();
            server.CloseShareKeys();
            serverWatch.Stop();

            // Stage 2
            var masked = new uint[parameters.VectorLength];
            foreach (int u in Range(n))
            {
                if (!Alive(u, ProtocolStage.MaskedInputCollection))
                {
                    continue;
                }

                IReadOnlyList<EncryptedShare> forMe = server.SharesFor(u);
                var watch = Stopwatch.StartNew();
                clients[u - 1].MaskInput(forMe, inputs[u - 1], masked);
                maskTime[u - 1] = watch.Elapsed;
                clientTime[u - 1] += watch.Elapsed;
                bytesSent[u - 1] += 4L * parameters.VectorLength;
                serverWatch.Start();
                server.AcceptMaskedInput(u, masked);
                serverWatch.Stop();
            }

            serverWatch.Start();
            IReadOnlyList<int> survivors = server.CloseMaskedInput();
            serverWatch.Stop();

            // Stage 3
            foreach (int u in survivors)
            {
                if (!Alive(u, ProtocolStage.ConsistencyCheck))
                {
                    continue;
                }

                var watch = Stopwatch.StartNew();
                ConsistencySignature sig = clients[u - 1].SignSurvivors(survivors);
                clientTime[u - 1] += watch.Elapsed;
                bytesSent[u - 1] += Ed25519.SignatureSize;
                serverWatch.Start();
                server.AcceptConsistencySignature(sig);
                serverWatch.Stop();
            }

            serverWatch.Start();
            UnmaskRequest request = server.CloseConsistency();
            serverWatch.Stop();

            // Stage 4
            foreach (ConsistencySignature signer in request.Signatures)
            {
                int u = signer.Sender;
                if (!Alive(u, ProtocolStage.Unmasking))
                {
                    continue;
                }

                var watch = Stopwatch.StartNew();
                UnmaskResponse response = clients[u - 1].Unmask(request);
                clientTime[u - 1] += watch.Elapsed;
                bytesSent[u - 1] += (response.SelfMaskShares.Count + response.MaskingKeyShares.Count) * (ProtocolLabels.ShareValueSize + 4L);
                serverWatch.Start();
                server.AcceptUnmaskResponse(response);
                serverWatch.Stop();
            }

            TimeSpan cpu = Environment.CpuUsage.TotalTime;
            var finishWatch = Stopwatch.StartNew();
            AggregationResult result = server.Finish(serverParallelism);
            TimeSpan unmask = finishWatch.Elapsed;
            TimeSpan unmaskCpu = Environment.CpuUsage.TotalTime - cpu;
            return new SimulationResult(result, bytesSent, maskTime, clientTime, serverWatch.Elapsed + unmask, unmask, unmaskCpu);
        }
        finally
        {
            foreach (ClientRound? c in clients)
            {
                c?.Dispose();
            }
        }
    }

    private static IEnumerable<int> Range(int n) => Enumerable.Range(1, n);
}
