using System.Buffers.Binary;
using System.Security.Cryptography;

using FsCheck;
using FsCheck.Xunit;

using SecureFed.Crypto.Internal;
using SecureFed.Testing;

namespace SecureFed.Crypto.Tests;

public sealed class ShamirDecoderTests
{
    [Property(MaxTest = 80)]
    public void BerlekampWelch_RandomPolynomialAnyCorrectableErrors_RecoversPolynomialAndErrorPositions(PositiveInt seed, byte tByte, byte extraByte, byte errorByte)
    {
        var rng = new Random(seed.Get);
        int t = 2 + (tByte % 12);
        int n = t + (extraByte % 13);
        int maxErrors = (n - t) / 2;
        int errors = maxErrors == 0 ? 0 : errorByte % (maxErrors + 1);
        ulong[] coefficients = RandomElements(rng, t);
        ulong[] xs = [.. Enumerable.Range(1, 200).OrderBy(_ => rng.Next()).Take(n).Select(x => (ulong)x)];
        ulong[] ys = [.. xs.Select(x => ReedSolomon.Evaluate(coefficients, x))];
        int[] corrupted = [.. Enumerable.Range(0, n).OrderBy(_ => rng.Next()).Take(errors)];
        foreach (int i in corrupted)
        {
            ys[i] = MersenneField.Add(ys[i], 1 + ((ulong)rng.NextInt64() % (Shamir.Prime - 1)));
        }

        ulong[]? decoded = ReedSolomon.Decode(xs, ys, t, maxErrors);

        Assert.NotNull(decoded);
        Assert.Equal(coefficients, decoded);
        int[] wrong = [.. Enumerable.Range(0, n).Where(i => ReedSolomon.Evaluate(decoded, xs[i]) != ys[i])];
        Assert.Equal(corrupted.Order(), wrong);
    }

    [Property(MaxTest = 60)]
    public void BerlekampWelch_MoreErrorsThanCorrectable_ReturnsNull(PositiveInt seed, byte tByte, byte extraByte)
    {
        var rng = new Random(seed.Get);
        int t = 2 + (tByte % 10);
        int n = t + 1 + (extraByte % 12);
        int maxErrors = (n - t) / 2;
        ulong[] coefficients = RandomElements(rng, t);
        ulong[] xs = [.. Enumerable.Range(1, n).Select(x => (ulong)x)];
        ulong[] ys = [.. xs.Select(x => ReedSolomon.Evaluate(coefficients, x))];
        // maxErrors + 1 .. n - t wrong values: still detectable (the code's minimum distance is n - t + 1), not correctable.
        int errors = maxErrors + 1 + rng.Next(n - t - maxErrors);
        foreach (int i in Enumerable.Range(0, n).OrderBy(_ => rng.Next()).Take(errors))
        {
            ys[i] = RandomElements(rng, 1)[0];
        }

        Assert.False(ReedSolomon.IsCodeword(xs, ys, ReedSolomon.DualWeights(xs), t));
        Assert.Null(ReedSolomon.Decode(xs, ys, t, maxErrors));
    }

    [Property(MaxTest = 40)]
    public void IsCodeword_PointsOfOnePolynomial_TrueAndOneChangedValue_False(PositiveInt seed, byte tByte, byte extraByte)
    {
        var rng = new Random(seed.Get);
        int t = 2 + (tByte % 10);
        int n = t + 1 + (extraByte % 10);
        ulong[] coefficients = RandomElements(rng, t);
        ulong[] xs = [.. Enumerable.Range(1, 100).OrderBy(_ => rng.Next()).Take(n).Select(x => (ulong)x)];
        ulong[] ys = [.. xs.Select(x => ReedSolomon.Evaluate(coefficients, x))];
        ulong[] weights = ReedSolomon.DualWeights(xs);

        Assert.True(ReedSolomon.IsCodeword(xs, ys, weights, t));
        ys[rng.Next(n)] ^= 1;
        Assert.False(ReedSolomon.IsCodeword(xs, ys, weights, t));
    }

    [Property(MaxTest = 60)]
    public void Decode_SharesWithCorrectableWrongOnes_RebuildsSecretAndNamesEveryWrongShare(PositiveInt seed, byte tByte, byte extraByte, byte errorByte)
    {
        using var random = new DeterministicRandomSource(seed.Get);
        var rng = new Random(seed.Get);
        int t = 2 + (tByte % 10);
        int n = t + (extraByte % 11);
        int maxErrors = ShamirDecoder.CorrectableErrors(n, t);
        int errors = maxErrors == 0 ? 0 : errorByte % (maxErrors + 1);
        byte[] secret = new byte[32];
        random.Fill(secret);
        ShamirShare[] shares = Shamir.Split(secret, t, [.. Enumerable.Range(1, n)], random);
        int[] liars = [.. Enumerable.Range(1, n).OrderBy(_ => rng.Next()).Take(errors).Order()];
        foreach (int x in liars)
        {
            // In-field lie in one random chunk (a shifted or random value), as a hostile responder would send.
            int chunk = rng.Next(5);
            ulong y = BinaryPrimitives.ReadUInt64LittleEndian(shares[x - 1].Value.AsSpan(chunk * 8));
            BinaryPrimitives.WriteUInt64LittleEndian(shares[x - 1].Value.AsSpan(chunk * 8), MersenneField.Add(y, 1 + (ulong)rng.Next(1000)));
        }

        ShamirDecoding decoding = ShamirDecoder.Decode([.. shares.OrderBy(_ => rng.Next())], t, 32);

        Assert.Equal(secret, decoding.Secret);
        Assert.Equal(liars, decoding.RejectedX);
    }

    [Fact]
    public void Decode_OneWrongShareNoRedundancyToCorrect_DetectedWithoutVerifierCorrectedWithIt()
    {
        using var random = new DeterministicRandomSource(5);
        byte[] secret = new byte[32];
        random.Fill(secret);
        ShamirShare[] shares = Shamir.Split(secret, 3, [1, 2, 3, 4], random);
        shares[0].Value[0] ^= 0x01; // x = 1 lies; 4 shares, t = 3: detectable, not correctable by Berlekamp–Welch

        var ex = Assert.Throws<ShamirDecodingException>(() => ShamirDecoder.Decode(shares, 3, 32));
        Assert.Contains("do not lie on one polynomial", ex.Message, StringComparison.Ordinal);
        Assert.False(ex.Consistent);

        byte[] commitment = SHA256.HashData(secret);
        ShamirDecoding decoding = ShamirDecoder.Decode(shares, 3, 32, s => SHA256.HashData(s).AsSpan().SequenceEqual(commitment));
        Assert.Equal(secret, decoding.Secret);
        Assert.Equal([1], decoding.RejectedX);
    }

    [Fact]
    public void Decode_ConsistentButWrongShares_VerifierRefusesEverySubset()
    {
        using var random = new DeterministicRandomSource(6);
        byte[] secret = new byte[32];
        random.Fill(secret);
        byte[] other = (byte[])secret.Clone();
        other[3] ^= 0x10;
        ShamirShare[] shares = Shamir.Split(other, 3, [1, 2, 3, 4, 5], random); // consistent shares of the wrong secret

        byte[] commitment = SHA256.HashData(secret);
        var ex = Assert.Throws<ShamirDecodingException>(() =>
            ShamirDecoder.Decode(shares, 3, 32, s => SHA256.HashData(s).AsSpan().SequenceEqual(commitment)));
        Assert.Contains("fails verification", ex.Message, StringComparison.Ordinal);
        Assert.Contains("none of the 10 subsets", ex.Message, StringComparison.Ordinal);
        Assert.True(ex.Consistent);
    }

    [Fact]
    public void Decode_SharesOfAnotherSecret_ConsistentOnlyWhenMoreThanTSharesAgreeAfterCorrection()
    {
        using var random = new DeterministicRandomSource(8);
        byte[] secret = new byte[32];
        random.Fill(secret);
        byte[] commitment = SHA256.HashData(secret);
        bool Verify(ReadOnlySpan<byte> s) => SHA256.HashData(s).AsSpan().SequenceEqual(commitment);
        ShamirShare[] shares = Shamir.Split(secret, 3, [1, 2, 3, 4, 5], random);

        // A dealer's shift of the constant: the same in-field delta added to chunk 0 of every share.
        foreach (ShamirShare share in shares)
        {
            ulong y = BinaryPrimitives.ReadUInt64LittleEndian(share.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(share.Value, MersenneField.Add(y, 12345));
        }

        Assert.True(Assert.Throws<ShamirDecodingException>(() => ShamirDecoder.Decode(shares, 3, 32, Verify)).Consistent);

        // One responder lies as well: 5 shares, t = 3 correct one, so the shares still determine the (wrong) secret.
        shares[1].Value[9] ^= 0x01;
        Assert.True(Assert.Throws<ShamirDecodingException>(() => ShamirDecoder.Decode(shares, 3, 32, Verify)).Consistent);

        // A shift that pushes chunk 0 to 2^56 or above (not a secret chunk at all) is just as consistent.
        ShamirShare[] far = Shamir.Split(secret, 3, [1, 2, 3, 4, 5], random);
        foreach (ShamirShare share in far)
        {
            ulong y = BinaryPrimitives.ReadUInt64LittleEndian(share.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(share.Value, MersenneField.Add(y, 1UL << 60));
        }

        var notASecret = Assert.Throws<ShamirDecodingException>(() => ShamirDecoder.Decode(far, 3, 32, Verify));
        Assert.True(notASecret.Consistent);
        Assert.Contains("whose constant is not a 32-byte secret", notASecret.Message, StringComparison.Ordinal);

        // Exactly t shares always fit some polynomial: that says nothing about the dealer.
        Assert.False(Assert.Throws<ShamirDecodingException>(() => ShamirDecoder.Decode(far[..3], 3, 32, Verify)).Consistent);
    }

    [Fact]
    public void Decode_OutOfFieldAndWrongLengthValues_TreatedAsMissingAndRejected()
    {
        using var random = new DeterministicRandomSource(7);
        byte[] secret = new byte[32];
        random.Fill(secret);
        ShamirShare[] shares = Shamir.Split(secret, 3, [1, 2, 3, 4, 5], random);
        shares[1] = shares[1] with { Value = Enumerable.Repeat((byte)0xff, 40).ToArray() };
        shares[3] = shares[3] with { Value = new byte[39] };

        ShamirDecoding decoding = ShamirDecoder.Decode(shares, 3, 32);

        Assert.Equal(secret, decoding.Secret);
        Assert.Equal([2, 4], decoding.RejectedX);
        shares[4] = shares[4] with { Value = Enumerable.Repeat((byte)0xff, 40).ToArray() };
        var ex = Assert.Throws<ShamirDecodingException>(() => ShamirDecoder.Decode(shares, 3, 32));
        Assert.Contains("Only 2 of the 5 shares are well-formed", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FirstNonFieldElement_FindsTheFirstElementAtOrAbovePrime()
    {
        byte[] value = new byte[40];
        Assert.Equal(-1, ShamirDecoder.FirstNonFieldElement(value));
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(16), Shamir.Prime - 1);
        Assert.Equal(-1, ShamirDecoder.FirstNonFieldElement(value));
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(24), Shamir.Prime);
        Assert.Equal(3, ShamirDecoder.FirstNonFieldElement(value));
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(8), ulong.MaxValue);
        Assert.Equal(1, ShamirDecoder.FirstNonFieldElement(value));
    }

    private static ulong[] RandomElements(Random rng, int count) => [.. Enumerable.Range(0, count).Select(_ => (ulong)rng.NextInt64(0, (long)Shamir.Prime))];
}
