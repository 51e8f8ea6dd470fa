namespace SecureFed.Audit.Internal;

/// <summary>A torn last line moved to quarantine by a repairing open.</summary>
internal readonly record struct QuarantinedTail(long Line, long Bytes, byte[] Sha256, string File);
