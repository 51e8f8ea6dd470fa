using System.Collections.ObjectModel;

namespace SecureFed.Privacy;

/// <summary>The RDP order lists of the reference implementations.</summary>
public static class RdpOrders
{
    /// <summary>
    /// Opacus <c>RDPAccountant.DEFAULT_ALPHAS</c>: <c>[1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))</c>,
    /// i.e. 1.1, 1.2, ..., 10.9, 12, 13, ..., 63 (150 orders).
    /// </summary>
    public static IReadOnlyList<double> Opacus { get; } = BuildOpacus();

    /// <summary>
    /// TF-Privacy <c>compute_dp_sgd_privacy_lib</c>: <c>[1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5] +
    /// list(range(5, 64)) + [128, 256, 512]</c> (72 orders).
    /// </summary>
    public static IReadOnlyList<double> TensorFlowPrivacy { get; } = BuildTensorFlowPrivacy();

    /// <summary>Parses an order-list name: <c>opacus</c> or <c>tfp</c> (case-insensitive).</summary>
    /// <exception cref="ArgumentException">The name is not one of the known lists.</exception>
    public static IReadOnlyList<double> Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToUpperInvariant() switch
        {
            "OPACUS" => Opacus,
            "TFP" or "TF-PRIVACY" or "TENSORFLOWPRIVACY" => TensorFlowPrivacy,
            _ => throw new ArgumentException($"Unknown RDP order list '{name}'; expected 'opacus' or 'tfp'.", nameof(name)),
        };
    }

    private static ReadOnlyCollection<double> BuildOpacus()
    {
        var orders = new List<double>(150);
        for (int x = 1; x < 100; x++)
        {
            orders.Add(1 + (x / 10.0));
        }

        for (int a = 12; a < 64; a++)
        {
            orders.Add(a);
        }

        return orders.AsReadOnly();
    }

    private static ReadOnlyCollection<double> BuildTensorFlowPrivacy()
    {
        var orders = new List<double> { 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5 };
        for (int a = 5; a < 64; a++)
        {
            orders.Add(a);
        }

        orders.AddRange([128, 256, 512]);
        return orders.AsReadOnly();
    }
}
