using TorchSharp;

namespace SecureFed.Tagger.Internal;

/// <summary>
/// The TorchSharp <see cref="Scalar"/>s the tagger uses, created once and kept alive by static fields.
/// </summary>
/// <remarks>
/// Never let TorchSharp convert a .NET number to a <see cref="Scalar"/> implicitly (<c>t.clamp_min(1.0)</c>,
/// <c>t * 2.0</c>, <c>a + b</c>, whose alpha is an implicit 1, <c>t.square()</c>, the optimizers' steps): the temporary
/// Scalar is unreachable as soon as its native handle has been read, so a garbage collection caused by another thread
/// can run its finalizer and free the native scalar while libtorch is still reading it (a crash in <c>Scalar.h</c>, or
/// silently wrong numbers). Use a field of this class, or <c>using Scalar s = x.ToScalar();</c> for a value that
/// changes (the <c>using</c> keeps it alive until after the call). <c>ImplicitScalarScanTests</c> reads the IL and
/// fails on every temporary Scalar, including those TorchSharp makes inside the methods we call.
/// </remarks>
internal static class TorchScalars
{
    /// <summary>Integer 0 (fills and comparisons with index tensors).</summary>
    public static readonly Scalar ZeroInt = 0.ToScalar();

    /// <summary>Integer 1.</summary>
    public static readonly Scalar OneInt = 1.ToScalar();

    /// <summary>1.0.</summary>
    public static readonly Scalar One = 1.0.ToScalar();

    /// <summary>0.0 (float).</summary>
    public static readonly Scalar Zero = 0.0.ToScalar();

    /// <summary>-1.0.</summary>
    public static readonly Scalar MinusOne = (-1.0).ToScalar();

    /// <summary>2.0.</summary>
    public static readonly Scalar Two = 2.0.ToScalar();

    /// <summary><paramref name="a"/> + <paramref name="b"/> with an explicit integer alpha of 1, as TorchSharp's <c>a + b</c> uses, but kept alive.</summary>
    public static torch.Tensor Add(torch.Tensor a, torch.Tensor b) => a.add(b, OneInt);

    /// <summary><paramref name="a"/> − <paramref name="b"/> (TorchSharp's <c>sub(Tensor)</c> takes no alpha, so it makes no Scalar).</summary>
    public static torch.Tensor Sub(torch.Tensor a, torch.Tensor b) => a.sub(b);
}
