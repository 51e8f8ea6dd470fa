namespace SecureFed.Integration.Tests.Operations;

/// <summary>A number point (Value, Count 1) or a histogram point (Value = sum, Count = count).</summary>
internal sealed record OtlpPoint(IReadOnlyDictionary<string, string> Attributes, double Value, long Count);
