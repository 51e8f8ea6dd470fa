using Microsoft.Extensions.Time.Testing;

namespace SecureFed.Federation.Tests;

/// <summary>
/// <see cref="FederationProvisioner.AddSite"/>: a hospital admitted after the federation was provisioned gets a kit the
/// same CA signs, trusted under the new manifest only; a refused name or folder changes nothing.
/// </summary>
public sealed class AddSiteTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _root;

    public AddSiteTests()
    {
        _root = _temp.Combine("fed");
        FederationProvisioner.Provision(new ProvisionRequest(_root, "addsite", ["site-a", "site-b"], "127.0.0.1"));
    }

    public void Dispose() => _temp.Dispose();

    private string ManifestPath => Path.Combine(_root, KitFiles.Manifest);

    [Fact]
    public void AddSite_NewSite_KitLoadsAndIsTrustedUnderTheNewManifestOnlyOthersUnchanged()
    {
        FederationManifest before = FederationManifest.Load(ManifestPath);

        AddSiteResult result = FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30));

        Assert.Equal(Path.Combine(_root, KitFiles.SitesDirectory, "site-c"), result.KitDirectory);
        Assert.All(result.Files, f => Assert.True(File.Exists(f), f));
        using PartyKit kit = PartyKit.Load(result.KitDirectory);
        Assert.Equal("site-c", kit.Name);
        FederationManifest after = FederationManifest.Load(ManifestPath);
        Assert.Equal(["site-a", "site-b", "site-c"], after.Sites.Select(s => s.Name));
        Assert.Equal(before.Sites, after.Sites.Where(s => s.Name != "site-c"), new PartyComparer());
        Assert.Equal(before.Aggregator, after.Aggregator, new PartyComparer());
        Assert.Equal(before.CaCertificate.RawData, after.CaCertificate.RawData);

        Assert.Equal("site-c", PeerTrust.IdentifySite(kit.TlsCertificate, after, out string? error));
        Assert.Null(error);
        Assert.Null(PeerTrust.IdentifySite(kit.TlsCertificate, before, out string? refused)); // the old manifest does not know it
        Assert.NotNull(refused);

        // Every other party's kit still loads with the new manifest copied in (the distribution step the command names).
        foreach (string party in new[] { Path.Combine(_root, KitFiles.AggregatorDirectory), Path.Combine(_root, KitFiles.SitesDirectory, "site-a") })
        {
            File.Copy(ManifestPath, Path.Combine(party, KitFiles.Manifest), overwrite: true);
            using PartyKit other = PartyKit.Load(party);
            Assert.True(other.Manifest.TryGetSite("site-c", out _));
        }

        Assert.Empty(Directory.GetDirectories(Path.Combine(_root, KitFiles.SitesDirectory), ".*"));
    }

    [Fact]
    public void Revoke_ManifestIsASymbolicLink_TargetRewrittenLinkKeptSameLock()
    {
        // federation.json kept elsewhere and linked in (relative target), as an operator's configuration folder might.
        string target = _temp.Combine("shared", "federation.json");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Move(ManifestPath, target);
        File.CreateSymbolicLink(ManifestPath, Path.Combine("..", "shared", "federation.json"));

        // What 'provision revoke' does: lock, load, revoke, save, all through the link.
        using (ManifestLock.Acquire(ManifestPath, "test revoke"))
        {
            FederationManifest.Load(ManifestPath).WithRevoked("site-a").Save(ManifestPath);
        }

        Assert.Equal(ManifestLock.PathFor(target), ManifestLock.PathFor(ManifestPath));
        Assert.Equal(Path.Combine("..", "shared", "federation.json"), new FileInfo(ManifestPath).LinkTarget);
        Assert.True(FederationManifest.Load(target).IsRevoked("site-a"));
        Assert.Empty(Directory.GetFiles(_root, ".federation.json*"));
    }

    /// <summary>
    /// A relative link inside a linked folder: etc/securefed → ../opt/config, and opt/config/federation.json →
    /// ../kits/federation.json. The kernel follows ".." from the real folder (opt), so the file is opt/kits/federation.json;
    /// .NET's ResolveLinkTarget folded it against the folder as written and gave etc/kits/federation.json (diff review).
    /// </summary>
    [Fact]
    public void Revoke_RelativeLinkInsideALinkedFolder_TheFileTheKernelOpensIsRewritten()
    {
        string target = _temp.Combine("opt", "kits", "federation.json");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        Directory.CreateDirectory(_temp.Combine("opt", "config"));
        Directory.CreateDirectory(_temp.Combine("etc", "kits")); // where the folded path would lead
        File.Move(ManifestPath, target);
        File.CreateSymbolicLink(_temp.Combine("opt", "config", "federation.json"), Path.Combine("..", "kits", "federation.json"));
        Directory.CreateSymbolicLink(_temp.Combine("etc", "securefed"), Path.Combine("..", "opt", "config"));
        string viaLinks = _temp.Combine("etc", "securefed", "federation.json");

        Assert.Equal(Path.GetFullPath(target), AtomicFile.FinalTarget(viaLinks));
        using (ManifestLock.Acquire(viaLinks, "test revoke"))
        {
            FederationManifest.Load(viaLinks).WithRevoked("site-a").Save(viaLinks);
        }

        Assert.True(FederationManifest.Load(target).IsRevoked("site-a"));
        Assert.Empty(Directory.GetFiles(_temp.Combine("etc", "kits")));
    }

    [Fact]
    public void AddSite_ManifestIsASymbolicLink_TargetGetsTheSiteLinkKept()
    {
        string target = _temp.Combine("shared", "federation.json");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.Move(ManifestPath, target);
        File.CreateSymbolicLink(ManifestPath, target);

        FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30));

        Assert.Equal(target, new FileInfo(ManifestPath).LinkTarget);
        Assert.True(FederationManifest.Load(target).TryGetSite("site-c", out _));
    }

    [Fact]
    public void AddSite_FolderFlushFailsAfterTheManifestIsRenamed_SiteAddedKitKeptFlushReported()
    {
        // The flush of the folder after federation.json was renamed into place failed: add-site deleted the new kit and said
        // "federation.json is unchanged", while federation.json on disk already listed the site.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        string folder = Path.GetDirectoryName(AtomicFile.FinalTarget(ManifestPath))!;
        AddSiteResult result;
        AtomicFile.DirectoryFsyncFault = directory => directory == folder ? 5 /* EIO */ : 0;
        try
        {
            result = FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30));
        }
        finally
        {
            AtomicFile.DirectoryFsyncFault = null;
        }

        Assert.True(FederationManifest.Load(ManifestPath).TryGetSite("site-c", out _));
        using PartyKit kit = PartyKit.Load(result.KitDirectory);
        Assert.Equal("site-c", kit.Name);
        string problem = Assert.IsType<string>(result.DurabilityUnconfirmed);
        Assert.StartsWith($"Site 'site-c' was added (federation.json lists it, its kit is in '{result.KitDirectory}')", problem, StringComparison.Ordinal);
        Assert.Contains($"flushing its directory '{folder}' failed (", problem, StringComparison.Ordinal);
        Assert.Contains("errno 5)", problem, StringComparison.Ordinal);
        Assert.DoesNotContain("unchanged", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void AddSite_SitesFolderFlushFailsAfterTheKitIsMoved_RefusedKitRemovedManifestUnchanged()
    {
        // The kit's move into sites/ was never flushed: after a power loss federation.json could list a site whose kit was gone.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        byte[] manifest = File.ReadAllBytes(ManifestPath);
        string sites = Path.Combine(_root, KitFiles.SitesDirectory);
        IOException ex;
        AtomicFile.DirectoryFsyncFault = directory => directory == sites ? 5 /* EIO */ : 0;
        try
        {
            ex = Assert.Throws<IOException>(() => FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30)));
        }
        finally
        {
            AtomicFile.DirectoryFsyncFault = null;
        }

        Assert.Contains($"flushing its directory '{sites}' failed (", ex.Message, StringComparison.Ordinal);
        Assert.EndsWith("(federation.json is unchanged)", ex.Message, StringComparison.Ordinal);
        Assert.Equal(manifest, File.ReadAllBytes(ManifestPath));
        Assert.False(Directory.Exists(Path.Combine(sites, "site-c")));
    }

    [Fact]
    public void AddSite_CaKeyReadableByEveryone_RefusedNamingTheFileItsModeAndTheChmodNothingWritten()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        byte[] manifest = File.ReadAllBytes(ManifestPath);
        string caKey = Path.Combine(_root, KitFiles.CaDirectory, KitFiles.CaKey);
        File.SetUnixFileMode(caKey, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var ex = Assert.Throws<InvalidDataException>(() => FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30)));

        Assert.StartsWith($"Federation CA key '{caKey}' has mode 0644: every user of this machine may read this private key", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{caKey}'", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("AcceptReadableKeys", ex.Message, StringComparison.Ordinal); // no opt-out covers the CA key
        Assert.Equal(manifest, File.ReadAllBytes(ManifestPath));
        Assert.False(Directory.Exists(Path.Combine(_root, KitFiles.SitesDirectory, "site-c")));

        File.SetUnixFileMode(caKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using PartyKit added = PartyKit.Load(FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30)).KitDirectory);
        Assert.Equal("site-c", added.Name);
    }

    [Fact]
    public void AddSite_ValidityBeyondTheCa_CutToTheCasEnd()
    {
        AddSiteResult result = FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(3000));

        using PartyKit kit = PartyKit.Load(result.KitDirectory);
        Assert.Equal(kit.CaCertificate.NotAfter, kit.TlsCertificate.NotAfter);
        Assert.True(PeerTrust.ValidateChain(kit.TlsCertificate, kit.CaCertificate, out string? error), error);
    }

    [Theory]
    [InlineData("site-a", "already has a site named 'site-a'")]
    [InlineData("aggregator", "reserved for the aggregator")]
    [InlineData("Site-C", "is invalid")]
    [InlineData("--", "must start and end with a lowercase letter or digit")]
    [InlineData("site-c-", "must start and end with a lowercase letter or digit")]
    public void AddSite_NameTakenOrInvalid_RefusedNothingWritten(string name, string expected)
    {
        byte[] manifest = File.ReadAllBytes(ManifestPath);
        string[] entries = Directory.GetFileSystemEntries(Path.Combine(_root, KitFiles.SitesDirectory));

        ArgumentException ex = Assert.Throws<ArgumentException>(() => FederationProvisioner.AddSite(_root, name, TimeSpan.FromDays(30)));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Equal(manifest, File.ReadAllBytes(ManifestPath));
        Assert.Equal(entries, Directory.GetFileSystemEntries(Path.Combine(_root, KitFiles.SitesDirectory)));
    }

    [Fact]
    public void AddSite_RevokedName_RefusedSayingRevocationIsByName()
    {
        FederationManifest.Load(ManifestPath).WithRevoked("site-b").Save(ManifestPath);

        ArgumentException ex = Assert.Throws<ArgumentException>(() => FederationProvisioner.AddSite(_root, "site-b", TimeSpan.FromDays(30)));

        Assert.StartsWith("Site 'site-b' was revoked in federation 'addsite'; revocation is by name", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddSite_FolderWithoutTheCaKeyOrWithAnotherFederationsCa_RefusedManifestUnchanged()
    {
        string other = _temp.Combine("other");
        FederationProvisioner.Provision(new ProvisionRequest(other, "other", ["site-x"], "127.0.0.1"));
        byte[] manifest = File.ReadAllBytes(ManifestPath);
        string caKey = Path.Combine(_root, KitFiles.CaDirectory, KitFiles.CaKey);
        string caCertificate = Path.Combine(_root, KitFiles.CaDirectory, KitFiles.CaCertificate);
        string kept = File.ReadAllText(caKey);

        File.Delete(caKey);
        InvalidDataException missing = Assert.Throws<InvalidDataException>(() => FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30)));
        Assert.Contains("'ca/ca.key' is missing", missing.Message, StringComparison.Ordinal);

        File.Copy(Path.Combine(other, KitFiles.CaDirectory, KitFiles.CaKey), caKey);
        File.Copy(Path.Combine(other, KitFiles.CaDirectory, KitFiles.CaCertificate), caCertificate, overwrite: true);
        InvalidDataException mixed = Assert.Throws<InvalidDataException>(() => FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30)));
        Assert.Contains("is not the CA in", mixed.Message, StringComparison.Ordinal);

        Assert.Equal(manifest, File.ReadAllBytes(ManifestPath));
        Assert.False(Directory.Exists(Path.Combine(_root, KitFiles.SitesDirectory, "site-c")));
        Assert.NotEqual(kept, File.ReadAllText(caKey));
    }

    [Fact]
    public void AddSite_CaAboutToExpire_RefusedSayingSo()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        string shortLived = _temp.Combine("short");
        FederationProvisioner.Provision(new ProvisionRequest(shortLived, "short", ["site-a"], "127.0.0.1", TimeSpan.FromDays(2)), time: clock);
        clock.Advance(TimeSpan.FromDays(1.5));

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => FederationProvisioner.AddSite(shortLived, "site-b", TimeSpan.FromDays(30), time: clock));

        Assert.StartsWith("The federation CA expires", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddSite_AnotherAddSiteWhileTheFirstHasReadTheManifest_BothSitesListedManifestValid()
    {
        // Without a lock the second add-site read the same manifest, wrote it with site-d, and the first then wrote it with
        // site-c only: site-d had a kit but was in no manifest.
        var firstRead = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<AddSiteResult>? second = null;
        int calls = 0;
        FederationProvisioner.AfterManifestRead = path =>
        {
            if (path == ManifestPath && Interlocked.Increment(ref calls) == 1)
            {
                firstRead.SetResult();
                // Give the second add-site time to run all the way through (it cannot while the first holds the lock).
                SpinWait.SpinUntil(() => second is { IsCompleted: true }, TimeSpan.FromSeconds(2));
            }
        };
        try
        {
            Task<AddSiteResult> first = Task.Run(() => FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30)));
            await firstRead.Task.WaitAsync(TimeSpan.FromSeconds(30));
            second = Task.Run(() => FederationProvisioner.AddSite(_root, "site-d", TimeSpan.FromDays(30)));

            await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(30));
        }
        finally
        {
            FederationProvisioner.AfterManifestRead = null;
        }

        FederationManifest after = FederationManifest.Load(ManifestPath);
        Assert.Equal(["site-a", "site-b", "site-c", "site-d"], after.Sites.Select(s => s.Name));
        foreach (string site in new[] { "site-c", "site-d" })
        {
            using PartyKit kit = PartyKit.Load(Path.Combine(_root, KitFiles.SitesDirectory, site));
            Assert.Equal(site, PeerTrust.IdentifySite(kit.TlsCertificate, after, out string? error));
            Assert.Null(error);
        }
    }

    [Fact]
    public void ManifestLock_HeldByAnotherCommand_RefusedAfterTheWaitNamingTheLockFileAndThatCommand()
    {
        byte[] manifest = File.ReadAllBytes(ManifestPath);
        using (ManifestLock held = ManifestLock.Acquire(ManifestPath, "provision revoke --site site-a"))
        {
            IOException ex = Assert.Throws<IOException>(() => ManifestLock.Acquire(ManifestPath, "provision add-site --site site-c", TimeSpan.FromMilliseconds(200)));

            Assert.Equal(ManifestPath + ".lock", held.LockPath);
            Assert.Contains($"its lock file {held.LockPath} was held", ex.Message, StringComparison.Ordinal);
            Assert.Contains($"'provision revoke --site site-a' (process {Environment.ProcessId}", ex.Message, StringComparison.Ordinal);
            Assert.Contains("Nothing was changed", ex.Message, StringComparison.Ordinal);
        }

        // Released: the next command gets it at once, and a stale lock file is harmless.
        using (ManifestLock.Acquire(ManifestPath, "provision add-site --site site-c", TimeSpan.Zero))
        {
        }

        Assert.Equal(manifest, File.ReadAllBytes(ManifestPath));
        Assert.False(File.Exists(ManifestPath + ".lock.holder"));
    }

    [Fact]
    public void ManifestLock_LockFileNotWritableByThisUser_StillTakenAndExclusiveAddSiteSucceeds()
    {
        // A lock file another user left (an earlier 'sudo securefed provision revoke': root's, mode 0644) may be read but
        // not written by the folder's owner. The lock was opened for writing: every later add-site and revoke stopped with
        // "Cannot create the lock file … Access … denied", where the manifest itself could still be rewritten. Read-only
        // here stands for that (as root, whom the mode does not stop, this passed before too).
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        string lockPath = ManifestLock.PathFor(ManifestPath);
        File.WriteAllBytes(lockPath, []);
        File.SetUnixFileMode(lockPath, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        using (ManifestLock held = ManifestLock.Acquire(ManifestPath, "provision revoke --site site-a", TimeSpan.Zero))
        {
            Assert.Equal(lockPath, held.LockPath);
            IOException ex = Assert.Throws<IOException>(() => ManifestLock.Acquire(ManifestPath, "provision add-site --site site-c", TimeSpan.Zero));
            Assert.Contains("'provision revoke --site site-a'", ex.Message, StringComparison.Ordinal);
        }

        AddSiteResult result = FederationProvisioner.AddSite(_root, "site-c", TimeSpan.FromDays(30));

        Assert.Contains(result.Manifest.Sites, s => s.Name == "site-c");
        Assert.Contains(FederationManifest.Load(ManifestPath).Sites, s => s.Name == "site-c");
    }

    private sealed class PartyComparer : IEqualityComparer<PartyInfo>
    {
        public bool Equals(PartyInfo? x, PartyInfo? y) => x is not null && y is not null && x.Name == y.Name
            && x.CertificateThumbprint == y.CertificateThumbprint && x.IdentityPublicKey.AsSpan().SequenceEqual(y.IdentityPublicKey);

        public int GetHashCode(PartyInfo obj) => obj.Name.GetHashCode(StringComparison.Ordinal);
    }
}
