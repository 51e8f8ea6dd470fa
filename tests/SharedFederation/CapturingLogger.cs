using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace SecureFed.Testing;

/// <summary>
/// Keeps every formatted log line (level, message and exception message) so a test can assert what was logged; also a
/// provider, to capture a host's logs.
/// </summary>
internal sealed class CapturingLogger : ILogger, ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, string Message)> Lines { get; } = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        Lines.Enqueue((logLevel, exception is null ? formatter(state, exception) : formatter(state, exception) + " | " + exception.Message));
    }

    public ILogger CreateLogger(string categoryName) => this;

    public void Dispose()
    {
    }
}
