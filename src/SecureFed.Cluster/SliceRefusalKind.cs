namespace SecureFed.Cluster;

/// <summary>Why a slice upload is not admitted (<see cref="SliceAdmission"/>); each maps to one gRPC status.</summary>
public enum SliceRefusalKind
{
    /// <summary>Admitted.</summary>
    None = 0,

    /// <summary>Not the open round and session (FailedPrecondition).</summary>
    StaleOrReplay = 1,

    /// <summary>The caller is not in the round's cohort (PermissionDenied).</summary>
    NotInCohort = 2,

    /// <summary>The round is not collecting masked inputs (FailedPrecondition).</summary>
    WrongStage = 3,

    /// <summary>The caller is not in U2 (InvalidArgument).</summary>
    NotExpected = 4,

    /// <summary>The slice index is out of range (InvalidArgument).</summary>
    NoSuchSlice = 5,

    /// <summary>The caller's masked input is already complete (AlreadyExists).</summary>
    AlreadySent = 6,

    /// <summary>The round takes masked inputs whole (protocol version 3): it announced no slices (FailedPrecondition).</summary>
    WholeInputsOnly = 7,
}
