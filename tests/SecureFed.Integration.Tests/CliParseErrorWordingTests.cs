using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>A value that does not parse is named with what it should look like, not with a .NET type name.</summary>
public sealed class CliParseErrorWordingTests
{
    private static async Task<(int Code, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(1));
        return (code, stderr.ToString());
    }

    [Theory]
    [InlineData(new[] { "demo", "--rounds", "abc" }, "Cannot parse argument 'abc' for option '--rounds': expected a whole number from -2147483648 to 2147483647 (e.g. 10).")]
    [InlineData(new[] { "demo", "--rounds", "1e3" }, "Cannot parse argument '1e3' for option '--rounds': expected a whole number")]
    [InlineData(new[] { "demo", "--rounds", "99999999999" }, "from -2147483648 to 2147483647")]
    [InlineData(new[] { "demo", "--rounds", "-99999999999" }, "from -2147483648 to 2147483647")]
    [InlineData(new[] { "demo", "--epsilon", "eight" }, "Cannot parse argument 'eight' for option '--epsilon': expected a number, with a decimal point if any (e.g. 0.5 or 1e-5).")]
    public async Task ValueOfTheWrongKind_UsageErrorSaysWhatItShouldLookLike(string[] args, string expected)
    {
        // It said "... as expected type 'System.Int32'" (or 'System.Double').
        (int code, string err) = await Run(args);

        Assert.Equal(CliApp.ExitUsage, code);
        Assert.StartsWith("error: ", err, StringComparison.Ordinal);
        Assert.Contains(expected, err, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", err, StringComparison.Ordinal);
    }
}
