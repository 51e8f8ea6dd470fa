using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace SecureFed.Aggregator.Operations;

/// <summary>
/// Browser sessions of the operator console: after the operator token was presented once (login form), the browser
/// holds a random session id in an HttpOnly, SameSite=Strict cookie. Sessions expire after <see cref="Lifetime"/>;
/// at most <see cref="MaxSessions"/> live at once (the oldest goes first). Kept in memory: a restart logs everyone out.
/// </summary>
internal sealed class OperatorSessions(TimeProvider time)
{
    public const string CookieName = "securefed_operator";
    public const int MaxSessions = 64;
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(12);

    private readonly ConcurrentDictionary<string, DateTimeOffset> _sessions = new(StringComparer.Ordinal);

    public string Create()
    {
        DateTimeOffset now = time.GetUtcNow();
        foreach (KeyValuePair<string, DateTimeOffset> expired in _sessions.Where(s => s.Value <= now))
        {
            _sessions.TryRemove(expired);
        }

        while (_sessions.Count >= MaxSessions && _sessions.OrderBy(s => s.Value).FirstOrDefault() is { Key: not null } oldest)
        {
            _sessions.TryRemove(oldest);
        }

        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _sessions[id] = now + Lifetime;
        return id;
    }

    public bool IsValid(string? id)
        => id is { Length: 64 } && _sessions.TryGetValue(id, out DateTimeOffset expires) && expires > time.GetUtcNow();

    public void End(string? id)
    {
        if (id is not null)
        {
            _sessions.TryRemove(id, out _);
        }
    }
}
