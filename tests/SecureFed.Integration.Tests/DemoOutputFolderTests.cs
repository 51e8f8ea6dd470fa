using SecureFed.Cli;
using SecureFed.Cli.Commands;
using SecureFed.Cli.Demo;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The demo's output folder (demo smoke check, session 48): two runs given the same --out both passed the start-up
/// "new or empty" check and the second failed late naming an inner folder; two runs started in the same second got the
/// same default name. A run now reserves its folder with a file only one can create, and the default name gets a suffix
/// when a folder of that name exists.
/// </summary>
public sealed class DemoOutputFolderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-demo-folder-").FullName;

    [Fact]
    public void ReserveOutputDirectory_TwiceTheSameFolder_SecondRefusedNamingTheOtherRun()
    {
        string output = Path.Combine(_dir, "out");

        DemoRunner.ReserveOutputDirectory(output);
        var ex = Assert.Throws<UsageException>(() => DemoRunner.ReserveOutputDirectory(output));

        Assert.Contains($"--out {output}: another demo run is already writing there", ex.Message, StringComparison.Ordinal);
        Assert.Equal([DemoRunner.ReservationFile], Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName));
    }

    [Fact]
    public void ReserveOutputDirectory_FolderFilledSinceTheStartUpCheck_RefusedAndLeftAsItWas()
    {
        string output = Path.Combine(_dir, "filled");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "keep.txt"), "earlier results");

        var ex = Assert.Throws<UsageException>(() => DemoRunner.ReserveOutputDirectory(output));

        Assert.Contains("is not empty any more", ex.Message, StringComparison.Ordinal);
        Assert.Equal(["keep.txt"], Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName));
        Assert.Equal("earlier results", File.ReadAllText(Path.Combine(output, "keep.txt")));
    }

    [Fact]
    public void DefaultOutputDirectory_NameTakenInTheSameSecond_NextFreeSuffix()
    {
        var now = new DateTime(2026, 12, 5, 18, 52, 10, DateTimeKind.Utc);
        string first = DemoCommand.DefaultOutputDirectory(_dir, now);
        Assert.Equal(Path.Combine(_dir, "securefed-demo-20261205-185210"), first);

        Directory.CreateDirectory(first);
        Assert.Equal(first + "-2", DemoCommand.DefaultOutputDirectory(_dir, now));
        Directory.CreateDirectory(first + "-2");
        Assert.Equal(first + "-3", DemoCommand.DefaultOutputDirectory(_dir, now));
        Assert.Equal(Path.Combine(_dir, "securefed-demo-20261205-185211"), DemoCommand.DefaultOutputDirectory(_dir, now.AddSeconds(1)));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
