namespace SecureFed.Federation.Tests;

public sealed class OperatorCredentialTests(ProvisionedFederation federation) : IClassFixture<ProvisionedFederation>
{
    [Fact]
    public void Provision_OperatorToken_IsOwnerOnlyAndOnlyItsDigestIsInTheAggregatorKit()
    {
        string tokenPath = Path.Combine(federation.Root, KitFiles.OperatorDirectory, KitFiles.OperatorToken);
        Assert.Equal(tokenPath, federation.Result.OperatorTokenPath);
        string token = OperatorCredential.LoadToken(tokenPath);
        Assert.Equal(2 * OperatorCredential.TokenBytes, token.Length);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(AtomicFile.SecretFileMode, File.GetUnixFileMode(tokenPath));
        }

        string verifierPath = Path.Combine(federation.Root, KitFiles.AggregatorDirectory, KitFiles.OperatorTokenVerifier);
        string verifier = File.ReadAllText(verifierPath).Trim();
        Assert.Equal(OperatorCredential.Verifier(token), verifier);
        Assert.DoesNotContain(token, File.ReadAllText(verifierPath), StringComparison.Ordinal);
        Assert.All(Directory.GetFiles(federation.Root, "*", SearchOption.AllDirectories).Where(f => f != tokenPath),
            f => Assert.DoesNotContain(token, File.ReadAllText(f), StringComparison.Ordinal));
    }

    [Fact]
    public void Accepts_TheProvisionedTokenOnly()
    {
        string token = OperatorCredential.LoadToken(federation.Result.OperatorTokenPath);
        OperatorCredential credential = OperatorCredential.LoadVerifier(Path.Combine(federation.Root, KitFiles.AggregatorDirectory, KitFiles.OperatorTokenVerifier));

        Assert.True(credential.Accepts(token));
        Assert.True(credential.Accepts(token + "\n"));
        Assert.False(credential.Accepts(token[..^1] + (token[^1] == '0' ? '1' : '0')));
        Assert.False(credential.Accepts(OperatorCredential.Verifier(token)));
        Assert.False(credential.Accepts(""));
        Assert.False(credential.Accepts(null));
    }

    [Fact]
    public void LoadVerifier_MissingOrMalformedFile_NamesTheFile()
    {
        string missing = Path.Combine(federation.Root, "nowhere", KitFiles.OperatorTokenVerifier);
        FileNotFoundException notFound = Assert.Throws<FileNotFoundException>(() => OperatorCredential.LoadVerifier(missing));
        Assert.Contains(missing, notFound.Message, StringComparison.Ordinal);

        string bad = Path.Combine(Path.GetDirectoryName(federation.Root)!, "bad-verifier");
        File.WriteAllText(bad, "not a digest\n");
        InvalidDataException malformed = Assert.Throws<InvalidDataException>(() => OperatorCredential.LoadVerifier(bad));
        Assert.Contains(bad, malformed.Message, StringComparison.Ordinal);
    }
}
