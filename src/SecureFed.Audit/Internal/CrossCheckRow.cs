namespace SecureFed.Audit.Internal;

/// <summary>One masked-input record and whether its counterpart was found in the other side's log.</summary>
internal sealed record CrossCheckRow(bool Ok, string Direction, string Round, string Site, string Sha256, string Detail, LogRef Source);
