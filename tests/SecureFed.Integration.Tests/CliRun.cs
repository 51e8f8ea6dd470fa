using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>Runs the <c>securefed</c> command line in process, capturing its exit code, standard output and standard error.</summary>
internal static class CliRun
{
    /// <summary>Runs <paramref name="args"/> (at most 3 minutes).</summary>
    public static async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return (code, stdout.ToString(), stderr.ToString());
    }
}
