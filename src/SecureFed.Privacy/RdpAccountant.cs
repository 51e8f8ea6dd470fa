namespace SecureFed.Privacy;

/// <summary>
/// Composes Rényi-DP guarantees of heterogeneous mechanisms (subsampled Gaussian steps with different q and sigma,
/// zero-concentrated DP releases, arbitrary RDP curves) over a fixed list of orders and converts the total to
/// (epsilon, delta). Not thread-safe; callers that share an instance must lock (the <see cref="PrivacyLedger"/> does).
/// </summary>
public sealed class RdpAccountant
{
    private readonly double[] _orders;
    private readonly double[] _rdp;

    /// <summary>Creates an empty accountant.</summary>
    /// <param name="orders">The RDP orders (all &gt; 1); <see cref="RdpOrders.Opacus"/> when null.</param>
    /// <exception cref="ArgumentException">The list is empty or contains an order that is not finite and &gt; 1.</exception>
    public RdpAccountant(IReadOnlyList<double>? orders = null)
    {
        orders ??= RdpOrders.Opacus;
        if (orders.Count == 0)
        {
            throw new ArgumentException("At least one RDP order is required.", nameof(orders));
        }

        _orders = new double[orders.Count];
        for (int i = 0; i < orders.Count; i++)
        {
            double a = orders[i];
            if (!double.IsFinite(a) || a <= 1)
            {
                throw new ArgumentException($"RDP order #{i} is {a}; every order must be finite and > 1.", nameof(orders));
            }

            _orders[i] = a;
        }

        _rdp = new double[_orders.Length];
        Orders = Array.AsReadOnly(_orders);
    }

    private RdpAccountant(RdpAccountant source)
    {
        _orders = source._orders;
        _rdp = (double[])source._rdp.Clone();
        Orders = source.Orders;
    }

    /// <summary>The RDP orders this accountant tracks.</summary>
    public IReadOnlyList<double> Orders { get; }

    /// <summary>The accumulated RDP epsilon at each order (same indexing as <see cref="Orders"/>).</summary>
    public IReadOnlyList<double> Rdp => Array.AsReadOnly(_rdp);

    /// <summary>Adds <paramref name="steps"/> steps of the Poisson-subsampled Gaussian mechanism.</summary>
    /// <exception cref="ArgumentOutOfRangeException">q outside (0, 1], sigma not &gt; 0, or steps negative.</exception>
    public void AddSubsampledGaussian(double sampleRate, double noiseMultiplier, long steps)
    {
        ValidateSubsampledGaussian(sampleRate, noiseMultiplier, steps);
        if (steps == 0)
        {
            return;
        }

        for (int i = 0; i < _orders.Length; i++)
        {
            _rdp[i] += steps * SubsampledGaussianRdp.Compute(sampleRate, noiseMultiplier, _orders[i]);
        }
    }

    /// <summary>Adds a rho-zCDP release, i.e. RDP <c>alpha * rho</c> at every order (Bun &amp; Steinke 2016).</summary>
    /// <exception cref="ArgumentOutOfRangeException">rho negative or not finite.</exception>
    public void AddZcdp(double rho)
    {
        if (!double.IsFinite(rho) || rho < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(rho), rho, "rho (zCDP) must be finite and >= 0.");
        }

        for (int i = 0; i < _orders.Length; i++)
        {
            _rdp[i] += _orders[i] * rho;
        }
    }

    /// <summary>Adds an arbitrary RDP curve <paramref name="rdpAtOrder"/>, composed <paramref name="count"/> times.</summary>
    /// <exception cref="ArgumentException">The curve returns a negative or NaN value.</exception>
    public void AddRdp(Func<double, double> rdpAtOrder, long count = 1)
    {
        ArgumentNullException.ThrowIfNull(rdpAtOrder);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var add = new double[_orders.Length];
        for (int i = 0; i < _orders.Length; i++)
        {
            double r = rdpAtOrder(_orders[i]);
            if (double.IsNaN(r) || r < 0)
            {
                throw new ArgumentException($"The RDP curve returned {r} at order {_orders[i]}; RDP must be >= 0.", nameof(rdpAtOrder));
            }

            add[i] = count * r;
        }

        for (int i = 0; i < _orders.Length; i++)
        {
            _rdp[i] += add[i];
        }
    }

    /// <summary>
    /// Converts the accumulated RDP to epsilon at <paramref name="delta"/>, minimising over the orders.
    /// At any order whose RDP is below the KL bound (<c>delta^2 + expm1(-rdp) &gt; 0</c>, dp_accounting) epsilon is 0.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">delta not in (0, 1).</exception>
    public PrivacySpent GetPrivacySpent(double delta, RdpConversion conversion = RdpConversion.Improved)
    {
        ValidateDelta(delta);
        return Convert(_orders, _rdp, delta, conversion);
    }

    /// <summary>An independent copy (for "what if" planning).</summary>
    public RdpAccountant Clone() => new(this);

    internal static PrivacySpent Convert(double[] orders, double[] rdp, double delta, RdpConversion conversion)
    {
        double logDelta = Math.Log(delta);
        double best = double.NaN;
        double bestOrder = double.NaN;
        for (int i = 0; i < orders.Length; i++)
        {
            double a = orders[i];
            double r = rdp[i];
            double eps;
            if ((delta * delta) + Internal.LogMath.ExpMinusOne(-r) > 0)
            {
                eps = 0;
            }
            else if (conversion == RdpConversion.Classic)
            {
                eps = r - (logDelta / (a - 1));
            }
            else
            {
                eps = r - ((logDelta + Math.Log(a)) / (a - 1)) + Math.Log((a - 1) / a);
            }

            if (!double.IsNaN(eps) && (double.IsNaN(best) || eps < best))
            {
                best = eps;
                bestOrder = a;
            }
        }

        return double.IsNaN(best) ? new PrivacySpent(double.PositiveInfinity, double.NaN) : new PrivacySpent(Math.Max(0, best), bestOrder);
    }

    internal static void ValidateDelta(double delta)
    {
        if (double.IsNaN(delta) || delta <= 0 || delta >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(delta), delta, "delta must be in (0, 1).");
        }
    }

    internal static void ValidateSubsampledGaussian(double sampleRate, double noiseMultiplier, long steps)
    {
        if (double.IsNaN(sampleRate) || sampleRate <= 0 || sampleRate > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "The sampling rate q must be in (0, 1].");
        }

        if (!double.IsFinite(noiseMultiplier) || noiseMultiplier <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(noiseMultiplier), noiseMultiplier, "The noise multiplier sigma must be finite and > 0.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(steps);
    }
}
