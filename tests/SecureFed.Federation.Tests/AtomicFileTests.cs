namespace SecureFed.Federation.Tests;

public sealed class AtomicFileTests
{
    [Fact]
    public void WriteAllText_NewAndExistingFile_ReplacesContentAndLeavesNoTempFiles()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("a.json");

        AtomicFile.WriteAllText(path, "one");
        AtomicFile.WriteAllText(path, "two");

        Assert.Equal("two", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void CreateNew_NewFile_WrittenThenAnExistingOneRefusedUntouchedAndNoTempFilesLeft()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("ledger.torn-1");

        AtomicFile.CreateNew(path, [1, 2, 3], AtomicFile.PublicFileMode);
        var ex = Assert.Throws<IOException>(() => AtomicFile.CreateNew(path, [9], AtomicFile.PublicFileMode));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void WriteAllBytes_SecretMode_FileIsOwnerOnly()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // Unix file modes only.
        }

        using var dir = new TempDirectory();
        string path = dir.Combine("k");

        AtomicFile.WriteAllBytes(path, [1, 2, 3], AtomicFile.SecretFileMode);

        Assert.Equal(AtomicFile.SecretFileMode, File.GetUnixFileMode(path));
        Assert.Equal([1, 2, 3], File.ReadAllBytes(path));
    }

    [Fact]
    public void Write_FaultBeforeRename_OldFileIntactAndTempRemoved()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("state.json");
        File.WriteAllText(path, "old");

        var ex = Assert.Throws<IOException>(() => AtomicFile.Write(
            path,
            "new"u8,
            AtomicFile.PublicFileMode,
            beforeRename: temp =>
            {
                Assert.Equal("new", File.ReadAllText(temp));
                throw new IOException("injected fault");
            }));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains("injected fault", ex.Message, StringComparison.Ordinal);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void WriteAllText_TargetIsADirectory_IOExceptionAndDirectoryUntouched()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("taken");
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "inner.txt"), "keep");

        var ex = Assert.Throws<IOException>(() => AtomicFile.WriteAllText(path, "new"));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Equal("keep", File.ReadAllText(Path.Combine(path, "inner.txt")));
        Assert.Equal([path], Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void WriteAllText_MissingDirectory_IOExceptionNamingIt()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("missing", "a.json");

        var ex = Assert.Throws<IOException>(() => AtomicFile.WriteAllText(path, "x"));

        Assert.Contains(dir.Combine("missing"), ex.Message, StringComparison.Ordinal);
    }
}
