namespace SecureFed.Tagger;

/// <summary>Name and shape of one parameter tensor in <see cref="TaggerModel.Flatten"/> order.</summary>
/// <param name="Name">The <c>named_parameters()</c> name, e.g. <c>head.weight</c>.</param>
/// <param name="Shape">The tensor shape.</param>
public sealed record ParameterInfo(string Name, IReadOnlyList<long> Shape);
