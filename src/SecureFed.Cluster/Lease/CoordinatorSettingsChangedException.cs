using SecureFed.Aggregator;

namespace SecureFed.Cluster.Lease;

/// <summary>
/// A coordinator-eligible silo refused the coordinator's role: its round-affecting settings (<see cref="RoundSettings"/>)
/// differ from those the federation's last coordinator saved, and it was not told to accept changed settings
/// (<see cref="AggregatorClusterOptions.AcceptChangedSettings"/>). The message names every differing setting with both
/// values; nothing of the saved state was read into the data directory or changed.
/// </summary>
public sealed class CoordinatorSettingsChangedException : InvalidOperationException
{
    /// <summary>Creates the exception for <paramref name="changes"/> against the settings saved by <paramref name="savedEpoch"/>.</summary>
    public CoordinatorSettingsChangedException(string federation, long savedEpoch, IReadOnlyList<RoundSettingChange> changes)
        : base(Describe(federation, savedEpoch, changes))
    {
        SavedEpoch = savedEpoch;
        Changes = changes;
    }

    /// <summary>Creates the exception (no changes named).</summary>
    public CoordinatorSettingsChangedException()
        : this("this silo's coordinator settings differ from the saved ones")
    {
    }

    /// <summary>Creates the exception with a reason (no changes named).</summary>
    public CoordinatorSettingsChangedException(string message)
        : base(message)
    {
        Changes = [];
    }

    /// <summary>Creates the exception with a reason and its cause (no changes named).</summary>
    public CoordinatorSettingsChangedException(string message, Exception innerException)
        : base(message, innerException)
    {
        Changes = [];
    }

    /// <summary>The lease epoch that saved the settings this silo's differ from.</summary>
    public long SavedEpoch { get; }

    /// <summary>Every differing setting, sorted by name.</summary>
    public IReadOnlyList<RoundSettingChange> Changes { get; }

    /// <summary>The refusal's text (also logged).</summary>
    public static string Describe(string federation, long savedEpoch, IReadOnlyList<RoundSettingChange> changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        return FormattableString.Invariant(
            $"this silo's coordinator settings differ from those saved by lease epoch {savedEpoch} of federation '{federation}': {RoundSettings.Describe(changes)}; ")
            + $"it does not take over the coordinator's role. Give it the saved settings, or set {AggregatorClusterOptions.Section}:AcceptChangedSettings to true on it to take over with its own (the changes are written to the audit log)";
    }
}
