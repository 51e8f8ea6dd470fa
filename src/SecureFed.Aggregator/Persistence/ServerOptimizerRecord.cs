namespace SecureFed.Aggregator.Persistence;

/// <summary>
/// The server update rule's saved state without its moments (<see cref="AggregatorStore.ServerOptimizerMetadata"/>): what
/// the aggregator cluster's coordinator ties the moments it saves apart to (<see cref="AggregatorStore.OpenServerOptimizer"/>,
/// <see cref="AggregatorStore.WriteServerOptimizerBytes"/>).
/// </summary>
/// <param name="ModelVersion">The model version the moments go with.</param>
/// <param name="Kind">The rule (momentum or adam).</param>
/// <param name="Steps">Rounds the rule had applied.</param>
/// <param name="ParameterCount">Values per moment.</param>
/// <param name="FirstBytes">Bytes of the first moment in the store (0 in a snapshot without them).</param>
/// <param name="SecondBytes">Bytes of the second moment in the store (0 for momentum, and in a snapshot without them).</param>
public sealed record ServerOptimizerRecord(long ModelVersion, string Kind, long Steps, long ParameterCount, long FirstBytes, long SecondBytes)
{
    /// <summary>Whether the store holds the moments' bytes (false in a snapshot taken without them, before they are written back).</summary>
    public bool HasBytes => FirstBytes == ParameterCount * sizeof(double);

    /// <summary>Bytes of both moments, first then second: what <see cref="AggregatorStore.OpenServerOptimizer"/> reads.</summary>
    public long Bytes => FirstBytes + SecondBytes;
}
