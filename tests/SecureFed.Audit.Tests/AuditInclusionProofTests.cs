namespace SecureFed.Audit.Tests;

public sealed class AuditInclusionProofTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(6)]
    [InlineData(10)]
    public void Create_CoveredLine_TextAndJsonRoundTripAndVerifyOffline(long line)
    {
        using var test = new TestLog();
        test.Populate(rounds: 3);

        AuditInclusionProof proof = AuditInclusionProof.Create(test.Directory, line);

        Assert.Equal(test.ReadLines()[(int)line - 1], proof.Leaf);
        Assert.Equal(10, proof.TreeSize);
        foreach (string serialized in new[] { proof.ToText(), proof.ToJson() })
        {
            AuditInclusionProof parsed = AuditInclusionProof.Parse(serialized);
            Assert.True(parsed.TryVerify(test.VerifierKey, out string? problem), problem);
        }
    }

    [Fact]
    public void TryVerify_EditedLeafOrProofOrOtherKey_Fails()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        string text = AuditInclusionProof.Create(test.Directory, 3).ToText();

        AuditInclusionProof editedLeaf = AuditInclusionProof.Parse(text.Replace("\"bytes\":1024", "\"bytes\":1", StringComparison.Ordinal));
        Assert.False(editedLeaf.TryVerify(test.VerifierKey, out string? problem));
        Assert.Equal("the leaf text does not hash to leaf_hash", problem);

        AuditInclusionProof original = AuditInclusionProof.Parse(text);
        var wrongPosition = new AuditInclusionProof
        {
            Line = 4, Leaf = original.Leaf, LeafHash = original.LeafHash, TreeSize = original.TreeSize, Root = original.Root,
            Proof = original.Proof, VerifierKey = original.VerifierKey, Checkpoint = original.Checkpoint,
        };
        Assert.False(wrongPosition.TryVerify(test.VerifierKey, out problem));
        Assert.Contains("does not lead from line 4", problem, StringComparison.Ordinal);

        string otherKey = NoteVerifierKey.FromEd25519(TestLog.Origin, new byte[32]).ToString();
        Assert.False(original.TryVerify(otherKey, out problem));
        Assert.Contains("not signed by the expected key", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_LineBeyondNewestCheckpoint_Throws()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => AuditInclusionProof.Create(test.Directory, 5));
    }
}
