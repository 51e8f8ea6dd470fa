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

    /// <summary>
    /// CLI crash hunt (session 56): a JSON proof with a null string field parsed, and the verifier then crashed on the null
    /// (audit check-proof exited 134 with a stack trace); a missing field was "The given key was not present in the
    /// dictionary". Now each is refused as not a proof, naming the field.
    /// </summary>
    [Theory]
    [InlineData("leaf", "null", "field 'leaf' is a JSON null, not a string")]
    [InlineData("checkpoint", "null", "field 'checkpoint' is a JSON null, not a string")]
    [InlineData("verifier_key", "null", "field 'verifier_key' is a JSON null, not a string")]
    [InlineData("root", "7", "field 'root' is a JSON number, not a string")]
    [InlineData("line", "\"5\"", "field 'line' is a JSON string, not a number")]
    [InlineData("proof", "null", "field 'proof' is a JSON null, not a list")]
    [InlineData("proof", "[null]", "field 'proof'[0] is a JSON null, not a string")]
    [InlineData("leaf_hash", null, "field 'leaf_hash' is missing")]
    public void Parse_JsonFieldNullMissingOrOfAnotherType_FormatExceptionNamingTheField(string field, string? value, string expected)
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        var json = System.Text.Json.Nodes.JsonNode.Parse(AuditInclusionProof.Create(test.Directory, 2).ToJson())!.AsObject();
        json.Remove(field);
        if (value is not null)
        {
            json[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        }

        FormatException ex = Assert.Throws<FormatException>(() => AuditInclusionProof.Parse(json.ToJsonString()));
        Assert.Equal($"Not a SecureFed inclusion proof (JSON): {expected}", ex.Message);
    }

    [Fact]
    public void Parse_JsonArray_FormatExceptionNotAnObject()
    {
        FormatException ex = Assert.Throws<FormatException>(() => AuditInclusionProof.Parse("[1, 2]"));
        Assert.Contains("not a SecureFed inclusion proof", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Streaming the proof (no list of lines or leaf hashes) gives the proof the whole tree gives, for every line of trees of many shapes.</summary>
    [Fact]
    public void Create_EveryLineOfTreesOfManySizes_SameProofAsTheWholeTree()
    {
        using var test = new TestLog();
        using (AuditLog log = test.Open())
        {
            for (int size = 2; size <= 20; size++)
            {
                log.Append(AuditEvents.RoundJoined, f => f.Add("round", size));
                log.Checkpoint();
                List<byte[]> leaves = [.. test.ReadLines().Select(l => MerkleTree.LeafHash(System.Text.Encoding.UTF8.GetBytes(l)))];
                Assert.Equal(size, leaves.Count);
                for (long line = 1; line <= size; line++)
                {
                    AuditInclusionProof proof = AuditInclusionProof.Create(test.Directory, line);

                    Assert.Equal(test.ReadLines()[(int)line - 1], proof.Leaf);
                    Assert.Equal(Convert.ToHexStringLower(leaves[(int)line - 1]), proof.LeafHash);
                    Assert.Equal(size, proof.TreeSize);
                    Assert.Equal([.. MerkleTree.InclusionProof(leaves, line - 1).Select(Convert.ToHexStringLower)], proof.Proof);
                    Assert.True(proof.TryVerify(test.VerifierKey, out string? problem), problem);
                }
            }
        }
    }
}
