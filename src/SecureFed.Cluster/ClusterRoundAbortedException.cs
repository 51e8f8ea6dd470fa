namespace SecureFed.Cluster;

/// <summary>The cluster round was aborted before anything was revealed; <see cref="Exception.Message"/> says at which stage and why.</summary>
[GenerateSerializer]
[Alias("securefed.ClusterRoundAbortedException")]
public sealed class ClusterRoundAbortedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ClusterRoundAbortedException()
    {
    }

    /// <summary>Creates the exception with a reason.</summary>
    public ClusterRoundAbortedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a reason and its cause.</summary>
    public ClusterRoundAbortedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
