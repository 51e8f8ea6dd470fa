using SecureFed.Privacy;
using SecureFed.Testing;

using Xunit.Abstractions;

namespace SecureFed.Privacy.Tests;

/// <summary>
/// What stands where the ledger belongs is not always a ledger file: a directory, a symbolic link to nothing, a huge
/// (sparse) file, a named pipe. Each is refused with a message naming the path and what is there, nothing is read into memory or
/// created, and the thing is left as it was.
/// </summary>
public sealed class PrivacyLedgerFileKindTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-ledger-kind-" + Guid.NewGuid().ToString("N"));
    private readonly ITestOutputHelper _output;

    public PrivacyLedgerFileKindTests(ITestOutputHelper output)
    {
        _output = output;
        Directory.CreateDirectory(_directory);
    }

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

    /// <summary>
    /// A named pipe where the ledger belongs (directly or behind a link): File.Exists is true for it, and opening it to read
    /// waited for a writer forever, so the agent's and aggregator's start-up, 'privacy ledger show' and 'ledger repair' hung
    /// (review60). Now each refuses at once, naming the path and what is there, and the pipe is left as it was.
    /// </summary>
    [Fact]
    public void Open_NamedPipeInPlace_RefusedPromptlyNamingAPipe()
    {
        string? fifo = NamedPipe.Make(Path.Combine(_directory, "pipe"), _output);
        if (fifo is null)
        {
            return;
        }

        File.CreateSymbolicLink(LedgerPath, fifo);
        foreach (string path in new[] { fifo, LedgerPath })
        {
            Exception open = NamedPipe.ThrownPromptly(fifo, () => PrivacyLedger.Open(path, "site-a"));
            Exception show = NamedPipe.ThrownPromptly(fifo, () => PrivacyLedger.OpenReadOnly(path));
            Exception repair = NamedPipe.ThrownPromptly(fifo, () => PrivacyLedger.RepairTornTail(path, apply: true, writerLockPath: null));
            foreach (Exception ex in new[] { open, show, repair })
            {
                Assert.IsType<InvalidDataException>(ex);
                Assert.Contains($"Privacy ledger '{path}'", ex.Message, StringComparison.Ordinal);
                Assert.Contains("is a named pipe (FIFO), not a ledger file", ex.Message, StringComparison.Ordinal);
            }
        }

        Assert.Equal([fifo, LedgerPath], Directory.GetFileSystemEntries(_directory).Order(StringComparer.Ordinal));
    }
}
