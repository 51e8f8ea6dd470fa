using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

using SecureFed.Crypto.Internal;
using SecureFed.Testing;

namespace SecureFed.Crypto.Tests;

public sealed class MaskPrgTests
{
    private const int ChunkWords = AesCtrKeystream.ChunkBytes / 4;

    // NIST SP 800-38A F.5.5 CTR-AES256.Encrypt: key, initial counter block, plaintext, ciphertext.
    private const string NistKey = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    private const string NistCounter = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    private const string NistPlaintext = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
    private const string NistCiphertext = "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6";

    public static TheoryData<int, int> LengthsAndWidths
    {
        get
        {
            var data = new TheoryData<int, int>();
            foreach (int length in new[] { 0, 1, 3, 4, 5, 17, 1000, ChunkWords - 1, ChunkWords, ChunkWords + 7, (2 * ChunkWords) + 4 })
            {
                foreach (int width in new[] { 1, 7, 16, 31, 32 })
                {
                    data.Add(length, width);
                }
            }

            return data;
        }
    }

    [Theory]
    [InlineData(64)]
    [InlineData(50)]
    [InlineData(16)]
    [InlineData(1)]
    public void CtrKeystream_NistSp80038aF55_MatchesVector(int length)
    {
        byte[] keystream = new byte[length];

        AesCtrKeystream.Generate(Convert.FromHexString(NistKey), Convert.FromHexString(NistCounter), keystream);

        byte[] plaintext = Convert.FromHexString(NistPlaintext);
        byte[] ciphertext = new byte[length];
        for (int i = 0; i < length; i++)
        {
            ciphertext[i] = (byte)(plaintext[i] ^ keystream[i]);
        }

        Assert.Equal(NistCiphertext[..(2 * length)], Convert.ToHexStringLower(ciphertext));
    }

    [Theory]
    [InlineData("00000000000000000000000000000000", 3 * AesCtrKeystream.ChunkBlocks + 5)]
    [InlineData("0000000000000000fffffffffffffff0", AesCtrKeystream.ChunkBlocks + 40)]
    [InlineData("ffffffffffffffffffffffffffffff00", 600)]
    [InlineData("00000000000000000000000000000ffe", AesCtrKeystream.ChunkBlocks)]
    public void CtrKeystream_LongAndCarryingCounters_MatchesBlockByBlockReference(string initialCounter, int blocks)
    {
        byte[] key = new byte[32];
        key[0] = 0x42;
        byte[] keystream = new byte[(blocks * 16) - 3];

        AesCtrKeystream.Generate(key, Convert.FromHexString(initialCounter), keystream);

        using Aes aes = Aes.Create();
        aes.Key = key;
        UInt128 counter = BinaryPrimitives.ReadUInt128BigEndian(Convert.FromHexString(initialCounter));
        byte[] block = new byte[16];
        for (int j = 0; j < blocks; j++)
        {
            BinaryPrimitives.WriteUInt128BigEndian(block, counter++);
            byte[] expected = aes.EncryptEcb(block, PaddingMode.None);
            int take = Math.Min(16, keystream.Length - (j * 16));
            Assert.Equal(expected[..take], keystream.AsSpan(j * 16, take).ToArray());
        }
    }

    [Theory]
    [MemberData(nameof(LengthsAndWidths))]
    public void Generate_AnyLengthAndWidth_MatchesDocumentedDerivation(int length, int bitWidth)
    {
        byte[] seed = Enumerable.Range(0, 32).Select(i => (byte)(i * 13)).ToArray();
        byte[] domain = Encoding.UTF8.GetBytes("round-7/alice->bob");
        uint[] actual = new uint[length];

        MaskPrg.Generate(seed, domain, bitWidth, actual);

        Assert.Equal(Reference(seed, domain, bitWidth, length), actual);
    }

    [Theory]
    [MemberData(nameof(LengthsAndWidths))]
    public void AddToThenSubtractFrom_AnyLengthAndWidth_CancelsAndMatchesReference(int length, int bitWidth)
    {
        byte[] seed = new byte[32];
        seed[5] = 1;
        var random = new Random(length * 100 + bitWidth);
        uint[] original = Enumerable.Range(0, length).Select(_ => (uint)random.NextInt64(0, 1L << bitWidth)).ToArray();
        uint[] mask = Reference(seed, [7], bitWidth, length);
        uint[] accumulator = (uint[])original.Clone();

        MaskPrg.AddTo(seed, [7], bitWidth, accumulator);
        uint modulusMask = bitWidth == 32 ? uint.MaxValue : (1u << bitWidth) - 1;
        Assert.Equal(original.Zip(mask, (a, m) => (a + m) & modulusMask).ToArray(), accumulator);

        MaskPrg.SubtractFrom(seed, [7], bitWidth, accumulator);
        Assert.Equal(original, accumulator);
    }

    [Fact]
    public void Generate_SameInputs_IsDeterministic()
    {
        byte[] seed = new byte[32];
        uint[] a = new uint[5000];
        uint[] b = new uint[5000];

        MaskPrg.Generate(seed, "d"u8, 20, a);
        MaskPrg.Generate(seed, "d"u8, 20, b);

        Assert.Equal(a, b);
        Assert.Contains(a, w => w != 0);
    }

    [Fact]
    public void Generate_DifferentSeedDomainLengthOrWidth_GivesUnrelatedStreams()
    {
        byte[] seed = new byte[32];
        byte[] otherSeed = new byte[32];
        otherSeed[31] = 1;
        uint[] baseline = Run(seed, "d1"u8.ToArray(), 32, 64);

        AssertUnrelated(baseline, Run(otherSeed, "d1"u8.ToArray(), 32, 64));
        AssertUnrelated(baseline, Run(seed, "d2"u8.ToArray(), 32, 64));
        AssertUnrelated(baseline, Run(seed, [], 32, 64));
        AssertUnrelated(baseline, Run(seed, "d1"u8.ToArray(), 32, 65)[..64]);
        AssertUnrelated(baseline.Select(w => w & 0x7fffffff).ToArray(), Run(seed, "d1"u8.ToArray(), 31, 64));

        static uint[] Run(byte[] s, byte[] d, int b, int m)
        {
            uint[] words = new uint[m];
            MaskPrg.Generate(s, d, b, words);
            return words;
        }

        static void AssertUnrelated(uint[] a, uint[] b)
        {
            int equal = a.Zip(b, (x, y) => x == y).Count(e => e);
            Assert.True(equal <= 2, $"{equal} of {a.Length} words coincide");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(32)]
    public void Generate_LowBits_AreUniform(int bitWidth)
    {
        int lowBits = Math.Min(bitWidth, 8);
        int bins = 1 << lowBits;
        uint[] words = new uint[bins * 2000];
        MaskPrg.Generate(new byte[32], "uniformity"u8, bitWidth, words);
        long[] histogram = new long[bins];
        foreach (uint w in words)
        {
            Assert.True(bitWidth == 32 || w < (1u << bitWidth));
            histogram[w & (uint)(bins - 1)]++;
        }

        Assert.True(ChiSquare.AgainstUniform(histogram) < ChiSquare.Critical(bins - 1), "low bits are not uniform");
    }

    [Fact]
    public void Generate_TopBitOf32BitWords_IsUniform()
    {
        uint[] words = new uint[40000];
        MaskPrg.Generate(new byte[32], "top"u8, 32, words);
        long[] histogram = new long[16];
        foreach (uint w in words)
        {
            histogram[w >> 28]++;
        }

        Assert.True(ChiSquare.AgainstUniform(histogram) < ChiSquare.Critical(15));
    }

    [Fact]
    public void PairwiseMasks_ThreeParties_CancelInTheSum()
    {
        // Party i adds the mask of every pair (i, j > i) and subtracts it for (j < i): the masks cancel in the sum.
        const int BitWidth = 24;
        const int Length = 3000;
        using var random = new DeterministicRandomSource(17);
        var pairSeeds = new Dictionary<(int, int), byte[]>();
        for (int i = 0; i < 3; i++)
        {
            for (int j = i + 1; j < 3; j++)
            {
                byte[] s = new byte[32];
                random.Fill(s);
                pairSeeds[(i, j)] = s;
            }
        }

        var inputs = new uint[3][];
        uint[] sum = new uint[Length];
        uint[] expected = new uint[Length];
        for (int i = 0; i < 3; i++)
        {
            inputs[i] = new uint[Length];
            byte[] raw = new byte[Length * 4];
            random.Fill(raw);
            MemoryMarshal.Cast<byte, uint>(raw).CopyTo(inputs[i]);
            ModularVector.Reduce(inputs[i], BitWidth);
            ModularVector.Add(expected, inputs[i], BitWidth);

            uint[] masked = (uint[])inputs[i].Clone();
            for (int j = 0; j < 3; j++)
            {
                if (j > i)
                {
                    MaskPrg.AddTo(pairSeeds[(i, j)], "pair"u8, BitWidth, masked);
                }
                else if (j < i)
                {
                    MaskPrg.SubtractFrom(pairSeeds[(j, i)], "pair"u8, BitWidth, masked);
                }
            }

            Assert.NotEqual(inputs[i], masked);
            ModularVector.Add(sum, masked, BitWidth);
        }

        Assert.Equal(expected, sum);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(31)]
    [InlineData(33)]
    public void Generate_WrongSeedLength_ThrowsArgumentException(int length)
    {
        var ex = Assert.Throws<ArgumentException>(() => MaskPrg.Generate(new byte[length], [], 32, new uint[4]));
        Assert.Contains("seed", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(33)]
    public void AddTo_BitWidthOutOfRange_ThrowsArgumentOutOfRangeException(int bitWidth)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => MaskPrg.AddTo(new byte[32], [], bitWidth, new uint[4]));
    }

    [Theory]
    [InlineData((int)MaskPrg.Mode.Overwrite)]
    [InlineData((int)MaskPrg.Mode.Add)]
    [InlineData((int)MaskPrg.Mode.Subtract)]
    public void Run_IntrinsicAndEcbPaths_GiveIdenticalWords(int modeValue)
    {
        var mode = (MaskPrg.Mode)modeValue;
        if (!AesNiCtrKeystream.IsSupported)
        {
            Console.WriteLine("AES-NI not available: only the EncryptEcb path exists on this machine, nothing to compare.");
            return;
        }

        var random = new Random(2024 + (int)mode);
        int[] lengths = [.. Enumerable.Range(0, 40), .. Enumerable.Range(0, 24).Select(_ => random.Next(40, 5000)), ChunkWords + 33, (2 * ChunkWords) + 3];
        foreach (int length in lengths)
        {
            byte[] seed = new byte[32];
            random.NextBytes(seed);
            byte[] domain = new byte[random.Next(0, 40)];
            random.NextBytes(domain);
            int bitWidth = random.Next(1, 33);
            uint modulusMask = bitWidth == 32 ? uint.MaxValue : (1u << bitWidth) - 1;
            uint[] intrinsic = Enumerable.Range(0, length).Select(_ => (uint)random.NextInt64(0, 1L << 32) & modulusMask).ToArray();
            uint[] ecb = (uint[])intrinsic.Clone();

            MaskPrg.Run(seed, domain, bitWidth, intrinsic, mode, allowIntrinsics: true);
            MaskPrg.Run(seed, domain, bitWidth, ecb, mode, allowIntrinsics: false);

            Assert.True(ecb.AsSpan().SequenceEqual(intrinsic), $"paths differ for length {length}, b = {bitWidth}, {mode}");
        }
    }

    [Fact]
    public void AesNiExpandKey256_Fips197A3Key_MatchesPublishedRoundKeys()
    {
        if (!AesNiCtrKeystream.IsSupported)
        {
            Console.WriteLine("AES-NI not available: skipped.");
            return;
        }

        // FIPS 197 A.3 (key 603deb10...): w[56..59] = fe4890d1 e6188d0b 046df344 706c631e.
        byte[] key = Convert.FromHexString(NistKey);
        byte[] schedule = new byte[AesNiCtrKeystream.RoundKeyCount * 16];
        unsafe
        {
            fixed (byte* p = schedule)
            {
                AesNiCtrKeystream.ExpandKey256(key, (System.Runtime.Intrinsics.Vector128<byte>*)p);
            }
        }

        Assert.Equal("fe4890d1e6188d0b046df344706c631e", Convert.ToHexStringLower(schedule.AsSpan(14 * 16, 16)));
        Assert.Equal(NistKey, Convert.ToHexStringLower(schedule.AsSpan(0, 32)));
    }

    /// <summary>The derivation exactly as documented on <see cref="MaskPrg"/>, one AES block at a time.</summary>
    private static uint[] Reference(byte[] seed, byte[] domain, int bitWidth, int length)
    {
        var info = new List<byte>();
        info.AddRange(Encoding.ASCII.GetBytes("securefed/v1/mask-prg"));
        byte[] u32 = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(u32, (uint)domain.Length);
        info.AddRange(u32);
        info.AddRange(domain);
        byte[] u64 = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(u64, (ulong)length);
        info.AddRange(u64);
        info.Add((byte)bitWidth);
        byte[] key = HKDF.DeriveKey(HashAlgorithmName.SHA256, seed, 32, [], info.ToArray());

        using Aes aes = Aes.Create();
        aes.Key = key;
        uint mask = bitWidth == 32 ? uint.MaxValue : (1u << bitWidth) - 1;
        uint[] words = new uint[length];
        byte[] counter = new byte[16];
        for (int block = 0; block * 4 < length; block++)
        {
            BinaryPrimitives.WriteUInt128BigEndian(counter, (UInt128)block);
            byte[] stream = aes.EncryptEcb(counter, PaddingMode.None);
            for (int k = 0; k < 4 && (block * 4) + k < length; k++)
            {
                words[(block * 4) + k] = BinaryPrimitives.ReadUInt32LittleEndian(stream.AsSpan(k * 4)) & mask;
            }
        }

        return words;
    }
}
