using SecureFed.Cli.Demo;

namespace SecureFed.Integration.Tests;

/// <summary>The line a demo stopped by Ctrl-C prints about its output folder.</summary>
public sealed class DemoCancelledTextTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-demo-cancel-").FullName;

    [Fact]
    public void CancelledFolderText_FusedModelOnly_NamesWhatIsAndIsNotWritten()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "fused-model"));

        string text = DemoRunner.CancelledFolderText(_dir);

        Assert.Contains("incomplete", text, StringComparison.Ordinal);
        Assert.Contains("it holds fused-model", text, StringComparison.Ordinal);
        Assert.Contains("not written: rounds.png, audit-report.html", text, StringComparison.Ordinal);
    }

    [Fact]
    public void CancelledFolderText_NoFolder_SaysNothingWasWritten()
        => Assert.Equal("nothing was written.", DemoRunner.CancelledFolderText(Path.Combine(_dir, "absent")));

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
