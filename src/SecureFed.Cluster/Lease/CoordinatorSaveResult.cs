namespace SecureFed.Cluster.Lease;

/// <summary>What one save of the coordinator's state wrote (<see cref="PostgresCoordinatorState"/>).</summary>
/// <param name="Files">Snapshot files written (those that changed).</param>
/// <param name="Models">Model versions written (those the database did not hold yet).</param>
/// <param name="ModelBytes">The bytes of those model versions.</param>
public readonly record struct CoordinatorSaveResult(int Files, int Models, long ModelBytes)
{
    /// <summary>Audit lines appended as rows (those the database did not hold yet).</summary>
    public int AuditLines { get; init; }

    /// <summary>The bytes of those audit lines.</summary>
    public long AuditBytes { get; init; }

    /// <summary>Rows of server-optimizer moments written (1 when the round store's model version's moments were not saved yet).</summary>
    public int Moments { get; init; }

    /// <summary>The bytes of those moments.</summary>
    public long MomentBytes { get; init; }

    /// <summary>
    /// Model rows deleted because the round store saved with them no longer holds their versions (pruned by
    /// <c>SecureFed:KeepModelVersions</c>).
    /// </summary>
    public int PrunedModels { get; init; }

    /// <summary>Whether the coordinator's round-affecting settings were written (the first save of an instance that was given them).</summary>
    public bool Settings { get; init; }
}
