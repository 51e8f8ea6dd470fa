using SecureFed.Cluster.Lease;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The command timeout of a statement that sends one model version or moment, or reads a model version back (<see cref="PostgresCoordinatorState.ModelCommandTimeoutSeconds"/>):
/// never below the connection's, 60 s plus one second per MiB, none when the connection string says none.
/// </summary>
public sealed class ModelCommandTimeoutTests
{
    [Theory]
    [InlineData(30, 0, 60)] // an empty value: the floor of 60 s
    [InlineData(30, 4L << 20, 64)] // a 4 MiB model
    [InlineData(30, 440_000_000, 479)] // BERT-base size: 440 MB = 419.6 MiB
    [InlineData(600, 440_000_000, 600)] // the connection string's Command Timeout when longer
    [InlineData(0, 440_000_000, 0)] // Command Timeout=0: no timeout, kept
    [InlineData(30, 1L << 40, 1_048_636)] // far beyond PostgreSQL's 1 GB value limit: still an int
    public void ModelCommandTimeoutSeconds_ScalesWithTheSizeNeverBelowTheConnections(int configured, long sizeBytes, int expected)
        => Assert.Equal(expected, PostgresCoordinatorState.ModelCommandTimeoutSeconds(configured, sizeBytes));

    [Fact]
    public void ModelCommandTimeoutSeconds_NegativeArguments_Refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PostgresCoordinatorState.ModelCommandTimeoutSeconds(-1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => PostgresCoordinatorState.ModelCommandTimeoutSeconds(30, -1));
    }
}
