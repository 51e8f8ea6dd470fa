using System.Text.RegularExpressions;

namespace SecureFed.Cli;

/// <summary>An exception's message as the CLI prints it: without .NET's argument decorations, which name a C# parameter the user never typed.</summary>
internal static partial class ExceptionText
{
    /// <summary>
    /// <paramref name="exception"/>'s message without the <c>(Parameter 'x')</c> that <see cref="ArgumentException"/>
    /// appends (also when a wrapping exception quotes it) and without the <c>Actual value was …</c> line of
    /// <see cref="ArgumentOutOfRangeException"/>.
    /// </summary>
    public static string Plain(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        string message = ParameterSuffix().Replace(exception.Message, string.Empty);
        return ActualValueLine().Replace(message, string.Empty);
    }

    [GeneratedRegex(@" \(Parameter '[^'\r\n]*'\)")]
    private static partial Regex ParameterSuffix();

    [GeneratedRegex(@"\r?\nActual value was [^\r\n]*")]
    private static partial Regex ActualValueLine();
}
