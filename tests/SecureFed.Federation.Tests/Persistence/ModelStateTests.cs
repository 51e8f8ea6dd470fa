using System.Runtime.InteropServices;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Federation.Tests.Persistence;

/// <summary>
/// The model's byte encodings without whole-model copies (<see cref="ModelState.FromFile"/>,
/// <see cref="WireEncoding.ModelBytesView"/>, <see cref="ModelState.Digest"/>) against the copying ones, bit for bit.
/// </summary>
public sealed class ModelStateTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void FromFile_AnyFiniteValues_SameAsFromBytesBitForBit()
    {
        float[] values = Values(70_001);
        byte[] bytes = ModelState.ToBytes(values);
        string path = _dir.Combine("model.bin");
        File.WriteAllBytes(path, bytes);

        float[] read = ModelState.FromFile(path);

        Assert.Equal(Bits(ModelState.FromBytes(bytes, path)), Bits(read));
        Assert.Equal(Bits(values), Bits(read));
    }

    [Fact]
    public void ModelBytesViewAndDigest_SameAsModelBytes()
    {
        float[] values = Values(1025);

        Assert.Equal(WireEncoding.ModelBytes(values), WireEncoding.ModelBytesView(values).ToArray());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(ModelState.ToBytes(values))), ModelState.Digest(values));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void FromFile_LengthNotAPositiveMultipleOfFour_RefusedAsFromBytes(int length)
    {
        string path = _dir.Combine("bad.bin");
        File.WriteAllBytes(path, new byte[length]);

        var fromFile = Assert.Throws<InvalidDataException>(() => ModelState.FromFile(path));
        var fromBytes = Assert.Throws<InvalidDataException>(() => ModelState.FromBytes(new byte[length], path));

        Assert.Equal(fromBytes.Message, fromFile.Message);
    }

    [Fact]
    public void FromFile_NonFiniteValue_RefusedNamingIt()
    {
        float[] values = Values(100);
        values[42] = float.NaN;
        string path = _dir.Combine("nan.bin");
        File.WriteAllBytes(path, ModelState.ToBytes(values));

        var ex = Assert.Throws<InvalidDataException>(() => ModelState.FromFile(path));

        Assert.Equal($"{path}: value 42 is not finite.", ex.Message);
    }

    /// <summary>Finite values of every kind: normal, subnormal, ±0, the extremes.</summary>
    private static float[] Values(int count)
    {
        var random = new Random(count);
        float[] values = new float[count];
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-140, 120)));
        }

        values[0] = -0f;
        values[1] = float.MaxValue;
        values[2] = -float.Epsilon;
        return values;
    }

    private static int[] Bits(float[] values) => MemoryMarshal.Cast<float, int>(values).ToArray();
}
