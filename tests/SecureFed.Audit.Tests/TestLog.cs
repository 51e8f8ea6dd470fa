using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>A throw-away log directory with a fixed signing key and clock.</summary>
internal sealed class TestLog : IDisposable
{
    public const string Origin = "securefed.test/aggregator";
    public const string Actor = "aggregator";

    public TestLog()
    {
        Directory = Path.Combine(Path.GetTempPath(), "securefed-audit-tests", Guid.NewGuid().ToString("N"));
        Key = Ed25519PrivateKey.FromSeed(Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
    }

    public string Directory { get; }

    public Ed25519PrivateKey Key { get; }

    public string LogPath => Path.Combine(Directory, AuditLog.LogFileName);

    public string VerifierKey => NoteVerifierKey.FromEd25519(Origin, Key.PublicKey).ToString();

    public static TimeProvider Clock { get; } = new FixedTimeProvider(new DateTimeOffset(2026, 11, 29, 8, 0, 0, TimeSpan.Zero));

    /// <summary>The site-level ε a privacy ledger states after zCDP charges of <paramref name="rho"/> in all, at <paramref name="delta"/>.</summary>
    public static double SiteEpsilon(double rho, double delta = 1e-5)
    {
        var accountant = new SecureFed.Privacy.RdpAccountant();
        accountant.AddZcdp(rho);
        return accountant.GetPrivacySpent(delta).Epsilon;
    }

    public AuditLog Open(bool repairTornTail = false, string actor = Actor) =>
        AuditLog.Open(Directory, actor, Key, Origin, repairTornTail, Clock);

    /// <summary>Creates a log with <paramref name="rounds"/> rounds of three events, checkpointing after each round.</summary>
    public void Populate(int rounds)
    {
        using AuditLog log = Open();
        for (int round = 1; round <= rounds; round++)
        {
            log.Append(AuditEvents.RoundOpened, f => f.Add("round", round).Add("cohort", ["h1", "h2"]).Add("threshold", 2));
            log.Append(AuditEvents.MaskedInputReceived, f => f.Add("round", round).Add("site", "h1").Add("bytes", 1024));
            log.Append(AuditEvents.RoundCompleted, f => f.Add("round", round));
            log.Checkpoint();
        }
    }

    public List<string> ReadLines() => [.. File.ReadAllText(LogPath).Split('\n', StringSplitOptions.RemoveEmptyEntries)];

    public void WriteLines(IEnumerable<string> lines) => File.WriteAllText(LogPath, string.Concat(lines.Select(l => l + "\n")));

    /// <summary>
    /// Writes <paramref name="lines"/> with seq renumbered from 1 and re-signs them as the key holder would (every old
    /// checkpoint removed, one new checkpoint over all lines): what an insider with the key can do to hide an edit.
    /// </summary>
    public void WriteLinesAndResign(IReadOnlyList<string> lines)
    {
        List<string> renumbered = [.. lines.Select((l, i) => System.Text.RegularExpressions.Regex.Replace(l, "^\\{\"seq\":[0-9]+,", $"{{\"seq\":{i + 1},"))];
        WriteLines(renumbered);
        string folder = Path.Combine(Directory, AuditLog.CheckpointDirectoryName);
        foreach (string old in System.IO.Directory.EnumerateFiles(folder))
        {
            File.Delete(old);
        }

        List<byte[]> leaves = [.. renumbered.Select(l => MerkleTree.LeafHash(System.Text.Encoding.UTF8.GetBytes(l)))];
        string text = SignedCheckpoint.Sign(Origin, leaves.Count, MerkleTree.RootHash(leaves), Key).Text;
        File.WriteAllText(Path.Combine(folder, $"{leaves.Count}.checkpoint"), text);
        File.WriteAllText(Path.Combine(Directory, AuditLog.LatestCheckpointFileName), text);
    }

    public void Dispose()
    {
        Key.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private sealed class FixedTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
