using System.Globalization;

namespace SecureFed.Privacy;

/// <summary>
/// The training scalars a site hands libtorch as 32-bit floats (a learning rate, the DP-SGD clip C). A finite value past
/// <see cref="float.MaxValue"/> makes libtorch refuse the conversion in the middle of a round, so every place that takes
/// one (the agent's and the aggregator's settings, the demo's and the experiment's options) refuses it up front, with
/// the one message <see cref="TooLarge"/> writes.
/// </summary>
public static class Float32Scalar
{
    /// <summary>Whether <paramref name="value"/> is finite and positive but beyond what a 32-bit float holds (a value ≤ 0 is each caller's own refusal).</summary>
    public static bool IsTooLarge(double value) => double.IsFinite(value) && value > float.MaxValue;

    /// <summary>The refusal for <paramref name="value"/> of the setting or option <paramref name="name"/>.</summary>
    public static string TooLarge(string name, double value) => string.Create(CultureInfo.InvariantCulture,
        $"{name} must be a positive number of at most {float.MaxValue:G2} (the sites train in 32-bit floats), got {value}.");
}
