namespace SecureFed.Integration.Tests.Operations;

/// <summary>A span as received (with its sender's resource attributes): identifiers in lower-case hex (the parent's empty for a root span).</summary>
internal sealed record OtlpSpan(IReadOnlyDictionary<string, string> Resource, string Scope, string Name, string TraceId, string SpanId, string ParentSpanId, IReadOnlyDictionary<string, string> Attributes)
{
    public string Service => Resource.GetValueOrDefault("service.name") ?? "";
}
