namespace SecureFed.Crypto;

/// <summary>
/// One Shamir share: the x-coordinate (1 &lt;= x) and the value, ceil(L / 7) field elements of GF(2^61 - 1),
/// each 8 bytes little-endian, one per 7-byte chunk of the L-byte secret.
/// </summary>
/// <param name="X">The evaluation point (non-zero; usually the party's index).</param>
/// <param name="Value">The share value, 8 * ceil(L / 7) bytes.</param>
public sealed record ShamirShare(int X, byte[] Value);
