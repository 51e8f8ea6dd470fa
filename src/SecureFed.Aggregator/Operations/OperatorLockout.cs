namespace SecureFed.Aggregator.Operations;

/// <summary>A lockout of token attempts on the admin listener.</summary>
/// <param name="Global">True when every address is locked out (the global count), false for one address.</param>
/// <param name="Remaining">Time until token attempts are accepted again.</param>
/// <param name="Limit">The number of wrong tokens within <see cref="OperatorLoginLimiter.Window"/> that locked it.</param>
/// <param name="Started">True when the failure just counted started it.</param>
/// <param name="Checking">
/// Not a lockout yet: the attempts whose tokens are being checked at this moment, which with the failures already counted
/// reach <paramref name="Limit"/> (0 for a lockout in force).
/// </param>
internal sealed record OperatorLockout(bool Global, TimeSpan Remaining, int Limit, bool Started, int Checking = 0)
{
    /// <summary>The <c>Retry-After</c> value: whole seconds, rounded up.</summary>
    public long RetryAfterSeconds => (long)Math.Ceiling(Remaining.TotalSeconds);

    /// <summary>What the refused client is told.</summary>
    public string Message => Checking > 0
        ? $"Too many operator token attempts {(Global ? "from all addresses" : "from this address")} at once: with the {Checking} being checked now, the wrong tokens of the last {OperatorLoginLimiter.Window.TotalMinutes:0} minutes may reach the limit of {Limit}, so this one is refused unchecked, the right token too; try again in {RetryAfterSeconds} s. A browser already logged in keeps its session."
        : Global
        ? $"Too many wrong operator tokens from all addresses ({Limit} within {OperatorLoginLimiter.Window.TotalMinutes:0} minutes): every token attempt is refused, the right token too, for {RetryAfterSeconds} s more. A browser already logged in keeps its session."
        : $"Too many wrong operator tokens from this address ({Limit} within {OperatorLoginLimiter.Window.TotalMinutes:0} minutes): its token attempts are refused, the right token too, for {RetryAfterSeconds} s more. A browser already logged in keeps its session.";
}
