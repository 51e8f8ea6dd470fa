using Microsoft.Extensions.Logging;

namespace SecureFed.Cli.Demo;

/// <summary>One category's logger of a <see cref="FileLoggerProvider"/>.</summary>
internal sealed class FileLogger(FileLoggerProvider provider, string category) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        if (IsEnabled(logLevel))
        {
            provider.Write(category, logLevel, formatter(state, exception), exception);
        }
    }
}
