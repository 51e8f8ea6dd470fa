using System.Buffers.Binary;
using System.Text;

namespace SecureFed.Crypto.Tests;

public sealed class DomainLabelTests
{
    [Fact]
    public void Encode_SessionRoundParties_FollowsDocumentedLayout()
    {
        byte[] label = DomainLabel.Encode("mask", "s1", 3, "a", "bc");

        string expected =
            Convert.ToHexStringLower("securefed/v1/mask"u8) +
            "00000002" + Convert.ToHexStringLower("s1"u8) +
            "00000008" + "0000000000000003" +
            "00000001" + Convert.ToHexStringLower("a"u8) +
            "00000002" + Convert.ToHexStringLower("bc"u8);
        Assert.Equal(expected, Convert.ToHexStringLower(label));
    }

    [Fact]
    public void Encode_Fields_WritesUtf8WithBigEndianLengths()
    {
        byte[] label = DomainLabel.Encode("kdf", "é", "");

        string expected = Convert.ToHexStringLower("securefed/v1/kdf"u8) + "00000002" + "c3a9" + "00000000";
        Assert.Equal(expected, Convert.ToHexStringLower(label));
    }

    [Fact]
    public void Encode_RandomInputs_DecodeBackExactly()
    {
        // A decoder that recovers every input proves the encoding is injective.
        var random = new Random(1234);
        for (int trial = 0; trial < 2000; trial++)
        {
            string purpose = RandomPurpose(random);
            string[] fields = RandomFields(random);
            bool typed = random.Next(2) == 0;
            string session = RandomString(random);
            long round = random.NextInt64(0, DomainLabel.MaxRound);

            byte[] label = typed ? DomainLabel.Encode(purpose, session, round, fields) : DomainLabel.Encode(purpose, fields);
            (string decodedPurpose, List<byte[]> decodedFields) = Decode(label);

            Assert.Equal(purpose, decodedPurpose);
            List<byte[]> expected = typed
                ? [Encoding.UTF8.GetBytes(session), RoundBytes(round), .. fields.Select(Encoding.UTF8.GetBytes)]
                : [.. fields.Select(Encoding.UTF8.GetBytes)];
            Assert.Equal(expected, decodedFields);
        }
    }

    [Fact]
    public void Encode_ManySmallInputs_NoTwoDifferentInputsCollide()
    {
        // Tiny alphabets make near-collisions (shifted boundaries, empty fields, purpose/field splits) frequent.
        var random = new Random(99);
        var seen = new Dictionary<string, string>();
        for (int trial = 0; trial < 20000; trial++)
        {
            string purpose = new(Enumerable.Range(0, random.Next(1, 3)).Select(_ => "ab"[random.Next(2)]).ToArray());
            string[] fields = Enumerable.Range(0, random.Next(0, 4))
                .Select(_ => new string(Enumerable.Range(0, random.Next(0, 3)).Select(_ => "ab"[random.Next(2)]).ToArray()))
                .ToArray();
            bool typed = random.Next(2) == 0;
            long round = random.Next(0, 3);
            string key = typed ? $"T|{purpose}|{round}|{string.Join("|", fields)}#{fields.Length}" : $"F|{purpose}|{string.Join("|", fields)}#{fields.Length}";
            byte[] label = typed && fields.Length > 0
                ? DomainLabel.Encode(purpose, fields[0], round, fields[1..])
                : DomainLabel.Encode(purpose, fields);
            if (typed && fields.Length == 0)
            {
                key = $"F|{purpose}|#0";
            }

            string hex = Convert.ToHexStringLower(label);
            if (seen.TryGetValue(hex, out string? previous))
            {
                Assert.Equal(previous, key);
            }
            else
            {
                seen[hex] = key;
            }
        }

        Assert.True(seen.Count > 500, $"only {seen.Count} distinct inputs were exercised");
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("tab\t")]
    [InlineData("ünicode")]
    public void Encode_InvalidPurpose_ThrowsArgumentException(string purpose)
    {
        Assert.ThrowsAny<ArgumentException>(() => DomainLabel.Encode(purpose, "x"));
    }

    [Fact]
    public void Encode_NullField_ThrowsArgumentNullException()
    {
        var ex = Assert.Throws<ArgumentNullException>(() => DomainLabel.Encode("p", "a", null!));
        Assert.Contains("fields[1]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_FieldWithNul_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => DomainLabel.Encode("p", "s", 1, "a\0b"));
        Assert.Contains("U+0000", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_LoneSurrogate_ThrowsArgumentException()
    {
        var ex = Assert.Throws<ArgumentException>(() => DomainLabel.Encode("p", "\ud800"));
        Assert.Contains("UTF-16", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(1L << 56)]
    public void Encode_RoundOutOfRange_ThrowsArgumentOutOfRangeException(long round)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => DomainLabel.Encode("p", "s", round));
    }

    private static (string Purpose, List<byte[]> Fields) Decode(byte[] label)
    {
        byte[] prefix = Encoding.ASCII.GetBytes(DomainLabel.Prefix);
        Assert.Equal(prefix, label[..prefix.Length]);
        int end = Array.IndexOf(label, (byte)0, prefix.Length);
        if (end < 0)
        {
            end = label.Length;
        }

        string purpose = Encoding.ASCII.GetString(label, prefix.Length, end - prefix.Length);
        var fields = new List<byte[]>();
        int offset = end;
        while (offset < label.Length)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(label.AsSpan(offset));
            fields.Add(label.AsSpan(offset + 4, length).ToArray());
            offset += 4 + length;
        }

        Assert.Equal(label.Length, offset);
        return (purpose, fields);
    }

    private static byte[] RoundBytes(long round)
    {
        byte[] bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)round);
        return bytes;
    }

    private static string RandomPurpose(Random random)
    {
        const string Alphabet = "abcxyz019-_/.:";
        return new string(Enumerable.Range(0, random.Next(1, 12)).Select(_ => Alphabet[random.Next(Alphabet.Length)]).ToArray());
    }

    private static string[] RandomFields(Random random) =>
        Enumerable.Range(0, random.Next(0, 5)).Select(_ => RandomString(random)).ToArray();

    private static string RandomString(Random random)
    {
        const string Alphabet = "ab\u0001é€😀 ";
        var builder = new StringBuilder();
        int length = random.Next(0, 6);
        while (builder.Length < length)
        {
            int index = random.Next(Alphabet.Length);
            char c = Alphabet[index];
            if (char.IsHighSurrogate(c))
            {
                builder.Append(c).Append(Alphabet[index + 1]);
            }
            else if (!char.IsLowSurrogate(c))
            {
                builder.Append(c);
            }
        }

        return builder.ToString();
    }
}
