using SecureFed.Protocol;

namespace SecureFed.Cluster;

/// <summary>
/// The round grain's answer to "may <c>site</c> upload slice k of its masked input in session s now?" (protocol version
/// 4, docs/cluster.md §6): the site's protocol index and the slice's words, or the refusal with its kind and reason. The
/// checks are the single process's for a whole vector, in its order, plus the slice index and whether the round announced
/// slices at all. An admitted upload also learns
/// how many slices the round has (<see cref="Slices"/>: how many of one site's uploads may wait at a silo).
/// </summary>
[GenerateSerializer]
[Alias("securefed.SliceAdmission")]
public sealed record SliceAdmission(
    [property: Id(0)] int Index,
    [property: Id(1)] int Offset,
    [property: Id(2)] int Length,
    [property: Id(3)] SliceRefusalKind Refusal,
    [property: Id(4)] string? Reason,
    [property: Id(5)] int Slices = 0)
{
    /// <summary>True when the slice may be uploaded.</summary>
    public bool Admitted => Refusal == SliceRefusalKind.None;

    /// <summary>Decides from the round's state (pure: <c>RoundGrain.AdmitSliceAsync</c> passes its state).</summary>
    /// <param name="spec">The open round, or null when the round grain holds none.</param>
    /// <param name="stage">The round's stage.</param>
    /// <param name="expected">U2: who may send a masked input.</param>
    /// <param name="delivered">U3 so far: who sent every slice.</param>
    /// <param name="round">The round the upload's header names.</param>
    /// <param name="sessionId">The session the upload's header names.</param>
    /// <param name="site">The caller (from its mTLS certificate).</param>
    /// <param name="slice">The slice index of the upload's first chunk.</param>
    /// <param name="wholeInputsOnly">
    /// The round takes masked inputs whole (protocol version 3: the coordinator announced no slices, because a slice's silo
    /// serves no agents or the slices name more hosts than an agent accepts); a slice upload is then refused, or a site
    /// could put its input in the sum through a slice silo without the coordinator's <c>masked_input.received</c> line.
    /// </param>
    public static SliceAdmission Decide(ClusterRoundSpec? spec, ProtocolStage stage, IReadOnlyCollection<int> expected, IReadOnlyCollection<int> delivered,
        long round, string sessionId, string site, long slice, bool wholeInputsOnly = false)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(delivered);
        if (spec is null)
        {
            return No(SliceRefusalKind.StaleOrReplay, $"round {round} is not open on this cluster (never opened, already over, or its silo failed); stale messages are refused");
        }

        if (spec.Round != round || !string.Equals(spec.SessionId, sessionId, StringComparison.Ordinal))
        {
            return No(SliceRefusalKind.StaleOrReplay, $"the message is for round {round} session '{Truncate(sessionId)}', but the current round is {spec.Round} (session {spec.SessionId}); replays and stale messages are refused");
        }

        Participant? participant = spec.Participants.FirstOrDefault(p => string.Equals(p.Name, site, StringComparison.Ordinal));
        if (participant is null)
        {
            return No(SliceRefusalKind.NotInCohort, $"site '{site}' is not in the cohort of round {spec.Round}");
        }

        int index = participant.Index;
        if (wholeInputsOnly)
        {
            return No(SliceRefusalKind.WholeInputsOnly, $"index {index}: round {spec.Round} takes the masked input whole (protocol version 3); it announced no slices, so a slice upload is refused: send the whole masked input to the coordinator");
        }

        if (stage != ProtocolStage.MaskedInputCollection)
        {
            return No(SliceRefusalKind.WrongStage, $"index {index}: message for stage {ProtocolStage.MaskedInputCollection} is out of order: the round is at stage {stage}");
        }

        if (!expected.Contains(index))
        {
            return No(SliceRefusalKind.NotExpected, $"index {index}: did not complete ShareKeys in this round");
        }

        SliceLayout layout = spec.Layout;
        if (slice < 0 || slice >= layout.Count)
        {
            return No(SliceRefusalKind.NoSuchSlice, $"index {index}: slice {slice} does not exist; the round has {layout.Count} slices");
        }

        if (delivered.Contains(index))
        {
            return No(SliceRefusalKind.AlreadySent, $"index {index}: already sent its masked input (every slice)");
        }

        int k = (int)slice;
        return new SliceAdmission(index, layout.Offset(k), layout.Length(k), SliceRefusalKind.None, null, layout.Count);
    }

    private static SliceAdmission No(SliceRefusalKind kind, string reason) => new(0, 0, 0, kind, reason);

    private static string Truncate(string value) => SecureFed.Audit.AuditText.Bound(value, SecureFed.Audit.AuditText.IdentifierChars);
}
