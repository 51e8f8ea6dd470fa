namespace SecureFed.Cluster.Bench;

/// <summary>
/// The benches' <c>--connection-string</c> checked before anything runs: blank, or not in PostgreSQL's key=value form,
/// it is refused naming the option (Npgsql's own message named neither the option nor the value's problem clearly, and
/// the cluster bench ran its single-process round first; CLI crash hunt, session 56).
/// </summary>
internal static class BenchConnectionString
{
    /// <summary>The problem with <paramref name="value"/>, or null when it is absent (a throw-away server) or well formed.</summary>
    public static string? Problem(string? value)
    {
        if (value is null)
        {
            return null;
        }

        if (string.IsNullOrWhiteSpace(value))
        {
            return "--connection-string is blank: give a PostgreSQL connection string (e.g. \"Host=db;Database=securefed;Username=securefed\"), or leave the option out for a throw-away server.";
        }

        try
        {
            _ = new Npgsql.NpgsqlConnectionStringBuilder(value);
            return null;
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or KeyNotFoundException)
        {
            return $"--connection-string is not a PostgreSQL connection string of key=value pairs separated by ';' ({ex.Message}).";
        }
    }
}
