using SecureFed.Protocol;

namespace SecureFed.Agent;

/// <summary>The result of local training: the model delta and what it cost.</summary>
/// <param name="Delta">θ_local − θ_global, in the model's flatten order.</param>
/// <param name="Examples">Training examples (sentences) used.</param>
/// <param name="DpSteps">DP-SGD steps taken (each a Poisson-sampled batch).</param>
/// <param name="SampleRate">q actually used.</param>
/// <param name="Loss">Final training loss.</param>
/// <param name="GlobalDevF1">Dev F1 of the received global model before training (NaN when no dev set).</param>
public sealed record LocalUpdate(float[] Delta, long Examples, int DpSteps, double SampleRate, double Loss, double GlobalDevF1)
{
    /// <summary>
    /// The received global model's entity-level counts on this site's dev data (federated evaluation), or null when the
    /// round asked for none or the site has no dev data. They go into the masked input only, never in the clear.
    /// </summary>
    public EvaluationCounts? GlobalDevCounts { get; init; }

    /// <summary>Training throughput in tokens per second (forward, backward and step), or NaN when the trainer does not measure it.</summary>
    public double TokensPerSecond { get; init; } = double.NaN;
}
