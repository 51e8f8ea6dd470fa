namespace SecureFed.Audit.Internal;

/// <summary>
/// One masked-input record and whether its counterpart was found in the other side's log. <paramref name="Unverified"/>:
/// the counterpart is only in the other log's unverified tail (lines after its newest signed checkpoint, as a running or
/// killed process leaves them): not a discrepancy, but a warning, since no signature covers the counterpart yet.
/// <paramref name="NotReceived"/>: an input a site logged sending (it logs before the upload) that no log shows reaching
/// the aggregator (the site stopped during its upload): not a discrepancy, but a note.
/// </summary>
internal sealed record CrossCheckRow(bool Ok, string Direction, string Round, string Site, string Sha256, string Detail, LogRef Source, bool Unverified = false, bool NotReceived = false);
