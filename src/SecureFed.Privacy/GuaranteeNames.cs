namespace SecureFed.Privacy;

/// <summary>The names of the guarantees in ledger files, audit events and reports.</summary>
public static class GuaranteeNames
{
    /// <summary>"record", "site" or "record-collusion".</summary>
    public static string Of(Guarantee guarantee) => guarantee switch
    {
        Guarantee.Record => "record",
        Guarantee.Site => "site",
        Guarantee.RecordCollusion => "record-collusion",
        _ => throw new ArgumentOutOfRangeException(nameof(guarantee), guarantee, "Unknown guarantee."),
    };

    /// <summary>Parses a name written by <see cref="Of"/>.</summary>
    public static bool TryParse(string? name, out Guarantee guarantee)
    {
        switch (name)
        {
            case "record":
                guarantee = Guarantee.Record;
                return true;
            case "site":
                guarantee = Guarantee.Site;
                return true;
            case "record-collusion":
                guarantee = Guarantee.RecordCollusion;
                return true;
            default:
                guarantee = default;
                return false;
        }
    }
}
