using System.Globalization;
using System.Text;

namespace SecureFed.Privacy;

/// <summary>
/// What <see cref="PrivacyLedger.RepairTornTail"/> found and did. The only damage it removes is a torn last line (a crash
/// or power loss in the middle of an append); anything else is refused before this is returned.
/// </summary>
/// <param name="FilePath">The ledger file.</param>
/// <param name="Torn">True when the last line had no terminating newline; false for a ledger that verifies as it is (nothing to repair).</param>
/// <param name="Applied">True when the file was rewritten (repair with apply); false for a dry run or a ledger with nothing to repair.</param>
/// <param name="TornLineNumber">The 1-based line number of the torn line; 0 when <paramref name="Torn"/> is false.</param>
/// <param name="OriginalBytes">The file's length before the repair.</param>
/// <param name="TornBytes">The bytes after the last newline: those the repair removes (empty when nothing is torn).</param>
/// <param name="BackupPath">Where the original file was kept byte for byte; null unless <paramref name="Applied"/>.</param>
/// <param name="LockPath">The writer lock held while reading and rewriting; null when its folder does not exist (no agent or aggregator ever ran there).</param>
/// <param name="Ledger">The ledger as it is after the repair (for a dry run: as it would be), verified, read-only.</param>
/// <param name="KeptSha256">The SHA-256 (hex) of the complete lines the repair keeps (the file's bytes after it, or for a
/// dry run as they would be); null when nothing is torn.</param>
public sealed record LedgerRepairResult(
    string FilePath,
    bool Torn,
    bool Applied,
    int TornLineNumber,
    long OriginalBytes,
    ReadOnlyMemory<byte> TornBytes,
    string? BackupPath,
    string? LockPath,
    PrivacyLedger Ledger,
    string? KeptSha256 = null)
{
    /// <summary>The bytes the repair keeps: <see cref="OriginalBytes"/> less the torn ones.</summary>
    public long KeptBytes => OriginalBytes - TornBytes.Length;

    /// <summary>The SHA-256 (hex) of <see cref="TornBytes"/>, to match the bytes against the backup.</summary>
    public string TornSha256 => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(TornBytes.Span));

    /// <summary>
    /// <see cref="TornBytes"/> as one line of text for a terminal: printable ASCII as is, quotes and backslashes escaped,
    /// every other byte as <c>\xNN</c> (a torn line can end inside a UTF-8 sequence, or be zeros left by the file system
    /// after a power loss), cut after <paramref name="maxBytes"/> bytes with the number left out.
    /// </summary>
    public string TornText(int maxBytes = 160)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        ReadOnlySpan<byte> bytes = TornBytes.Span;
        var text = new StringBuilder("\"");
        foreach (byte b in bytes[..Math.Min(bytes.Length, maxBytes)])
        {
            if (b is (byte)'"' or (byte)'\\')
            {
                text.Append('\\').Append((char)b);
            }
            else if (b is >= 0x20 and < 0x7F)
            {
                text.Append((char)b);
            }
            else
            {
                text.Append(CultureInfo.InvariantCulture, $"\\x{b:x2}");
            }
        }

        text.Append('"');
        if (bytes.Length > maxBytes)
        {
            text.Append(CultureInfo.InvariantCulture, $" … ({bytes.Length - maxBytes} more bytes)");
        }

        return text.ToString();
    }
}
