namespace SecureFed.Tagger;

/// <summary>Entity-level exact-match counts and scores (all in [0, 1]; 0 when undefined).</summary>
/// <param name="TruePositives">Predicted chunks that match a gold chunk exactly (span and type).</param>
/// <param name="Gold">Gold chunks.</param>
/// <param name="Predicted">Predicted chunks.</param>
public sealed record EntityScore(int TruePositives, int Gold, int Predicted)
{
    /// <summary>TP / predicted.</summary>
    public double Precision => Predicted == 0 ? 0 : (double)TruePositives / Predicted;

    /// <summary>TP / gold.</summary>
    public double Recall => Gold == 0 ? 0 : (double)TruePositives / Gold;

    /// <summary>Harmonic mean of precision and recall.</summary>
    public double F1 => Precision + Recall == 0 ? 0 : 2 * Precision * Recall / (Precision + Recall);
}
