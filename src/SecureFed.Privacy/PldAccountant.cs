using SecureFed.Privacy.Internal;

namespace SecureFed.Privacy;

/// <summary>
/// A privacy-loss-distribution (PLD) accountant for DP-SGD's Poisson-subsampled Gaussian mechanism (Koskela, Jälkö and
/// Honkela, AISTATS 2020; Gopi, Lee and Wutschitz, NeurIPS 2021; Google's dp_accounting): the distribution of the
/// privacy loss of one step is discretised on a grid, composed over the steps exactly by FFT, and δ(ε) is read off the
/// composed distribution. It is tighter than the Rényi-DP bound (<see cref="RdpAccountant"/>), which it never exceeds,
/// so the same ε needs less noise.
/// </summary>
/// <remarks>
/// <para>The discretisation is pessimistic, so the result is an upper bound on the true ε: each step's loss is rounded UP
/// to the grid, the loss below the grid's range is moved onto its lowest point, and the probability beyond its top is
/// treated as an infinite loss (it is added to δ in full), as is any negative rounding residue of the FFT. The grid
/// step (default 5e-4) costs at most that much ε per step in the worst case, on average half of it.</para>
/// <para>Both adjacency directions are accounted (removing an example: P = (1 − q) N(0, σ²) + q N(1, σ²) against
/// Q = N(0, σ²); adding one: Q against P), and ε is the larger.</para>
/// </remarks>
public static class PldAccountant
{
    /// <summary>The default grid step of the privacy loss.</summary>
    public const double DefaultGridStep = 5e-4;

    private const double TailSigmas = 10;
    private const int MaxFftLog2 = 25;

    /// <summary>The ε that <paramref name="steps"/> steps of the subsampled Gaussian spend at <paramref name="delta"/>.</summary>
    /// <param name="noiseMultiplier">σ, the noise's standard deviation over the clipping norm, &gt; 0.</param>
    /// <param name="sampleRate">q, Poisson sampling rate in (0, 1].</param>
    /// <param name="steps">T ≥ 1.</param>
    /// <param name="delta">δ in (0, 1).</param>
    /// <param name="gridStep">The loss grid's step, in [1e-5, 0.1].</param>
    /// <returns>ε ≥ 0 (an upper bound), or +∞ when even an infinite ε leaves more than δ.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of its domain (named).</exception>
    /// <exception cref="ArgumentException">The composed distribution would not fit (take a larger grid step).</exception>
    public static double Epsilon(double noiseMultiplier, double sampleRate, long steps, double delta, double gridStep = DefaultGridStep)
    {
        Validate(noiseMultiplier, sampleRate, steps, delta, gridStep);
        return Math.Max(
            Compose(noiseMultiplier, sampleRate, steps, gridStep, remove: true).EpsilonFor(delta),
            Compose(noiseMultiplier, sampleRate, steps, gridStep, remove: false).EpsilonFor(delta));
    }

    /// <summary>δ at <paramref name="epsilon"/> after <paramref name="steps"/> steps (an upper bound; the larger of the two directions).</summary>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of its domain (named).</exception>
    public static double Delta(double noiseMultiplier, double sampleRate, long steps, double epsilon, double gridStep = DefaultGridStep)
    {
        Validate(noiseMultiplier, sampleRate, steps, 0.5, gridStep);
        ArgumentOutOfRangeException.ThrowIfNegative(epsilon);
        return Math.Max(
            Compose(noiseMultiplier, sampleRate, steps, gridStep, remove: true).DeltaAt(epsilon),
            Compose(noiseMultiplier, sampleRate, steps, gridStep, remove: false).DeltaAt(epsilon));
    }

    /// <summary>
    /// The smallest noise multiplier (to a relative 1e-3, on the safe side) whose <see cref="Epsilon"/> is at most
    /// <paramref name="targetEpsilon"/>; never larger than the RDP accountant's (<see cref="NoiseCalibration.NoiseMultiplierFor"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">An argument is out of its domain (named).</exception>
    public static double NoiseMultiplierFor(double targetEpsilon, double delta, double sampleRate, long steps, double gridStep = DefaultGridStep)
    {
        if (!double.IsFinite(targetEpsilon) || targetEpsilon <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(targetEpsilon), targetEpsilon, "The target epsilon must be finite and > 0.");
        }

        double hi = NoiseCalibration.NoiseMultiplierFor(targetEpsilon, delta, sampleRate, steps);
        Validate(hi, sampleRate, steps, delta, gridStep);
        if (Epsilon(hi, sampleRate, steps, delta, gridStep) > targetEpsilon)
        {
            return hi; // the grid's pessimism exceeds the RDP bound's slack: keep the RDP noise
        }

        double lo = hi / 2;
        while (Epsilon(lo, sampleRate, steps, delta, gridStep) <= targetEpsilon)
        {
            hi = lo;
            lo /= 2;
            if (lo < 1e-3)
            {
                return hi;
            }
        }

        while ((hi - lo) / hi > 1e-3)
        {
            double mid = 0.5 * (lo + hi);
            if (Epsilon(mid, sampleRate, steps, delta, gridStep) > targetEpsilon)
            {
                lo = mid;
            }
            else
            {
                hi = mid;
            }
        }

        return hi;
    }

    private static void Validate(double sigma, double q, long steps, double delta, double gridStep)
    {
        if (!(sigma > 0) || !double.IsFinite(sigma))
        {
            throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "The noise multiplier must be finite and > 0.");
        }

        if (!(q > 0 && q <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(q), q, "The sample rate must be in (0, 1].");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        if (!(delta > 0 && delta < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "Delta must be in (0, 1).");
        }

        if (!(gridStep >= 1e-5 && gridStep <= 0.1))
        {
            throw new ArgumentOutOfRangeException(nameof(gridStep), gridStep, "The PLD grid step must be in [1e-5, 0.1].");
        }
    }

    /// <summary>One direction's loss distribution, discretised (pessimistically) and composed <paramref name="steps"/> times.</summary>
    private static Composed Compose(double sigma, double q, long steps, double gridStep, bool remove)
    {
        var loss = new StepLoss(sigma, q, remove);
        (double yMin, double yMax) = loss.Range();
        long kLo = (long)Math.Floor(yMin / gridStep);
        long kHi = (long)Math.Ceiling(yMax / gridStep);
        int n = checked((int)(kHi - kLo));
        var mass = new double[n]; // mass[j] sits at the loss (kLo + 1 + j) · gridStep
        double previousBelow = 0; // Pr(loss ≤ (kLo + j) · gridStep), 0 for j = 0: the lower tail joins the first point
        double previousAbove = 1;
        for (int j = 0; j < n; j++)
        {
            double y = (kLo + 1 + j) * gridStep;
            double below = loss.AtMost(y);
            double above = loss.Above(y);
            mass[j] = Math.Max(0, previousBelow < 0.5 ? below - previousBelow : previousAbove - above);
            previousBelow = below;
            previousAbove = above;
        }

        double infinite = loss.Above(kHi * gridStep);
        long width = checked((steps * (n - 1)) + 1);
        int log2 = 0;
        while ((1L << log2) < width)
        {
            log2++;
        }

        if (log2 > MaxFftLog2)
        {
            throw new ArgumentException($"the composed privacy loss of {steps} steps needs {width:N0} grid points at step {gridStep:G3} (at most {1L << MaxFftLog2:N0}); take a larger grid step");
        }

        int size = 1 << log2;
        var re = new double[size];
        var im = new double[size];
        Array.Copy(mass, re, n);
        Fft.Transform(re, im, inverse: false);
        for (int i = 0; i < size; i++)
        {
            double r = Math.Pow(Math.Sqrt((re[i] * re[i]) + (im[i] * im[i])), steps);
            double theta = Math.Atan2(im[i], re[i]) * steps;
            re[i] = r * Math.Cos(theta);
            im[i] = r * Math.Sin(theta);
        }

        Fft.Transform(re, im, inverse: true);
        double residue = 0;
        var composed = new double[width];
        for (int i = 0; i < width; i++)
        {
            if (re[i] < 0)
            {
                residue -= re[i];
            }
            else
            {
                composed[i] = re[i];
            }
        }

        double infiniteComposed = -LogMath.ExpMinusOne(steps * LogMath.LogOnePlus(-infinite));
        return new Composed(composed, steps * (kLo + 1), gridStep, infiniteComposed + residue);
    }

    /// <summary>
    /// The composed distribution: <c>mass[i]</c> at the loss (<c>firstIndex</c> + i) · step, plus <c>infinite</c>; with
    /// suffix sums of the mass and of mass · e^(−loss) over the positive losses, so that δ(ε) = Σ_{y &gt; ε} P(y) (1 − e^(ε − y))
    /// costs O(1).
    /// </summary>
    private sealed class Composed
    {
        private readonly long _firstIndex;
        private readonly double _step;
        private readonly double _infinite;
        private readonly long _firstPositive; // the first index whose loss is > 0
        private readonly double[] _tailMass; // Σ_{j ≥ i} mass[j], for i ≥ _firstPositive (offset by it)
        private readonly double[] _tailWeighted; // Σ_{j ≥ i} mass[j] e^(−loss_j)

        public Composed(double[] mass, long firstIndex, double step, double infinite)
        {
            _firstIndex = firstIndex;
            _step = step;
            _infinite = infinite;
            _firstPositive = Math.Clamp(1 - firstIndex, 0, mass.Length);
            int count = checked((int)(mass.Length - _firstPositive));
            _tailMass = new double[count + 1];
            _tailWeighted = new double[count + 1];
            for (int i = count - 1; i >= 0; i--)
            {
                long index = _firstPositive + i;
                double y = (firstIndex + index) * step;
                _tailMass[i] = _tailMass[i + 1] + mass[index];
                _tailWeighted[i] = _tailWeighted[i + 1] + (mass[index] * Math.Exp(-y));
            }

            MaxLoss = (firstIndex + mass.Length) * step;
        }

        public double MaxLoss { get; }

        public double DeltaAt(double epsilon)
        {
            // The first index whose loss y = (firstIndex + index) · step is > ε.
            long index = Math.Max(_firstPositive, (long)Math.Floor(epsilon / _step) + 1 - _firstIndex);
            while (index > _firstPositive && (_firstIndex + index - 1) * _step > epsilon)
            {
                index--;
            }

            int i = (int)Math.Min(_tailMass.Length - 1, index - _firstPositive);
            double sum = _tailMass[i] - (Math.Exp(epsilon) * _tailWeighted[i]);
            return Math.Min(1, _infinite + Math.Max(0, sum));
        }

        public double EpsilonFor(double delta)
        {
            if (_infinite >= delta)
            {
                return double.PositiveInfinity;
            }

            if (DeltaAt(0) <= delta)
            {
                return 0;
            }

            double lo = 0;
            double hi = Math.Max(_step, MaxLoss);
            for (int i = 0; i < 200 && hi - lo > 1e-10 * Math.Max(1, hi); i++)
            {
                double mid = 0.5 * (lo + hi);
                if (DeltaAt(mid) > delta)
                {
                    lo = mid;
                }
                else
                {
                    hi = mid;
                }
            }

            return hi;
        }
    }

    /// <summary>One step's privacy loss, as a function of the output x: log(P(x) / Q(x)) removing, its negative adding.</summary>
    private readonly struct StepLoss(double sigma, double q, bool remove)
    {
        private static readonly double Sqrt2 = Math.Sqrt(2);

        /// <summary>The loss's range when x is within <see cref="TailSigmas"/> σ of both means.</summary>
        public (double Min, double Max) Range()
        {
            double a = F(-TailSigmas * sigma);
            double b = F(1 + (TailSigmas * sigma));
            return remove ? (a, b) : (-b, -a);
        }

        /// <summary>Pr(loss ≤ y).</summary>
        public double AtMost(double y) => remove ? MixtureBelow(Inverse(y)) : GaussianAbove(Inverse(-y), 0);

        /// <summary>Pr(loss &gt; y).</summary>
        public double Above(double y) => remove ? MixtureAbove(Inverse(y)) : GaussianBelow(Inverse(-y), 0);

        /// <summary>log(1 − q + q e^{(2x − 1) / (2σ²)}), increasing in x.</summary>
        private double F(double x)
        {
            double z = ((2 * x) - 1) / (2 * sigma * sigma);
            return q == 1 ? z : LogMath.LogAdd(LogMath.LogOnePlus(-q), Math.Log(q) + z);
        }

        /// <summary>The x with F(x) = y (−∞ below F's infimum log(1 − q)).</summary>
        private double Inverse(double y)
        {
            if (q == 1)
            {
                return (sigma * sigma * y) + 0.5;
            }

            double inner = Math.Exp(y) - (1 - q);
            return inner <= 0 ? double.NegativeInfinity : (sigma * sigma * Math.Log(inner / q)) + 0.5;
        }

        private double MixtureBelow(double x) => ((1 - q) * GaussianBelow(x, 0)) + (q * GaussianBelow(x, 1));

        private double MixtureAbove(double x) => ((1 - q) * GaussianAbove(x, 0)) + (q * GaussianAbove(x, 1));

        private double GaussianBelow(double x, double mean) =>
            double.IsNegativeInfinity(x) ? 0 : 0.5 * LogMath.Erfc(-(x - mean) / (sigma * Sqrt2));

        private double GaussianAbove(double x, double mean) =>
            double.IsNegativeInfinity(x) ? 1 : 0.5 * LogMath.Erfc((x - mean) / (sigma * Sqrt2));
    }
}
