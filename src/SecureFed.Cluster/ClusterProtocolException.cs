namespace SecureFed.Cluster;

/// <summary>
/// A message a site sent to the cluster was refused (the cluster's counterpart of a <c>ProtocolViolationException</c>,
/// carried across silos as a plain message: the reason names the site's index and what was wrong).
/// </summary>
[GenerateSerializer]
[Alias("securefed.ClusterProtocolException")]
public sealed class ClusterProtocolException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ClusterProtocolException()
    {
    }

    /// <summary>Creates the exception with a reason.</summary>
    public ClusterProtocolException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a reason and its cause.</summary>
    public ClusterProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
