namespace SecureFed.Crypto;

/// <summary>The result of <see cref="ShamirDecoder.Decode"/>.</summary>
/// <param name="Secret">The rebuilt secret (the caller wipes it).</param>
/// <param name="RejectedX">x-coordinates of the shares that are not on the secret's polynomial (wrong, malformed or
/// holding a value outside the field), ascending.</param>
public sealed record ShamirDecoding(byte[] Secret, IReadOnlyList<int> RejectedX);
