using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Cli.Commands;

/// <summary>
/// BENCHMARK ONLY (<c>bench cluster --front grpc</c>): the randomness of a benchmark site's stochastic rounding and
/// site-level noise, as an AES-256-CTR keystream under a key the benchmark draws fresh from the system RNG for each site
/// and run. The benchmark gives the site one stream for the single-process aggregator and a new stream under the same key
/// for the cluster, so both sides get the same privatized inputs (its updates are synthetic) and their fused models can be
/// compared bit for bit. The agent's product path always uses <see cref="SystemRandomSource"/>.
/// </summary>
internal sealed class BenchReplayRandomSource : IRandomSource, IDisposable
{
    private readonly Aes _aes;
    private readonly byte[] _counter = new byte[16];
    private readonly byte[] _block = new byte[16 * 256];
    private int _used;

    public BenchReplayRandomSource(ReadOnlySpan<byte> key)
    {
        if (key.Length != 32)
        {
            throw new ArgumentException($"the key must be 32 bytes, got {key.Length}", nameof(key));
        }

        _aes = Aes.Create();
        _aes.Key = key.ToArray();
        _used = _block.Length;
    }

    public void Fill(Span<byte> destination)
    {
        while (destination.Length > 0)
        {
            if (_used == _block.Length)
            {
                Refill();
            }

            int n = Math.Min(destination.Length, _block.Length - _used);
            _block.AsSpan(_used, n).CopyTo(destination);
            _used += n;
            destination = destination[n..];
        }
    }

    public void Dispose() => _aes.Dispose();

    private void Refill()
    {
        // 256 counter blocks at a time: counter i is the little-endian block index in the first 8 bytes.
        Span<byte> counters = stackalloc byte[16 * 256];
        counters.Clear();
        ulong next = BitConverter.ToUInt64(_counter);
        for (int i = 0; i < 256; i++)
        {
            BitConverter.TryWriteBytes(counters.Slice(16 * i, 8), next + (ulong)i);
        }

        BitConverter.TryWriteBytes(_counter.AsSpan(0, 8), next + 256);
        _aes.EncryptEcb(counters, _block, PaddingMode.None);
        _used = 0;
    }
}
