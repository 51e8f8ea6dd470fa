using SecureFed.Testing;
using Xunit.Abstractions;

namespace SecureFed.Federation.Tests;

/// <summary>
/// The manifest and key loaders read regular files of bounded size only: a named pipe hung the process forever in
/// <c>open</c> (SIGTERM included) and a huge file ended in "Out of memory". Every load runs on a task with a timeout,
/// so a hang fails the test instead of the run; a pipe left waiting is then opened for writing and closed to free it.
/// </summary>
public sealed class LoaderFileTypeTests(ITestOutputHelper output) : IDisposable
{

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Load_ManifestIsANamedPipe_RefusedPromptlyNamingItAndWhatItIs()
    {
        string? fifo = NamedPipe.Make(_dir.Combine("federation.json"), output);
        if (fifo is null)
        {
            return;
        }

        Exception ex = NamedPipe.ThrownPromptly(fifo, () => FederationManifest.Load(fifo));

        IOException io = Assert.IsAssignableFrom<IOException>(ex);
        Assert.StartsWith($"Federation manifest '{fifo}' is a named pipe (FIFO), not a regular file", io.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_IdentityKeyIsALinkToANamedPipe_RefusedPromptlyNamingTheLinkAndItsTarget()
    {
        string? fifo = NamedPipe.Make(_dir.Combine("pipe"), output);
        if (fifo is null)
        {
            return;
        }

        string link = _dir.Combine("identity.key");
        File.CreateSymbolicLink(link, fifo);

        Exception ex = NamedPipe.ThrownPromptly(fifo, () => IdentityKeyFile.Read(link));

        IOException io = Assert.IsAssignableFrom<IOException>(ex);
        Assert.Contains($"Identity key '{link}' (a link to '{fifo}') is a named pipe (FIFO), not a regular file", io.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ManifestOver16MiB_InvalidDataExceptionNamingTheFileAndItsSize()
    {
        string path = _dir.Combine("federation.json");
        using (FileStream sparse = File.Create(path))
        {
            sparse.SetLength((16L * 1024 * 1024) + 1);
        }

        Exception ex = NamedPipe.ThrownPromptly(null, () => FederationManifest.Load(path));

        InvalidDataException invalid = Assert.IsType<InvalidDataException>(ex);
        Assert.Contains($"Federation manifest '{path}' is 16,777,217 bytes; at most 16,777,216 bytes are read", invalid.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_IdentityKeyOf1MiB_InvalidDataExceptionNamingTheFileAndItsSize()
    {
        string path = _dir.Combine("identity.key");
        using (FileStream sparse = File.Create(path))
        {
            sparse.SetLength(1024 * 1024);
        }

        Exception ex = NamedPipe.ThrownPromptly(null, () => IdentityKeyFile.Read(path));

        InvalidDataException invalid = Assert.IsType<InvalidDataException>(ex);
        Assert.Contains($"Identity key '{path}' is 1,048,576 bytes; at most 65,536 bytes are read", invalid.Message, StringComparison.Ordinal);
    }
}
