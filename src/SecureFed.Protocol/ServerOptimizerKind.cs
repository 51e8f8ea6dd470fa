namespace SecureFed.Protocol;

/// <summary>The aggregator's update rule (<see cref="ServerOptimizer"/>).</summary>
public enum ServerOptimizerKind
{
    /// <summary>FedAvg: the averaged update times the server learning rate.</summary>
    Average,

    /// <summary>FedAvgM: heavy-ball momentum on the averaged update.</summary>
    Momentum,

    /// <summary>FedAdam: Adam on the averaged update, with adaptivity τ.</summary>
    Adam,
}
