namespace SecureFed.Integration.Tests.Operations;

/// <summary>A metric as received: the sender's resource attributes (service.name, service.instance.id), the instrumentation scope (meter) and its points.</summary>
internal sealed record OtlpMetric(IReadOnlyDictionary<string, string> Resource, string Scope, string Name, string Unit, IReadOnlyList<OtlpPoint> Points)
{
    public string Service => Resource.GetValueOrDefault("service.name") ?? "";
}
