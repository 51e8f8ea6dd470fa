using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// Layer scales (docs/PROTOCOL.md, "Layer scales") are bound into the round digest when announced, and rounds without
/// them keep the digest they always had.
/// </summary>
public sealed class RoundParametersLayerScalesTests
{
    private static readonly Participant[] Cohort = [.. Enumerable.Range(1, 3).Select(i =>
        new Participant(i, "site-" + i.ToString(CultureInfo.InvariantCulture), Enumerable.Repeat((byte)i, Ed25519.PublicKeySize).ToArray()))];

    private static readonly string[] BaseFields = ["fed", "4", "session", "3", "2", "2", "101", "32", .. Cohort.SelectMany(p => new[] { p.Index.ToString(CultureInfo.InvariantCulture), p.Name, Convert.ToHexStringLower(p.IdentityPublicKey) })];

    [Fact]
    public void Digest_NoOrEmptyLayerScales_Unchanged()
    {
        var plain = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32);
        var empty = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, dpSgdLayerScales: []);

        Assert.Equal(SHA256.HashData(DomainLabel.Encode("round-parameters", BaseFields)), plain.Digest);
        Assert.Equal(plain.Digest, empty.Digest);
        Assert.Empty(empty.DpSgdLayerScales);
    }

    [Fact]
    public void Digest_LayerScales_AppendsCountAndSha256OfLittleEndianFloatsAndDiffersPerValue()
    {
        float[] scales = [0.5f, 2f, 1.25f];
        var withScales = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, dpSgdLayerScales: scales);
        var other = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, dpSgdLayerScales: [0.5f, 2f, 1.2500001f]);

        byte[] bytes = new byte[12];
        for (int i = 0; i < scales.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), scales[i]);
        }

        string sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        Assert.Equal(sha, RoundParameters.LayerScalesSha256(scales));
        Assert.Equal(SHA256.HashData(DomainLabel.Encode("round-parameters", [.. BaseFields, "layer-scales", "3", sha])), withScales.Digest);
        Assert.NotEqual(withScales.Context, other.Context);
        Assert.Equal(scales, withScales.DpSgdLayerScales);
    }

    [Fact]
    public void Digest_ConsistencyColluders_AbsentAtZeroAppendedWhenAnnounced()
    {
        var plain = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32);
        var zero = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, consistencyColluders: 0);
        var one = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, consistencyColluders: 1);

        Assert.Equal(plain.Digest, zero.Digest);
        Assert.Equal(SHA256.HashData(DomainLabel.Encode("round-parameters", [.. BaseFields, "consistency-colluders", "1"])), one.Digest);
        Assert.Equal((1, 1, 3), (one.ConsistencyColluders, one.QuorumColluders, one.SignatureQuorum(one.QuorumColluders)));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(2)]
    public void Constructor_ConsistencyColludersNegativeOrAtThreshold_ThrowsNamingTheBound(int bad)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, consistencyColluders: bad));

        Assert.Contains("The consistency quorum can be announced for 0 to t − 1 = 1 colluding sites", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-2f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void Constructor_LayerScaleNotPositiveFinite_ThrowsNamingIt(float bad)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, dpSgdLayerScales: [1f, bad]));

        Assert.Contains("Layer scale 1 must be a positive finite number", ex.Message, StringComparison.Ordinal);
    }
}
