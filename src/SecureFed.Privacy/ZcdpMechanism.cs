using System.Globalization;

namespace SecureFed.Privacy;

/// <summary>A rho-zero-concentrated-DP release (RDP alpha * rho at every order).</summary>
public sealed record ZcdpMechanism : PlannedMechanism
{
    /// <summary>Creates the mechanism.</summary>
    /// <exception cref="ArgumentOutOfRangeException">rho negative or not finite.</exception>
    public ZcdpMechanism(double rho)
    {
        if (!double.IsFinite(rho) || rho < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(rho), rho, "rho (zCDP) must be finite and >= 0.");
        }

        Rho = rho;
    }

    /// <summary>rho.</summary>
    public double Rho { get; }

    /// <inheritdoc />
    public override string Describe() => string.Create(CultureInfo.InvariantCulture, $"zCDP rho={Rho:G6}");

    internal override void ApplyTo(RdpAccountant accountant) => accountant.AddZcdp(Rho);
}
