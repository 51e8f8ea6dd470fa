using System.Buffers.Binary;
using System.Text;

using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>Vectors from golang.org/x/mod/sumdb/note (note_test.go) and the C2SP signed-note/tlog-checkpoint specs.</summary>
public sealed class SignedNoteTests
{
    private const string PeterVerifierKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    private const string PeterPrivateKeyMaterial = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    private const string PeterText = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    private const string PeterSignature = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

    [Fact]
    public void NoteVerifierKey_GoReferenceKey_ParsesAndRoundTrips()
    {
        NoteVerifierKey key = NoteVerifierKey.Parse(PeterVerifierKey);
        Assert.Equal("PeterNeumann", key.Name);
        Assert.Equal(0xc74f20a3u, key.KeyId);
        Assert.Equal(PeterVerifierKey, key.ToString());
    }

    [Fact]
    public void NoteVerifierKey_FromGoReferenceSeed_MatchesReferenceVerifierKeyAndSignature()
    {
        byte[] material = Convert.FromBase64String(PeterPrivateKeyMaterial);
        using Ed25519PrivateKey signer = Ed25519PrivateKey.FromSeed(material.AsSpan(1));
        NoteVerifierKey key = NoteVerifierKey.FromEd25519("PeterNeumann", signer.PublicKey);
        Assert.Equal(PeterVerifierKey, key.ToString());

        byte[] signature = signer.Sign(Encoding.UTF8.GetBytes(PeterText));
        byte[] blob = new byte[4 + signature.Length];
        BinaryPrimitives.WriteUInt32BigEndian(blob, key.KeyId);
        signature.CopyTo(blob, 4);
        Assert.Equal(PeterSignature, Convert.ToBase64String(blob));
        Assert.True(key.Verify(Encoding.UTF8.GetBytes(PeterText), signature));
    }

    [Fact]
    public void NoteVerifierKey_EveryManglingOfReferenceKey_IsRejected()
    {
        char[] chars = PeterVerifierKey.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            chars[i]++;
            string mangled = new(chars);
            Assert.Throws<FormatException>(() => NoteVerifierKey.Parse(mangled));
            chars[i]--;
        }

        for (int i = 0; i <= PeterVerifierKey.Length; i++)
        {
            for (int j = i + 1; j <= PeterVerifierKey.Length; j++)
            {
                if (i != 0 || j != PeterVerifierKey.Length)
                {
                    string part = PeterVerifierKey[i..j];
                    Assert.Throws<FormatException>(() => NoteVerifierKey.Parse(part));
                }
            }
        }

        // Wrong key length and unknown algorithm, each with an adjusted hash (note_test.go).
        Assert.Throws<FormatException>(() => NoteVerifierKey.Parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY=="));
        Assert.Throws<FormatException>(() => NoteVerifierKey.Parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
    }

    [Fact]
    public void SignedCheckpoint_Sign_ProducesSpecFormatThatParsesAndVerifies()
    {
        using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
        byte[] root = MerkleTree.LeafHash("x"u8);
        SignedCheckpoint checkpoint = SignedCheckpoint.Sign("example.com/log", 42, root, key);
        NoteVerifierKey verifier = NoteVerifierKey.FromEd25519("example.com/log", key.PublicKey);

        string[] lines = checkpoint.Text.Split('\n');
        Assert.Equal("example.com/log", lines[0]);
        Assert.Equal("42", lines[1]);
        Assert.Equal(Convert.ToBase64String(root), lines[2]);
        Assert.Equal(string.Empty, lines[3]);
        Assert.StartsWith("\u2014 example.com/log ", lines[4], StringComparison.Ordinal);
        Assert.Equal(string.Empty, lines[5]);
        byte[] blob = Convert.FromBase64String(lines[4]["\u2014 example.com/log ".Length..]);
        Assert.Equal(68, blob.Length);
        Assert.Equal(verifier.KeyId, BinaryPrimitives.ReadUInt32BigEndian(blob));

        SignedCheckpoint parsed = SignedCheckpoint.Parse(checkpoint.Text);
        Assert.Equal(42, parsed.Size);
        Assert.Equal(root, parsed.RootHash);
        Assert.Equal("example.com/log", parsed.Origin);
        Assert.True(parsed.Verify(verifier));
    }

    [Fact]
    public void SignedCheckpoint_TamperedBodyOrOtherKey_DoesNotVerify()
    {
        using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
        using Ed25519PrivateKey other = Ed25519PrivateKey.FromSeed(Enumerable.Repeat((byte)7, 32).ToArray());
        SignedCheckpoint checkpoint = SignedCheckpoint.Sign("example.com/log", 42, new byte[32], key);
        NoteVerifierKey verifier = NoteVerifierKey.FromEd25519("example.com/log", key.PublicKey);

        SignedCheckpoint edited = SignedCheckpoint.Parse(checkpoint.Text.Replace("\n42\n", "\n43\n", StringComparison.Ordinal));
        Assert.False(edited.TryVerify(verifier, out string? problem));
        Assert.Contains("invalid", problem, StringComparison.Ordinal);

        SignedCheckpoint resigned = SignedCheckpoint.Sign("example.com/log", 42, new byte[32], other);
        Assert.False(resigned.TryVerify(verifier, out problem));
        Assert.Contains("not signed by the expected key", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void SignedCheckpoint_UnknownExtraSignature_IsIgnored()
    {
        using Ed25519PrivateKey key = Ed25519PrivateKey.FromSeed(new byte[32]);
        SignedCheckpoint checkpoint = SignedCheckpoint.Sign("example.com/log", 3, new byte[32], key);
        string cosigned = checkpoint.Text + "\u2014 witness.example " + PeterSignature + "\n";
        SignedCheckpoint parsed = SignedCheckpoint.Parse(cosigned);
        Assert.Equal(2, parsed.Signatures.Count);
        Assert.True(parsed.Verify(NoteVerifierKey.FromEd25519("example.com/log", key.PublicKey)));
    }

    public static TheoryData<string, string> MalformedCheckpoints() => new()
    {
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", "blank line" },
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n", "no signature" },
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 origin " + PeterSignature, "newline" },
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n- origin " + PeterSignature + "\n", "em dash" },
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 bad+name " + PeterSignature + "\n", "key name" },
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 origin !!!\n", "base64" },
        { "origin\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 origin " + PeterSignature + "\n", "leading zeros" },
        { "origin\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 origin " + PeterSignature + "\n", "leading zeros" },
        { "origin\n1\nAAAA\n\n\u2014 origin " + PeterSignature + "\n", "expected 32" },
        { "origin\n1\n\n\u2014 origin " + PeterSignature + "\n", "needs origin" },
        { "origin\r\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 origin " + PeterSignature + "\n", "control character" },
        { "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 origin " + PeterSignature + "\nUnexpected line.\n", "em dash" },
    };

    [Theory]
    [MemberData(nameof(MalformedCheckpoints))]
    public void SignedCheckpoint_Parse_MalformedNote_ThrowsNamingTheProblem(string text, string expectedFragment)
    {
        FormatException ex = Assert.Throws<FormatException>(() => SignedCheckpoint.Parse(text));
        Assert.Contains(expectedFragment, ex.Message, StringComparison.OrdinalIgnoreCase);
    }
}
