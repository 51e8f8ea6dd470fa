using System.Text;

using SecureFed.Audit.Internal;
using SecureFed.Crypto;

namespace SecureFed.Audit.Tests;

/// <summary>One tamper test per kind of change an auditor must catch. Populate(3) gives lines 1..10, checkpoints 1, 4, 7, 10.</summary>
public sealed class AuditVerifierTests
{
    [Fact]
    public void Verify_IntactLog_OkWithCountsAndKey()
    {
        using var test = new TestLog();
        test.Populate(rounds: 3);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.True(result.Ok, result.FirstProblem);
        Assert.Null(result.FirstProblem);
        Assert.Equal(10, result.Lines);
        Assert.Equal(4, result.Checkpoints);
        Assert.Equal(10, result.CoveredLines);
        Assert.Equal(TestLog.Actor, result.Actor);
        Assert.Equal(test.VerifierKey, result.VerifierKey);
        Assert.Contains("OK", result.ToString(), StringComparison.Ordinal);
    }

    /// <summary>
    /// CLI crash hunt (session 56): the log file as a symbolic link verifies as the file it links to; a link to a device
    /// without end (/dev/zero) is read as the empty file its size says, not read until memory runs out (the process
    /// aborted, exit 134).
    /// </summary>
    [Fact]
    public void Verify_LogIsASymbolicLink_VerifiesTheLinkedLog_ToAnEndlessDeviceNotReadWithoutEnd()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var test = new TestLog();
        test.Populate(rounds: 2);
        string original = test.LogPath + ".original";
        File.Move(test.LogPath, original);
        File.CreateSymbolicLink(test.LogPath, original);

        AuditVerification linked = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        Assert.True(linked.Ok, linked.FirstProblem);
        Assert.Equal(7, linked.Lines);

        if (File.Exists("/dev/zero"))
        {
            File.Delete(test.LogPath);
            File.CreateSymbolicLink(test.LogPath, "/dev/zero");
            AuditVerification endless = AuditVerifier.Verify(test.Directory, test.VerifierKey);
            Assert.False(endless.Ok);
            Assert.Equal(0, endless.Lines);
        }
    }

    /// <summary>An emptied log (0 lines, checkpoints removed) verified OK (review of session 58): AuditLog.Open always writes one line and signs it.</summary>
    [Fact]
    public void Verify_EmptiedLogWithoutCheckpoints_FailsNamingBoth()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        test.WriteLines([]);
        Directory.Delete(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName), recursive: true);
        File.Delete(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName));

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok, "an emptied log without checkpoints verified");
        Assert.Contains(result.Problems, p => p.StartsWith("audit.jsonl has no complete line, but opening a log writes log.opened and signs it", StringComparison.Ordinal));
        Assert.Contains(result.Problems, p => p.StartsWith("no signed checkpoint covers this log", StringComparison.Ordinal));
    }

    /// <summary>The head of the log deleted, seq renumbered and re-signed by the key holder: line 1 is no longer log.opened.</summary>
    [Fact]
    public void Verify_FirstLineDeletedAndReSigned_FailsNamingLineOne()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        test.WriteLinesAndResign(test.ReadLines().Skip(1).ToList());

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok, "a log without its log.opened line verified");
        Assert.Equal("line 1 is round.opened, but a log starts with log.opened: its first lines were deleted", Assert.Single(result.Problems));
    }

    /// <summary>
    /// A checkpoint linked to /dev/zero made verify read until it ran out of memory and aborted the process (review of
    /// session 58): now a problem naming the checkpoint and where it leads, and the device is not read.
    /// </summary>
    [Fact]
    public void Verify_CheckpointLinkedToDevZero_ProblemNamesTheFileUnread()
    {
        if (!File.Exists("/dev/zero"))
        {
            return;
        }

        using var test = new TestLog();
        test.Populate(rounds: 1);
        string checkpoint = Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "4.checkpoint");
        File.Delete(checkpoint);
        File.CreateSymbolicLink(checkpoint, "/dev/zero");

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.StartsWith($"checkpoints/4.checkpoint is not a valid checkpoint: {checkpoint} is empty or not a regular file (a pipe, a device or a link to one): it leads to /dev/zero", StringComparison.Ordinal));
    }

    /// <summary>A 3 GB sparse checkpoint failed verify with "The file is too long", naming no file (review of session 58).</summary>
    [Fact]
    public void Verify_CheckpointOversizedSparseFile_ProblemNamesTheFileUnread()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        string checkpoint = Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "4.checkpoint");
        File.Delete(checkpoint);
        using (var sparse = new FileStream(checkpoint, FileMode.CreateNew))
        {
            sparse.SetLength(3L << 30);
        }

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.StartsWith($"checkpoints/4.checkpoint is not a valid checkpoint: {checkpoint} is 3,221,225,472 bytes, more than the 65,536", StringComparison.Ordinal));
    }

    /// <summary>A checkpoint that is a named pipe: opening it waited for a writer, so verify hung (review of session 58).</summary>
    [Fact]
    public async Task Verify_CheckpointIsANamedPipe_ProblemNamesTheFileWithoutWaiting()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var test = new TestLog();
        test.Populate(rounds: 1);
        string checkpoint = Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "4.checkpoint");
        File.Delete(checkpoint);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [checkpoint]))
        {
            await mkfifo.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // On a thread of its own: without the fix the open never returns, and the test fails at the timeout instead of hanging.
        Task<AuditVerification> verify = Task.Factory.StartNew(() => AuditVerifier.Verify(test.Directory, test.VerifierKey), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        AuditVerification result = await verify.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.StartsWith($"checkpoints/4.checkpoint is not a valid checkpoint: {checkpoint} is empty or not a regular file", StringComparison.Ordinal));
    }

    /// <summary>The log folder's verifier.key as a named pipe hung verify without --key, as a checkpoint did.</summary>
    [Fact]
    public async Task Verify_VerifierKeyFileIsANamedPipe_ProblemNamesItWithoutWaiting()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var test = new TestLog();
        test.Populate(rounds: 1);
        string keyFile = Path.Combine(test.Directory, AuditLog.VerifierKeyFileName);
        File.Delete(keyFile);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [keyFile]))
        {
            await mkfifo.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(0, mkfifo.ExitCode);
        }

        Task<AuditVerification> verify = Task.Factory.StartNew(() => AuditVerifier.Verify(test.Directory), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        AuditVerification result = await verify.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.StartsWith($"verifier.key is not a verifier key: {keyFile} is empty or not a regular file", StringComparison.Ordinal));
    }

    /// <summary>audit.jsonl itself as a named pipe: opening it waited for a writer, so verify hung (review of session 59).</summary>
    [Fact]
    public async Task Verify_LogFileIsANamedPipe_RefusedUnopenedNamingItsType()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // the file type is read with statx, on Linux only
        }

        using var test = new TestLog();
        test.Populate(rounds: 1);
        File.Delete(test.LogPath);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [test.LogPath]))
        {
            await mkfifo.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(0, mkfifo.ExitCode);
        }

        // On a thread of its own: without the fix the open never returns, and the test fails at the timeout instead of hanging.
        Task<AuditVerification> verify = Task.Factory.StartNew(() => AuditVerifier.Verify(test.Directory, test.VerifierKey), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        AuditVerification result = await verify.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(result.Ok);
        Assert.False(result.LogFound);
        Assert.Equal($"{test.LogPath} is a named pipe (FIFO), not a regular file: not an audit log; it was not opened.", result.FirstProblem);
    }

    /// <summary>
    /// 100,000 blank lines after a log's lines: each was parsed as JSON, worded as a problem and kept as a line and a leaf
    /// hash (some 80 bytes a byte of log; review of session 59). Still a failure, now one problem for the run.
    /// </summary>
    [Fact]
    public void Verify_ManyBlankLines_OneProblemForTheRun()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        File.AppendAllText(test.LogPath, new string('\n', 100_000) + "\n");
        List<string> lines = [.. File.ReadAllLines(test.LogPath)];
        Assert.Equal(100_005, lines.Count);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok);
        Assert.Equal(100_005, result.Lines);
        Assert.Equal("lines 5..100005 (100,001 lines) are blank, but no log line is empty (lines were inserted, or the file was edited or padded)", Assert.Single(result.Problems));
        Assert.Equal(4, result.CoveredLines);
    }

    /// <summary>Blank lines between log lines: one problem per run, each naming its lines; the lines after them are still checked.</summary>
    [Fact]
    public void Verify_BlankLinesBetweenLines_OneProblemPerRun()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        lines.Insert(2, string.Empty);
        lines.Insert(5, string.Empty);
        lines.Insert(5, string.Empty);
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok);
        Assert.Equal("line 3 is blank, but no log line is empty (a line was inserted, or the file was edited)", result.Problems[0]);
        Assert.Equal("line 4 has seq 3, expected 4 (a line was inserted before it, or lines were reordered)", result.Problems[1]);
        Assert.StartsWith("lines 6..7 (2 lines) are blank", result.Problems[3], StringComparison.Ordinal);
    }

    /// <summary>
    /// A relative link inside a linked log folder: &lt;log&gt;-etc/audit → ../&lt;log&gt;, whose verifier.key →
    /// ../&lt;log&gt;-keys/verifier.key. The kernel follows ".." from the real folder, so the key is &lt;log&gt;-keys/verifier.key;
    /// .NET's ResolveLinkTarget folded it against the folder as written (&lt;log&gt;-etc) and verify said the key's link leads
    /// nowhere (review of session 59; AddSiteTests.Revoke_RelativeLinkInsideALinkedFolder_* for the manifest).
    /// </summary>
    [Fact]
    public void Verify_RelativeLinkInsideALinkedFolder_ReadsTheFileTheKernelOpens()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var test = new TestLog();
        test.Populate(rounds: 1);
        string name = Path.GetFileName(test.Directory);
        string keys = test.Directory + "-keys";
        string etc = test.Directory + "-etc";
        try
        {
            Directory.CreateDirectory(keys);
            Directory.CreateDirectory(etc);
            File.Move(Path.Combine(test.Directory, AuditLog.VerifierKeyFileName), Path.Combine(keys, AuditLog.VerifierKeyFileName));
            File.CreateSymbolicLink(Path.Combine(test.Directory, AuditLog.VerifierKeyFileName), Path.Combine("..", name + "-keys", AuditLog.VerifierKeyFileName));
            Directory.CreateSymbolicLink(Path.Combine(etc, "audit"), Path.Combine("..", name));
            string viaLinks = Path.Combine(etc, "audit");

            AuditVerification result = AuditVerifier.Verify(viaLinks);

            Assert.True(result.Ok, result.FirstProblem);
            Assert.StartsWith(AuditLog.VerifierKeyFileName, result.VerifierKeySource, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
            Directory.Delete(keys, recursive: true);
        }
    }

    [Fact]
    public void Verify_TornLine_SaysHowManyCompleteLinesWereChecked_NoneWhenTheFileHasNoNewline()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        File.AppendAllText(test.LogPath, "{\"seq\":");
        Assert.Contains("lines 1..4 were checked", Assert.Single(AuditVerifier.Verify(test.Directory, test.VerifierKey).Problems, p => p.Contains("is torn", StringComparison.Ordinal)),
            StringComparison.Ordinal);

        // CLI crash hunt (session 56): 5,000 NUL bytes and no newline said "lines 1..0 were checked".
        File.WriteAllBytes(test.LogPath, new byte[5000]);
        string torn = Assert.Single(AuditVerifier.Verify(test.Directory, test.VerifierKey).Problems, p => p.Contains("is torn", StringComparison.Ordinal));
        Assert.EndsWith("line 1 is torn: 5000 byte(s) without a final newline (a crash mid-write or a truncated file); the file has no complete line to check", torn, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_WithoutKey_TrustsVerifierKeyFileAndSaysSo()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        AuditVerification result = AuditVerifier.Verify(test.Directory);
        Assert.True(result.Ok, result.FirstProblem);
        Assert.Contains("trust on first use", result.VerifierKeySource, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_EditedLine_NamesTheCheckpointAndLineRange()
    {
        using var test = new TestLog();
        test.Populate(rounds: 3);
        List<string> lines = test.ReadLines();
        lines[5] = lines[5].Replace("\"bytes\":1024", "\"bytes\":4096", StringComparison.Ordinal); // line 6, round 2
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok);
        Assert.StartsWith("checkpoints/7.checkpoint: lines 1..7 do not hash to its signed root: a line between 5 and 7", result.FirstProblem, StringComparison.Ordinal);
        Assert.Equal(2, result.Checkpoints);
    }

    [Fact]
    public void Verify_EditedLineNotCanonical_NamesTheLine()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        lines[3] = lines[3].Replace(",\"type\"", ", \"type\"", StringComparison.Ordinal);
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.Equal("line 4 is not in canonical form (it was edited by hand or by another tool)", result.FirstProblem);
    }

    /// <summary>
    /// A property name repeated inside fields and re-signed: the canonical check sorted the names and kept both, so the
    /// line passed, and the report reads the last value (20) while a reader of the line may take the first (review of session 58).
    /// </summary>
    [Fact]
    public void Verify_RepeatedPropertyNameReSigned_NotInCanonicalForm()
    {
        using var test = new TestLog();
        using (AuditLog log = test.Open())
        {
            log.Append(AuditEvents.PrivacyLedger, f => f.Add("round", 1).Add("guarantee", "record").Add("epsilon", 20).Add("delta", 1e-5).Add("budget", 30));
        }

        List<string> lines = test.ReadLines();
        Assert.Contains("\"epsilon\":20,", lines[1], StringComparison.Ordinal);
        lines[1] = lines[1].Replace("\"epsilon\":20,", "\"epsilon\":99999,\"epsilon\":20,", StringComparison.Ordinal);
        test.WriteLinesAndResign(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok, "a line with \"epsilon\" twice verified");
        Assert.Equal("line 2 is not in canonical form (it was edited by hand or by another tool)", result.FirstProblem);
    }

    [Fact]
    public void Verify_InsertedLine_NamesTheLine()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        lines.Insert(3, lines[2]);
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("line 4 has seq 3, expected 4", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_DeletedLine_NamesTheLine()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        lines.RemoveAt(2);
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("line 3 has seq 4, expected 3 (a line before it was deleted", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_ReorderedLines_NamesTheLine()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        (lines[4], lines[5]) = (lines[5], lines[4]);
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("line 5 has seq 6, expected 5", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_TruncatedLine_NamesTheLine()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        lines[2] = lines[2][..(lines[2].Length / 2)];
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("line 3 is not valid JSON", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_LastLinesCutOff_NamesTheCheckpointThatCoversThem()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        test.WriteLines(lines.Take(5));

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.Equal("checkpoints/7.checkpoint covers 7 line(s) but audit.jsonl has only 5 complete line(s): lines were deleted or the log was truncated", result.FirstProblem);
    }

    [Fact]
    public void Verify_ForgedCheckpointSignature_NamesTheCheckpoint()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        string path = Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "4.checkpoint");
        SignedCheckpoint original = SignedCheckpoint.Parse(File.ReadAllText(path));
        byte[] blob = new byte[68];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(blob, original.Signatures[0].KeyId);
        blob[10] = 1;
        File.WriteAllText(path, original.Body + "\n\u2014 " + TestLog.Origin + " " + Convert.ToBase64String(blob) + "\n");

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("checkpoints/4.checkpoint is forged or re-signed: the signature by key securefed.test/aggregator+", result.FirstProblem, StringComparison.Ordinal);
        Assert.Contains("is invalid", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_CheckpointReSignedWithOtherKey_RejectedAgainstPinnedKey()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        using Ed25519PrivateKey attacker = Ed25519PrivateKey.FromSeed(new byte[32]);
        string path = Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "7.checkpoint");
        SignedCheckpoint original = SignedCheckpoint.Parse(File.ReadAllText(path));
        File.WriteAllText(path, SignedCheckpoint.Sign(TestLog.Origin, 7, original.RootHash, attacker).Text);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("checkpoints/7.checkpoint is forged or re-signed: it is not signed by the expected key", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_WholeLogReSignedWithOtherKeyWithoutPinnedKey_CaughtAgainstEarliestCheckpointOrLoggedKey()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        using Ed25519PrivateKey attacker = Ed25519PrivateKey.FromSeed(new byte[32]);
        string folder = Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName);
        foreach (string size in new[] { "4", "7" })
        {
            string path = Path.Combine(folder, size + ".checkpoint");
            SignedCheckpoint original = SignedCheckpoint.Parse(File.ReadAllText(path));
            File.WriteAllText(path, SignedCheckpoint.Sign(TestLog.Origin, original.Size, original.RootHash, attacker).Text);
        }

        AuditVerification keptKeyFile = AuditVerifier.Verify(test.Directory);
        Assert.False(keptKeyFile.Ok);
        Assert.Contains("checkpoints/4.checkpoint is forged or re-signed", keptKeyFile.FirstProblem, StringComparison.Ordinal);

        // The attacker also re-signs the earliest checkpoint and replaces verifier.key: the key named in line 1 still differs.
        string first = Path.Combine(folder, "1.checkpoint");
        SignedCheckpoint one = SignedCheckpoint.Parse(File.ReadAllText(first));
        File.WriteAllText(first, SignedCheckpoint.Sign(TestLog.Origin, 1, one.RootHash, attacker).Text);
        File.WriteAllText(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), File.ReadAllText(Path.Combine(folder, "7.checkpoint")));
        File.WriteAllText(Path.Combine(test.Directory, AuditLog.VerifierKeyFileName), NoteVerifierKey.FromEd25519(TestLog.Origin, attacker.PublicKey) + "\n");

        AuditVerification replacedKeyFile = AuditVerifier.Verify(test.Directory);
        Assert.False(replacedKeyFile.Ok);
        Assert.StartsWith("line 1 (log.opened) names verifier key " + test.VerifierKey, replacedKeyFile.FirstProblem, StringComparison.Ordinal);
        Assert.False(AuditVerifier.Verify(test.Directory, test.VerifierKey).Ok);
    }

    [Fact]
    public void Verify_SuccessiveCheckpointsInconsistent_NamesTheCheckpoint()
    {
        using var test = new TestLog();
        test.Populate(rounds: 3);
        List<string> forked = test.ReadLines();
        forked[5] = forked[5].Replace("\"site\":\"h1\"", "\"site\":\"h9\"", StringComparison.Ordinal);
        byte[] forkRoot = MerkleTree.RootHash([.. forked.Take(7).Select(l => MerkleTree.LeafHash(Encoding.UTF8.GetBytes(l)))]);
        File.WriteAllText(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "7.checkpoint"),
                          SignedCheckpoint.Sign(TestLog.Origin, 7, forkRoot, test.Key).Text);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("checkpoints/7.checkpoint is inconsistent with checkpoints/4.checkpoint and checkpoints/10.checkpoint", result.FirstProblem, StringComparison.Ordinal);
        Assert.EndsWith("(the log signed two different histories)", result.FirstProblem, StringComparison.Ordinal);
        Assert.Single(result.Problems);
    }

    [Fact]
    public void Verify_RollbackAfterAuditorKeptCheckpoint_DetectedOnlyWithPrevious()
    {
        using var test = new TestLog();
        test.Populate(rounds: 3);
        string kept = Path.Combine(test.Directory, "..", Path.GetFileName(test.Directory) + ".kept");
        File.Copy(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), kept);
        try
        {
            // Roll back to size 7: drop lines 8..10 and the checkpoint that covered them.
            test.WriteLines(test.ReadLines().Take(7));
            File.Delete(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "10.checkpoint"));
            File.Copy(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "7.checkpoint"),
                      Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), overwrite: true);

            Assert.True(AuditVerifier.Verify(test.Directory, test.VerifierKey).Ok);
            AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey, kept);

            Assert.False(result.Ok);
            Assert.StartsWith("rollback: the previous checkpoint", result.FirstProblem, StringComparison.Ordinal);
            Assert.Contains("covers 10 line(s) but the log now has only 7", result.FirstProblem, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(kept);
        }
    }

    [Fact]
    public void Verify_HistoryRewrittenAndReSignedWithStolenKey_DetectedWithPrevious()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        string kept = test.Directory + ".kept";
        File.Copy(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), kept);
        try
        {
            List<string> lines = test.ReadLines();
            lines[2] = lines[2].Replace("\"bytes\":1024", "\"bytes\":1", StringComparison.Ordinal);
            test.WriteLines(lines);
            List<byte[]> leaves = [.. lines.Select(l => MerkleTree.LeafHash(Encoding.UTF8.GetBytes(l)))];
            foreach (int size in new[] { 4, 7 })
            {
                string text = SignedCheckpoint.Sign(TestLog.Origin, size, MerkleTree.RootHash(leaves.GetRange(0, size)), test.Key).Text;
                File.WriteAllText(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, $"{size}.checkpoint"), text);
                File.WriteAllText(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), text);
            }

            Assert.True(AuditVerifier.Verify(test.Directory, test.VerifierKey).Ok);
            AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey, kept);
            Assert.StartsWith("history rewritten: lines 1..7 no longer hash to the root", result.FirstProblem, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(kept);
        }
    }

    [Fact]
    public void Verify_LatestPointerRolledBack_NamesCheckpointLatest()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        File.Copy(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "4.checkpoint"),
                  Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), overwrite: true);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("checkpoint.latest (size 4) is older than checkpoints/7.checkpoint", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_AllCheckpointsDeleted_ReportsNothingSigned()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        Directory.Delete(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName), recursive: true);
        File.Delete(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName));

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.StartsWith("no signed checkpoint covers this log", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_MissingDirectory_ReportsNoLog()
    {
        using var test = new TestLog();
        AuditVerification result = AuditVerifier.Verify(test.Directory);
        Assert.False(result.Ok);
        Assert.EndsWith("has no audit.jsonl", result.FirstProblem, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_FolderWithoutLogButKeyGiven_SummaryNamesTheMissingLogAndNoKeyLine()
    {
        // The summary said "verifier key (none) (from nowhere)" and "0 line(s)" of a folder without audit.jsonl,
        // which read as if the --key just given had been ignored.
        using var test = new TestLog();
        Directory.CreateDirectory(test.Directory);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        string summary = result.ToString();

        Assert.False(result.LogFound);
        Assert.StartsWith("FAILED: ", summary, StringComparison.Ordinal);
        Assert.Contains("has no audit.jsonl", summary, StringComparison.Ordinal);
        Assert.DoesNotContain("verifier key", summary, StringComparison.Ordinal);
        Assert.DoesNotContain("line(s)", summary, StringComparison.Ordinal);
    }

    [Fact]
    public void Verify_LogConvertedToCrlf_OneProblemSayingSoNotEveryLineAndVerifiesWhenConvertedBack()
    {
        // A text tool's CR LF conversion was reported as every line "not in canonical form (edited by hand or by another tool)".
        using var test = new TestLog();
        test.Populate(rounds: 2);
        byte[] original = File.ReadAllBytes(test.LogPath);
        int lines = original.Count(b => b == (byte)'\n');
        File.WriteAllText(test.LogPath, File.ReadAllText(test.LogPath).Replace("\n", "\r\n", StringComparison.Ordinal));

        AuditVerification converted = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(converted.Ok);
        Assert.StartsWith($"all {lines} line(s) end with CR LF (Windows line endings) instead of LF", converted.FirstProblem, StringComparison.Ordinal);
        Assert.DoesNotContain(converted.Problems, p => p.Contains("canonical", StringComparison.Ordinal));
        Assert.Equal(lines, converted.Lines);

        File.WriteAllBytes(test.LogPath, original);
        Assert.True(AuditVerifier.Verify(test.Directory, test.VerifierKey).Ok);
    }

    [Fact]
    public void Verify_OneUnsignedTailLineEndsWithCr_NamesThatLineNotAConversion()
    {
        // Review of the CR LF message: one hand-appended line ending in CR was reported only as "1 of 8 line(s) end with
        // CR LF ... converted by a text tool", naming no line.
        using var test = new TestLog();
        test.Populate(rounds: 2);
        List<string> lines = test.ReadLines();
        int last = lines.Count + 1;
        lines.Add(lines[^1].Replace($"\"seq\":{lines.Count}", $"\"seq\":{last}", StringComparison.Ordinal) + "\r");
        test.WriteLines(lines);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);

        Assert.False(result.Ok);
        Assert.Contains(result.Problems, p => p.StartsWith($"line {last} is not in canonical form", StringComparison.Ordinal));
        Assert.DoesNotContain(result.Problems, p => p.Contains("converted by a text tool", StringComparison.Ordinal));
    }

    [Fact]
    public void ParseKey_RawBase64PublicKey_UsesOriginAsName()
    {
        using var test = new TestLog();
        NoteVerifierKey key = AuditVerifier.ParseKey(Convert.ToBase64String(test.Key.PublicKey), TestLog.Origin);
        Assert.Equal(test.VerifierKey, key.ToString());
        Assert.Throws<FormatException>(() => AuditVerifier.ParseKey("not a key", TestLog.Origin));
    }

    [Theory]
    [InlineData("/nonexistent")]
    [InlineData("./keys/verifier.key")]
    [InlineData("/etc/securefed/no-such-verifier.key")]
    public void ParseKey_PathThatDoesNotExist_SaysTheFileDoesNotExist(string path)
    {
        var ex = Assert.Throws<FormatException>(() => AuditVerifier.ParseKey(path, TestLog.Origin));

        Assert.Equal($"key file '{path}' does not exist (a key is given as a file holding it, a verifier key name+hash+base64, or a base64 Ed25519 public key).", ex.Message);
    }

    [Fact]
    public void ParseKey_AFolder_SaysItIsAFolderNotAKeyOfTheWrongLength()
    {
        // "adir" is valid base64 (3 bytes): it said "A base64 Ed25519 public key decodes to 32 bytes, got 3."
        using var test = new TestLog();
        string folder = Path.Combine(test.Directory, "adir");
        Directory.CreateDirectory(folder);

        var ex = Assert.Throws<FormatException>(() => AuditVerifier.ParseKey(folder, TestLog.Origin));

        Assert.StartsWith($"key file '{folder}' is a folder", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("\n", "is empty")]
    [InlineData("{\"seq\":1}\n", "holds no key: it is neither a verifier key")]
    [InlineData("name+hash+notbase64\n", "holds no key: ")]
    public void ParseKey_AFileWithoutAKey_NamesTheFile(string content, string expected)
    {
        // An empty file said only "A base64 Ed25519 public key decodes to 32 bytes, got 0.", naming no file.
        using var test = new TestLog();
        Directory.CreateDirectory(test.Directory);
        string file = Path.Combine(test.Directory, "pinned.key");
        File.WriteAllText(file, content);

        var ex = Assert.Throws<FormatException>(() => AuditVerifier.ParseKey(file, TestLog.Origin));

        Assert.StartsWith($"key file '{file}' ", ex.Message, StringComparison.Ordinal);
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseKey_AFileHoldingTheVerifierKey_ReadsIt()
    {
        using var test = new TestLog();
        Directory.CreateDirectory(test.Directory);
        string file = Path.Combine(test.Directory, "pinned.key");
        File.WriteAllText(file, test.VerifierKey + "\n");

        Assert.Equal(test.VerifierKey, AuditVerifier.ParseKey(file, TestLog.Origin).ToString());
    }

    [Fact]
    public void LogFile_Parse_SplitsCompleteLinesAndTornTail()
    {
        LogFile file = LogFile.Parse("a\nbc\nde"u8.ToArray());
        Assert.Equal(2, file.Lines.Count);
        Assert.Equal("de"u8.ToArray(), file.TornTail);
        Assert.Equal(5, file.TornTailOffset);
        Assert.Equal(3, file.TornLineNumber);
    }
}
