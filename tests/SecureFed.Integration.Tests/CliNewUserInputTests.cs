using SecureFed.Cli;

namespace SecureFed.Integration.Tests;

/// <summary>
/// Smaller defects of the session-31 new-user test: each is a usage error before any work, saying why, and .NET's
/// parameter names never reach a message.
/// </summary>
public sealed class CliNewUserInputTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-cli-newuser-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task PrivacyAudit_WarmStartCacheIsAFile_RefusedBeforeAnyTraining()
    {
        string cache = Path.Combine(_dir, "cache.bin");
        File.WriteAllText(cache, "kept");
        string output = Path.Combine(_dir, "out");

        var (code, err) = await Run("privacy", "audit", "--data", _dir, "--warm-start", _dir, "--warm-start-cache", cache, "--out", output);

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains($"--warm-start-cache {cache} is a file", err, StringComparison.Ordinal);
        Assert.Equal("kept", File.ReadAllText(cache));
        Assert.False(Directory.Exists(output));
    }

    [Theory]
    [InlineData("{0},{0}")]
    [InlineData("{0},{0}/")]
    [InlineData("{0},{1},{0}")]
    public async Task Experiment_ByCorpusWithTheSameCorpusTwice_Refused(string corpora)
    {
        string a = Path.Combine(_dir, "ncbi");
        string b = Path.Combine(_dir, "bc5");
        Directory.CreateDirectory(a);
        Directory.CreateDirectory(b);

        var (code, err) = await Run("experiment", "--split", "by-corpus", "--corpora", string.Format(System.Globalization.CultureInfo.InvariantCulture, corpora, a, b), "--out", Path.Combine(_dir, "out"));

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains("more than once", err, StringComparison.Ordinal);
        Assert.Contains(a, err, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("noise", "0.9999999")]
    [InlineData("noise", "0.5")]
    [InlineData("epsilon", "0.2")]
    public async Task Privacy_DeltaAboveOneTenth_RefusedWithTheReason(string command, string delta)
    {
        string[] args = command == "noise"
            ? ["privacy", "noise", "--epsilon", "8", "--delta", delta, "--sample-rate", "0.01", "--steps", "100"]
            : ["privacy", "epsilon", "--noise-multiplier", "1", "--delta", delta, "--sample-rate", "0.01", "--steps", "100"];

        var (code, err) = await Run(args);

        Assert.True(code == CliApp.ExitUsage, err);
        Assert.Contains($"--delta must be in (0, 0.1] (got {delta})", err, StringComparison.Ordinal);
        Assert.Contains("probability", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PrivacyNoise_UsualDelta_StillAnswers()
    {
        var (code, err) = await Run("privacy", "noise", "--epsilon", "8", "--delta", "1e-5", "--sample-rate", "0.01", "--steps", "100");

        Assert.True(code == CliApp.ExitOk, err);
    }

    [Fact]
    public void Plain_ArgumentExceptionsAndWrappedMessages_WithoutParameterDecorations()
    {
        var wrapped = new InvalidDataException($"'tls.crt' with 'tls.key' is not a PEM certificate with its matching private key: {new ArgumentException("The provided key does not match.", "privateKey").Message}");
        var outOfRange = new ArgumentOutOfRangeException("count", 7, "count must be at most 5.");

        Assert.Equal("'tls.crt' with 'tls.key' is not a PEM certificate with its matching private key: The provided key does not match.", ExceptionText.Plain(wrapped));
        Assert.Equal("count must be at most 5.", ExceptionText.Plain(outOfRange));
        Assert.Equal("plain (kept)", ExceptionText.Plain(new IOException("plain (kept)")));
    }

    private static async Task<(int Code, string Err)> Run(params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(args, stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(2));
        return (code, stderr.ToString());
    }
}
