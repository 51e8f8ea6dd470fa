using System.Security.Cryptography;
using SecureFed.Crypto;

namespace SecureFed.Testing;

/// <summary>
/// TEST ONLY: a reproducible <see cref="IRandomSource"/> (AES-256-CTR keystream under a key derived from a seed).
/// Production code always uses <see cref="SystemRandomSource"/>; this type lives in the test tree on purpose.
/// </summary>
internal sealed class DeterministicRandomSource : IRandomSource, IDisposable
{
    private readonly Aes _aes;
    private ulong _counter;
    private readonly byte[] _block = new byte[16];
    private int _used = 16;

    public DeterministicRandomSource(int seed)
    {
        Span<byte> key = stackalloc byte[32];
        SHA256.HashData(BitConverter.GetBytes(seed), key);
        _aes = Aes.Create();
        _aes.Key = key.ToArray();
    }

    public void Fill(Span<byte> destination)
    {
        Span<byte> ctr = stackalloc byte[16];
        for (int i = 0; i < destination.Length; i++)
        {
            if (_used == 16)
            {
                ctr.Clear();
                BitConverter.TryWriteBytes(ctr, _counter++);
                _aes.EncryptEcb(ctr, _block, PaddingMode.None);
                _used = 0;
            }

            destination[i] = _block[_used++];
        }
    }

    public void Dispose() => _aes.Dispose();
}
