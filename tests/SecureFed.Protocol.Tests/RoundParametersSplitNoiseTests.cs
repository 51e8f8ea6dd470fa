using System.Globalization;
using System.Security.Cryptography;
using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// The DP-SGD step cap and noise-share count of a round (docs/PROTOCOL.md, "Split patient-level noise") are bound into
/// the round digest when either is non-zero, and rounds without them keep the digest they always had.
/// </summary>
public sealed class RoundParametersSplitNoiseTests
{
    private static readonly Participant[] Cohort = [.. Enumerable.Range(1, 3).Select(i =>
        new Participant(i, "site-" + i.ToString(CultureInfo.InvariantCulture), Enumerable.Repeat((byte)i, Ed25519.PublicKeySize).ToArray()))];

    [Fact]
    public void Digest_NoCapNoSplit_EqualsTheDocumentedEncodingWithoutDpSgdFields()
    {
        var plain = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32);
        var zeros = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, null, 0, 0);

        string[] fields = ["fed", "4", "session", "3", "2", "2", "101", "32", .. Cohort.SelectMany(p => new[] { p.Index.ToString(CultureInfo.InvariantCulture), p.Name, Convert.ToHexStringLower(p.IdentityPublicKey) })];
        byte[] expected = SHA256.HashData(DomainLabel.Encode("round-parameters", fields));
        Assert.Equal(expected, plain.Digest);
        Assert.Equal(expected, zeros.Digest);
    }

    [Fact]
    public void Digest_SplitNoise_AppendsDpSgdFieldsAndDiffersPerValue()
    {
        var split = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, null, 1, 2);
        var capOnly = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, null, 1, 0);
        var plain = new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32);

        string[] fields = ["fed", "4", "session", "3", "2", "2", "101", "32", .. Cohort.SelectMany(p => new[] { p.Index.ToString(CultureInfo.InvariantCulture), p.Name, Convert.ToHexStringLower(p.IdentityPublicKey) }), "dp-sgd", "1", "2"];
        Assert.Equal(SHA256.HashData(DomainLabel.Encode("round-parameters", fields)), split.Digest);
        Assert.NotEqual(plain.Context, split.Context);
        Assert.NotEqual(plain.Context, capOnly.Context);
        Assert.NotEqual(capOnly.Context, split.Context);
        Assert.Equal(2, split.DpSgdNoiseShares);
        Assert.Equal(1, split.DpSgdMaxSteps);
    }

    [Theory]
    [InlineData(0, 2, "needs exactly 1 DP-SGD step per round")]
    [InlineData(5, 2, "needs exactly 1 DP-SGD step per round")]
    [InlineData(1, 3, "more shares than the threshold t = 2")]
    [InlineData(-1, 0, "dpSgdMaxSteps")]
    [InlineData(0, -1, "dpSgdNoiseShares")]
    public void Constructor_InvalidSplit_Throws(int maxSteps, int shares, string message)
    {
        var ex = Assert.ThrowsAny<ArgumentOutOfRangeException>(() => new RoundParameters("fed", 4, "session", Cohort, 2, 2, 101, 32, null, maxSteps, shares));

        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }
}
