using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

using SecureFed.Crypto;

namespace SecureFed.Federation.Tests;

public sealed class PartyKitTests(ProvisionedFederation federation) : IClassFixture<ProvisionedFederation>
{
    /// <summary>How the services' opt-out is turned on, as they pass it to <see cref="PartyKit.Load(string, bool, string?)"/>.</summary>
    private const string Setting = "setting SecureFed:AcceptReadableKeys to true";

    [Fact]
    public void Load_SiteKit_HasUsableTlsKeyAndIdentityKeyMatchingManifest()
    {
        using PartyKit kit = PartyKit.Load(federation.Result.SiteKitDirectories["site-de"]);

        Assert.Equal("site-de", kit.Name);
        Assert.False(kit.IsAggregator);
        Assert.True(kit.TlsCertificate.HasPrivateKey);
        using ECDsa? key = kit.TlsCertificate.GetECDsaPrivateKey();
        Assert.NotNull(key);
        byte[] data = Encoding.UTF8.GetBytes("hello");
        using ECDsa? pub = kit.TlsCertificate.GetECDsaPublicKey();
        Assert.True(pub!.VerifyData(data, key.SignData(data, HashAlgorithmName.SHA256), HashAlgorithmName.SHA256));

        byte[] signature = kit.IdentityKey.Sign(data);
        Assert.True(kit.Manifest.TryGetSite("site-de", out PartyInfo info));
        Assert.True(Ed25519.Verify(info.IdentityPublicKey, data, signature));
    }

    [Fact]
    public void Load_AggregatorKit_IsAggregator()
    {
        using PartyKit kit = PartyKit.Load(federation.Result.AggregatorKitDirectory);

        Assert.True(kit.IsAggregator);
        Assert.Equal(kit.Manifest.Aggregator.CertificateThumbprint, FederationManifest.Thumbprint(kit.TlsCertificate));
    }

    [Fact]
    public void Load_IdentityKeyFromAnotherSite_RefusedNamingTheFile()
    {
        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        File.Copy(Path.Combine(federation.Result.SiteKitDirectories["site-fr"], KitFiles.IdentityKey), Path.Combine(kit, KitFiles.IdentityKey), overwrite: true);

        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));

        Assert.Contains("'identity.key' is not the identity key listed for 'site-de'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_RefusedNamingTheFile()
    {
        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        File.Delete(Path.Combine(kit, KitFiles.TlsKey));

        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));

        Assert.Contains("'tls.key' is missing", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_KeyOfAnotherParty_RefusedAsMismatch()
    {
        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        File.Copy(Path.Combine(federation.Result.SiteKitDirectories["site-fr"], KitFiles.TlsKey), Path.Combine(kit, KitFiles.TlsKey), overwrite: true);

        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));

        Assert.Contains("matching private key", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void IdentityKeyFile_WriteRead_RoundTripsTheSeed()
    {
        using var dir = new TempDirectory();
        using Ed25519PrivateKey key = Ed25519PrivateKey.Generate();
        string path = dir.Combine("id.key");

        IdentityKeyFile.Write(path, key);
        using Ed25519PrivateKey read = IdentityKeyFile.Read(path);

        Assert.Equal(key.PublicKey, read.PublicKey);
    }

    [Fact]
    public void IdentityKeyFile_WrongLabel_InvalidDataException()
    {
        using var dir = new TempDirectory();
        string path = dir.Combine("id.key");
        File.WriteAllText(path, PemEncoding.WriteString("PRIVATE KEY", new byte[32]));

        var ex = Assert.Throws<InvalidDataException>(() => IdentityKeyFile.Read(path));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(KitFiles.TlsKey, "TLS private key")]
    [InlineData(KitFiles.IdentityKey, "Identity key")]
    public void Load_PrivateKeyReadableByEveryone_RefusedNamingTheFileItsModeAndTheChmod(string file, string what)
    {
        // A kit copied with the wrong umask (mode 0644) was used as it was: every local user could read the site's keys.
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        string key = Path.Combine(kit, file);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));

        Assert.StartsWith($"{what} '{key}' has mode 0644: every user of this machine may read this private key, so it is not used.", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{key}'", ex.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using PartyKit loaded = PartyKit.Load(kit);
        Assert.Equal("site-de", loaded.Name);
    }

    [Fact]
    public void Load_IdentityKeyReadableByItsGroup_LoadsOnlyWhenRootOwnsIt()
    {
        // 0640 is refused, as 0644 is, unless root owns the key (a service in the key's group reads what an administrator keeps).
        if (!OperatingSystem.IsLinux())
        {
            return; // FileOwner.IsSupported
        }

        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        string key = Path.Combine(kit, KitFiles.IdentityKey);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        if (FileOwner.UserIdOf(key) == 0)
        {
            using PartyKit loaded = PartyKit.Load(kit);
            Assert.Equal("site-de", loaded.Name);
        }
        else
        {
            var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));
            Assert.StartsWith($"Identity key '{key}' has mode 0640: the users of its group may read this private key", ex.Message, StringComparison.Ordinal);
        }

        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        var writable = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));
        Assert.StartsWith($"Identity key '{key}' has mode 0660: the users of its group may read this private key", writable.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(KitFiles.TlsKey, "TLS private key", "0644")] // a Kubernetes Secret volume's default mode
    [InlineData(KitFiles.IdentityKey, "Identity key", "0644")]
    [InlineData(KitFiles.IdentityKey, "Identity key", "0444")] // a Docker secret
    [InlineData(KitFiles.IdentityKey, "Identity key", "0604")]
    public void Load_KeyOthersMayOnlyReadWithAcceptReadableKeys_LoadsAndNamesItsFileModeAndOwner(string file, string what, string mode)
    {
        // Kubernetes and Docker mount secrets readable by all; where the mode cannot be set, the operator had no way to start.
        if (!OperatingSystem.IsLinux())
        {
            return; // FileOwner.IsSupported
        }

        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        string key = Path.Combine(kit, file);
        File.SetUnixFileMode(key, (UnixFileMode)Convert.ToInt32(mode, 8));
        string owner = FileOwner.Describe(FileOwner.UserIdOf(key));

        using (PartyKit loaded = PartyKit.Load(kit, acceptReadableKeys: true, Setting))
        {
            ReadableKeyFile readable = Assert.Single(loaded.ReadableKeys);
            Assert.Equal(new ReadableKeyFile(what, key, mode, owner), readable);
            Assert.StartsWith($"{what} '{key}' has mode {mode} and belongs to {owner}: other users than its owner may read this private key, and it is used only because SecureFed:AcceptReadableKeys is true.",
                readable.Warning("site-de"), StringComparison.Ordinal);
        }

        // Without the opt-out it stays refused, and the refusal names the opt-out as the caller spells it.
        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: false, Setting));
        Assert.StartsWith($"{what} '{key}' has mode {mode}: every user of this machine may read this private key, so it is not used.", ex.Message, StringComparison.Ordinal);
        Assert.Contains("setting SecureFed:AcceptReadableKeys to true accepts a key others may only read", ex.Message, StringComparison.Ordinal);
        var flag = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: false, "--accept-readable-keys"));
        Assert.Contains("--accept-readable-keys accepts a key others may only read", flag.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("AcceptReadableKeys", flag.Message, StringComparison.Ordinal);

        // A caller without the opt-out names none.
        var none = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit));
        Assert.DoesNotContain("accepts a key others may only read", none.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using PartyKit strict = PartyKit.Load(kit, acceptReadableKeys: true, Setting);
        Assert.Empty(strict.ReadableKeys);
    }

    [Theory]
    [InlineData(KitFiles.TlsKey, "TLS private key", "0666")]
    [InlineData(KitFiles.IdentityKey, "Identity key", "0646")]
    [InlineData(KitFiles.IdentityKey, "Identity key", "0660")]
    [InlineData(KitFiles.IdentityKey, "Identity key", "0654")]
    [InlineData(KitFiles.IdentityKey, "Identity key", "0645")]
    public void Load_KeyOthersMayWriteOrExecute_RefusedEvenWithAcceptReadableKeys(string file, string what, string mode)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        string key = Path.Combine(kit, file);
        File.SetUnixFileMode(key, (UnixFileMode)Convert.ToInt32(mode, 8));

        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: true, Setting));

        Assert.StartsWith($"{what} '{key}' has mode {mode}: ", ex.Message, StringComparison.Ordinal);
        Assert.EndsWith("AcceptReadableKeys does not cover this: it accepts a key others may only read, never one they may write or execute.", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_ReadableKeyOwnedByAnotherUser_RefusedEvenWithAcceptReadableKeys()
    {
        // Another user who owns the key can rewrite it (chmod, then write): only root's or this process's own key is accepted.
        if (!OperatingSystem.IsLinux() || FileOwner.EffectiveUserId() != 0)
        {
            return; // chown needs root
        }

        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        string key = Path.Combine(kit, KitFiles.IdentityKey);
        File.SetUnixFileMode(key, (UnixFileMode)Convert.ToInt32("0644", 8));
        using (var chown = System.Diagnostics.Process.Start("chown", ["54321", key]))
        {
            chown.WaitForExit();
            Assert.Equal(0, chown.ExitCode);
        }

        var ex = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: true, Setting));

        Assert.StartsWith($"Identity key '{key}' has mode 0644 and belongs to uid 54321, neither root nor the user this process runs as", ex.Message, StringComparison.Ordinal);

        // Without the opt-out the refusal does not suggest it: it would refuse this key all the same.
        var strict = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: false, Setting));
        Assert.StartsWith($"Identity key '{key}' has mode 0644: every user of this machine may read this private key, so it is not used.", strict.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("AcceptReadableKeys", strict.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The ledger-repair command turns the opt-out on with its flag <c>--accept-readable-keys</c>, not the setting: the
    /// warning for a key it accepts, and the refusals of keys the opt-out does not cover, name the flag there and the
    /// setting for the services. Before the fix the warning said "used only because SecureFed:AcceptReadableKeys is true
    /// ... turn the setting off" to a user of the command, who has no such setting, and the refusals said
    /// "AcceptReadableKeys" for both (review61).
    /// </summary>
    [Fact]
    public void Load_OptOutByFlagOrSetting_WarningAndRefusalsNameWhatItsUserSets()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // FileOwner.IsSupported
        }

        using var dir = new TempDirectory();
        string kit = CopyKit(federation.Result.SiteKitDirectories["site-de"], dir.Combine("kit"));
        string key = Path.Combine(kit, KitFiles.IdentityKey);
        File.SetUnixFileMode(key, (UnixFileMode)Convert.ToInt32("0644", 8));
        const string Flag = "--accept-readable-keys";

        using (PartyKit byFlag = PartyKit.Load(kit, acceptReadableKeys: true, Flag))
        {
            string warning = Assert.Single(byFlag.ReadableKeys).Warning("site-de");
            Assert.Contains("it is used only because --accept-readable-keys was given.", warning, StringComparison.Ordinal);
            Assert.EndsWith("and leave out --accept-readable-keys", warning, StringComparison.Ordinal);
            Assert.DoesNotContain("SecureFed:", warning, StringComparison.Ordinal);
            Assert.DoesNotContain("setting", warning, StringComparison.Ordinal);
        }

        using (PartyKit bySetting = PartyKit.Load(kit, acceptReadableKeys: true, Setting))
        {
            string warning = Assert.Single(bySetting.ReadableKeys).Warning("site-de");
            Assert.Contains("it is used only because SecureFed:AcceptReadableKeys is true.", warning, StringComparison.Ordinal);
            Assert.EndsWith("and turn the setting off", warning, StringComparison.Ordinal);
        }

        // A key others may write is refused with or without the opt-out; the refusal names the opt-out its user turned on.
        File.SetUnixFileMode(key, (UnixFileMode)Convert.ToInt32("0666", 8));
        var flagRefusal = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: true, Flag));
        Assert.EndsWith(" --accept-readable-keys does not cover this: it accepts a key others may only read, never one they may write or execute.", flagRefusal.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("AcceptReadableKeys", flagRefusal.Message, StringComparison.Ordinal);
        var settingRefusal = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: true, Setting));
        Assert.EndsWith(" SecureFed:AcceptReadableKeys does not cover this: it accepts a key others may only read, never one they may write or execute.", settingRefusal.Message, StringComparison.Ordinal);

        if (FileOwner.EffectiveUserId() == 0)
        {
            // A readable key another user owns: refused, naming the opt-out as its user sets it.
            File.SetUnixFileMode(key, (UnixFileMode)Convert.ToInt32("0644", 8));
            using (var chown = System.Diagnostics.Process.Start("chown", ["54321", key]))
            {
                chown.WaitForExit();
                Assert.Equal(0, chown.ExitCode);
            }

            var owned = Assert.Throws<InvalidDataException>(() => PartyKit.Load(kit, acceptReadableKeys: true, Flag));
            Assert.Contains(": --accept-readable-keys accepts a private key others may read only when root or this user owns it", owned.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("AcceptReadableKeys", owned.Message, StringComparison.Ordinal);
        }
    }

    private static string CopyKit(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        return to;
    }
}
