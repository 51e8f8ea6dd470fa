namespace SecureFed.Aggregator;

/// <summary>
/// This process no longer holds the coordinator lease of the aggregator cluster (it could not renew it before it
/// expired, or another silo holds a newer epoch): it must stop driving rounds at once.
/// </summary>
public sealed class CoordinatorLeaseLostException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CoordinatorLeaseLostException()
        : this("this process no longer holds the coordinator lease")
    {
    }

    /// <summary>Creates the exception with a reason.</summary>
    public CoordinatorLeaseLostException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a reason and its cause.</summary>
    public CoordinatorLeaseLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
