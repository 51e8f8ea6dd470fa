using TorchSharp.Modules;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Internal;

/// <summary>The check before a non-private optimizer step: the gradient's norm must be finite, clipped or not.</summary>
internal static class GradientGuard
{
    /// <summary>
    /// Clips the gradients of <paramref name="parameters"/> to L2 norm <paramref name="clip"/> (0: not clipped) and
    /// returns whether their total norm was finite. When it was not, the step must be skipped: a step along a NaN or
    /// infinite gradient makes every weight NaN, and clipping an infinite norm scales the gradient to NaN or 0.
    /// </summary>
    /// <remarks>
    /// Without a clip the norm is still computed (libtorch's clip with an infinite bound: coefficient clamped to 1,
    /// the gradient unchanged), so a NaN gradient behind a finite loss is caught with the clip off too.
    /// </remarks>
    public static bool ClipAndCheck(IEnumerable<Parameter> parameters, double clip)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(clip);
        double bound = clip > 0 ? clip : double.PositiveInfinity;
        return double.IsFinite(nn.utils.clip_grad_norm_(parameters, bound));
    }
}
