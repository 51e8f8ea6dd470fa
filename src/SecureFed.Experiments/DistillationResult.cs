namespace SecureFed.Experiments;

/// <summary>
/// One self-training of a federated arm's final model (the teacher) on pseudo-labelled public text
/// (<see cref="PublicDistillation"/>): the teacher's and the student's dev and test F1, per epoch and at the epoch
/// chosen by dev F1.
/// </summary>
/// <param name="TeacherArm">The federated arm whose final model was the teacher.</param>
/// <param name="TeacherDevF1">The teacher's dev F1.</param>
/// <param name="TeacherTestF1">The teacher's test F1.</param>
/// <param name="BestEpoch">The student epoch with the best dev F1 (1-based): the student reported.</param>
/// <param name="DevF1PerEpoch">The student's dev F1 after each epoch.</param>
/// <param name="TestF1PerEpoch">The student's test F1 after each epoch (reported, never used to choose).</param>
/// <param name="PublicSentences">Public sentences the teacher labelled and the student trained on.</param>
/// <param name="PublicTokens">Their tokens.</param>
/// <param name="PseudoEntities">Entities in the teacher's labels.</param>
public sealed record DistillationResult(
    string TeacherArm,
    double TeacherDevF1,
    double TeacherTestF1,
    int BestEpoch,
    IReadOnlyList<double> DevF1PerEpoch,
    IReadOnlyList<double> TestF1PerEpoch,
    int PublicSentences,
    long PublicTokens,
    int PseudoEntities)
{
    /// <summary>The chosen student's dev F1.</summary>
    public double StudentDevF1 => DevF1PerEpoch[BestEpoch - 1];

    /// <summary>The chosen student's test F1.</summary>
    public double StudentTestF1 => TestF1PerEpoch[BestEpoch - 1];
}
