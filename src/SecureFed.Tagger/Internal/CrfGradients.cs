namespace SecureFed.Tagger.Internal;

/// <summary>
/// Exact CRF negative log-likelihood gradients of a batch (see <see cref="LinearChainCrf.Gradients"/>):
/// emissions [B * T * L]; transitions, start and end summed over the batch or one block per sentence.
/// </summary>
internal sealed record CrfGradients(float[] Emissions, double[] Transitions, double[] Start, double[] End, double NegativeLogLikelihood);
