using System.Buffers.Binary;
using System.Text;

namespace SecureFed.Crypto;

/// <summary>
/// Builds unambiguous domain-separation labels for HKDF info, AEAD associated data and PRG domains.
/// </summary>
/// <remarks>
/// <para>Encoding (normative; repeated in docs/PROTOCOL.md):</para>
/// <code>
/// label = ASCII("securefed/v1/") || ASCII(purpose) || field_1 || ... || field_k
/// field = u32be(byte length) || bytes          (strings: their UTF-8 bytes)
/// </code>
/// <para>The session/round/parties overload writes the fields sessionId, round, party_1, ..., party_k, where the round
/// is a field of length 8 holding u64be(round).</para>
/// <para>Why it is unambiguous: the purpose is restricted to printable ASCII (0x21-0x7E, never 0x00) and every field
/// is shorter than 2^24 bytes, so each length prefix starts with a 0x00 byte; the purpose therefore ends at the first
/// 0x00 byte (or the end), and the fields are self-delimiting. Strings may not contain U+0000 and must be valid
/// UTF-16 (no lone surrogates, which UTF-8 could not encode faithfully). Rounds are limited to [0, 2^56), so the
/// round field starts with 0x00 and can never equal the UTF-8 bytes of a string field: the two overloads never
/// produce the same bytes either.</para>
/// </remarks>
public static class DomainLabel
{
    /// <summary>The fixed prefix of every label.</summary>
    public const string Prefix = "securefed/v1/";

    /// <summary>The largest byte length of one field (2^24 - 1).</summary>
    public const int MaxFieldBytes = (1 << 24) - 1;

    /// <summary>The largest round number accepted (2^56 - 1).</summary>
    public const long MaxRound = (1L << 56) - 1;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Encodes <paramref name="purpose"/> and the string <paramref name="fields"/> (see the type remarks).</summary>
    /// <exception cref="ArgumentException">The purpose is empty or not printable ASCII, a field is null, too long,
    /// contains U+0000 or is not valid UTF-16.</exception>
    public static byte[] Encode(string purpose, params ReadOnlySpan<string> fields)
    {
        var writer = new LabelWriter(purpose);
        for (int i = 0; i < fields.Length; i++)
        {
            writer.AddString(fields[i], $"fields[{i}]");
        }

        return writer.ToArray();
    }

    /// <summary>
    /// Encodes <paramref name="purpose"/>, then the fields <paramref name="sessionId"/>, u64be(<paramref name="round"/>)
    /// (length 8) and each of <paramref name="parties"/>.
    /// </summary>
    /// <exception cref="ArgumentException">As for the string overload.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="round"/> is negative or above <see cref="MaxRound"/>.</exception>
    public static byte[] Encode(string purpose, string sessionId, long round, params ReadOnlySpan<string> parties)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(round);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(round, MaxRound);
        var writer = new LabelWriter(purpose);
        writer.AddString(sessionId, nameof(sessionId));
        Span<byte> roundBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(roundBytes, (ulong)round);
        writer.AddBytes(roundBytes);
        for (int i = 0; i < parties.Length; i++)
        {
            writer.AddString(parties[i], $"parties[{i}]");
        }

        return writer.ToArray();
    }

    private sealed class LabelWriter
    {
        private readonly List<byte> _bytes = new(64);

        public LabelWriter(string purpose)
        {
            ArgumentException.ThrowIfNullOrEmpty(purpose);
            foreach (char c in purpose)
            {
                if (c is < (char)0x21 or > (char)0x7e)
                {
                    throw new ArgumentException(
                        $"A label purpose must be printable ASCII without spaces; '{purpose}' contains U+{(int)c:X4}.", nameof(purpose));
                }
            }

            _bytes.AddRange(Encoding.ASCII.GetBytes(Prefix));
            _bytes.AddRange(Encoding.ASCII.GetBytes(purpose));
        }

        public void AddString(string value, string name)
        {
            if (value is null)
            {
                throw new ArgumentNullException(name, $"Label field {name} is null.");
            }

            if (value.Contains('\0', StringComparison.Ordinal))
            {
                throw new ArgumentException($"Label field {name} contains U+0000, which labels do not allow.", name);
            }

            byte[] utf8;
            try
            {
                utf8 = s_strictUtf8.GetBytes(value);
            }
            catch (EncoderFallbackException ex)
            {
                throw new ArgumentException($"Label field {name} is not valid UTF-16 (a lone surrogate): {ex.Message}", name, ex);
            }

            AddBytes(utf8, name);
        }

        public void AddBytes(ReadOnlySpan<byte> value, string name = "round")
        {
            if (value.Length > MaxFieldBytes)
            {
                throw new ArgumentException($"Label field {name} is {value.Length} bytes; the limit is {MaxFieldBytes}.", name);
            }

            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(length, (uint)value.Length);
            _bytes.AddRange(length);
            _bytes.AddRange(value);
        }

        public byte[] ToArray() => _bytes.ToArray();
    }
}
