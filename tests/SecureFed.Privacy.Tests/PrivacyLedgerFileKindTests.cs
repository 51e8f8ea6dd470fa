using SecureFed.Privacy;

namespace SecureFed.Privacy.Tests;

/// <summary>
/// What stands where the ledger belongs is not always a ledger file: a directory, a symbolic link to nothing, a huge
/// (sparse) file. Each is refused with a message naming the path and what is there, nothing is read into memory or
/// created, and the thing is left as it was.
/// </summary>
public sealed class PrivacyLedgerFileKindTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-ledger-kind-" + Guid.NewGuid().ToString("N"));

    public PrivacyLedgerFileKindTests() => Directory.CreateDirectory(_directory);

    private string LedgerPath => Path.Combine(_directory, "privacy-ledger.jsonl");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void Open_DirectoryInPlace_RefusesNamingADirectory()
    {
        Directory.CreateDirectory(LedgerPath);

        var open = Assert.Throws<InvalidDataException>(() => PrivacyLedger.Open(LedgerPath, "site-a"));
        var show = Assert.Throws<InvalidDataException>(() => PrivacyLedger.OpenReadOnly(LedgerPath));

        Assert.Contains($"'{LedgerPath}' is a directory", open.Message, StringComparison.Ordinal);
        Assert.Contains($"'{LedgerPath}' is a directory", show.Message, StringComparison.Ordinal);
        Assert.Equal([LedgerPath], Directory.GetFileSystemEntries(_directory));
    }

    [Fact]
    public void Open_SymbolicLinkToNothing_RefusesNamingTheTargetAndCreatesNothing()
    {
        string target = Path.Combine(_directory, "moved", "privacy-ledger.jsonl");
        File.CreateSymbolicLink(LedgerPath, target);

        var ex = Assert.Throws<InvalidDataException>(() => PrivacyLedger.Open(LedgerPath, "site-a"));

        Assert.Contains($"'{LedgerPath}' is a symbolic link to '{target}', which does not exist", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(target));
        Assert.Single(Directory.GetFileSystemEntries(_directory));
    }

    [Fact]
    public void Open_HugeSparseFile_RefusedBeforeReadingNamingItsSize()
    {
        const long size = 50L * 1024 * 1024 * 1024;
        using (var stream = new FileStream(LedgerPath, FileMode.CreateNew))
        {
            stream.SetLength(size); // sparse: no disk space used
        }

        var open = Assert.Throws<InvalidDataException>(() => PrivacyLedger.Open(LedgerPath, "site-a"));
        var show = Assert.Throws<InvalidDataException>(() => PrivacyLedger.OpenReadOnly(LedgerPath));

        foreach (InvalidDataException ex in new[] { open, show })
        {
            Assert.Contains($"Privacy ledger '{LedgerPath}' is {size} bytes, more than a ledger holds", ex.Message, StringComparison.Ordinal);
        }

        Assert.Equal(size, new FileInfo(LedgerPath).Length);
    }
}
