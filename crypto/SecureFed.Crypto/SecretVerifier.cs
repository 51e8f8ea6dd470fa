namespace SecureFed.Crypto;

/// <summary>
/// Says whether a rebuilt secret is the right one, e.g. by comparing it with a commitment or a public key published
/// before the shares were revealed. Must not keep <paramref name="secret"/>.
/// </summary>
public delegate bool SecretVerifier(ReadOnlySpan<byte> secret);
