using System.Text;
using System.Text.Json;

using SecureFed.Audit.Internal;
using SecureFed.Testing;

using Xunit.Abstractions;

namespace SecureFed.Audit.Tests;

public sealed class AuditLogTests(ITestOutputHelper output)
{
    [Fact]
    public void Open_NewDirectory_WritesOpenedEventVerifierKeyAndFirstCheckpoint()
    {
        using var test = new TestLog();
        using (AuditLog log = test.Open())
        {
            Assert.Equal(1, log.Size);
            Assert.Equal(test.VerifierKey, log.VerifierKey);
            Assert.Equal(1, log.LatestCheckpoint!.Size);
        }

        using JsonDocument first = JsonDocument.Parse(test.ReadLines()[0]);
        Assert.Equal(AuditEvents.LogOpened, first.RootElement.GetProperty("type").GetString());
        Assert.Equal(test.VerifierKey, first.RootElement.GetProperty("fields").GetProperty("verifier_key").GetString());
        Assert.Equal(test.VerifierKey + "\n", File.ReadAllText(Path.Combine(test.Directory, AuditLog.VerifierKeyFileName)));
        Assert.True(File.Exists(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "1.checkpoint")));
    }

    [Fact]
    public void Append_SeveralEvents_ReturnsLineNumbersAndRootMatchesTreeOfLines()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        long a = log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        long b = log.Append(AuditEvents.RoundJoined, f => f.Add("round", 2));
        Assert.Equal((2L, 3L), (a, b));

        List<byte[]> leaves = [.. test.ReadLines().Select(l => MerkleTree.LeafHash(Encoding.UTF8.GetBytes(l)))];
        Assert.Equal(MerkleTree.RootHash(leaves), log.RootHash());
    }

    [Fact]
    public void Checkpoint_AfterAppends_StoresSignedCheckpointFilesForCurrentSize()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        SignedCheckpoint checkpoint = log.Checkpoint();

        Assert.Equal(2, checkpoint.Size);
        Assert.Equal(log.RootHash(), checkpoint.RootHash);
        Assert.True(checkpoint.Verify(NoteVerifierKey.Parse(log.VerifierKey)));
        Assert.Equal(checkpoint.Text, File.ReadAllText(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "2.checkpoint")));
        Assert.Equal(checkpoint.Text, File.ReadAllText(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName)));
        Assert.Same(checkpoint, log.Checkpoint());
    }

    [Fact]
    public void Open_ExistingLog_VerifiesAndContinuesSequence()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        int before = test.ReadLines().Count;

        using (AuditLog log = test.Open())
        {
            Assert.Equal(before + 1, log.Size);
            Assert.Equal(before + 2, log.Append(AuditEvents.RoundJoined, f => f.Add("round", 3)));
        }

        Assert.True(AuditVerifier.Verify(test.Directory, test.VerifierKey).Ok);
    }

    [Fact]
    public void Open_ExistingLogWithEditedLine_ThrowsInvalidData()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        List<string> lines = test.ReadLines();
        lines[2] = lines[2].Replace("1024", "2048", StringComparison.Ordinal);
        test.WriteLines(lines);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => test.Open());
        Assert.Contains("no longer hash to the signed root", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LogReader_SparseFileLargerThanAnArray_OpenedAndReadAtOffsetsPastTwoGibibytes()
    {
        // A file over 2 GiB was refused as "not a log this product wrote", a cap left from reading the file into one array:
        // an aggregator that had written some 9.7 million lines could not reopen or verify its own log, and 'bench audit
        // --memory-lines 10000000' wrote a valid log that verify then refused. Read in chunks at long offsets, any length
        // is read: the torn tail at the end of a 3 GiB sparse file (no disk used) is found by the backward search and
        // copied from past 2^31 (reading all 3 GiB, as open and verify would, is left out: slow on a shared machine).
        using var test = new TestLog();
        test.Populate(rounds: 1);
        const long Length = 3L << 30;
        byte[] end = "}\n{\"seq\":5,\"ts"u8.ToArray();
        using (var stream = new FileStream(test.LogPath, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(Length - end.Length); // sparse: no disk is used
            stream.Seek(0, SeekOrigin.End);
            stream.Write(end);
        }

        string copy = Path.Combine(test.Directory, "tail.bin");
        using (LogReader reader = LogReader.Open(test.LogPath))
        {
            Assert.Equal(Length, reader.Length);
            long intact = Length - end.Length + 2;
            Assert.Equal(intact, reader.TornTailStart());
            Assert.Equal(System.Security.Cryptography.SHA256.HashData(end[2..]), reader.CopyTailTo(intact, copy));
        }

        Assert.Equal(end[2..], File.ReadAllBytes(copy));
    }

    [Fact]
    public void OpenAndVerify_FolderNamedLikeTheLog_SaidToBeAFolder()
    {
        // 'audit verify' said the folder "has no audit.jsonl" of a folder that has one, as a folder.
        using var test = new TestLog();
        System.IO.Directory.CreateDirectory(test.LogPath);

        InvalidDataException open = Assert.Throws<InvalidDataException>(() => test.Open());
        AuditVerification verify = AuditVerifier.Verify(test.Directory);

        Assert.Contains("is a folder, not the audit log file", open.Message, StringComparison.Ordinal);
        Assert.Contains(verify.Problems, p => p.Contains("is a folder, not the log file", StringComparison.Ordinal));
    }

    [Fact]
    public void Open_ExistingLogWithDifferentKey_Refuses()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        using var other = SecureFed.Crypto.Ed25519PrivateKey.FromSeed(new byte[32]);
        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(
            () => AuditLog.Open(test.Directory, TestLog.Actor, other, TestLog.Origin, TestLog.Clock));
        Assert.Contains("different key", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_SecondWriterOnSameDirectory_Refuses()
    {
        using var test = new TestLog();
        using AuditLog first = test.Open();
        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(() => test.Open());
        Assert.Contains("already open", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Append_ManyThreadsOneLog_NoLostOrTornLinesAndVerifies()
    {
        using var test = new TestLog();
        const int Threads = 8;
        const int PerThread = 100;
        var seqs = new System.Collections.Concurrent.ConcurrentBag<long>();
        using (AuditLog log = test.Open())
        {
            Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, t =>
            {
                for (int i = 0; i < PerThread; i++)
                {
                    seqs.Add(log.Append(AuditEvents.MessageSent, f => f.Add("thread", t).Add("i", i).Add("payload", new string('x', 200 + t))));
                    if (i % 25 == 0)
                    {
                        log.Checkpoint();
                    }
                }
            });
        }

        Assert.Equal(Enumerable.Range(2, Threads * PerThread).Select(i => (long)i), seqs.Order());
        List<string> lines = test.ReadLines();
        Assert.Equal(1 + (Threads * PerThread), lines.Count);
        var seen = new HashSet<(int, int)>();
        foreach (string line in lines.Skip(1))
        {
            using JsonDocument doc = JsonDocument.Parse(line);
            JsonElement fields = doc.RootElement.GetProperty("fields");
            Assert.True(seen.Add((fields.GetProperty("thread").GetInt32(), fields.GetProperty("i").GetInt32())));
        }

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        Assert.True(result.Ok, result.FirstProblem);
        Assert.Equal(lines.Count, result.CoveredLines);
    }

    [Fact]
    public void Open_LogCutMidLine_ReportsTornLineAndEarlierLinesStayVerifiable()
    {
        using var test = new TestLog();
        test.Populate(rounds: 2);
        int complete = test.ReadLines().Count;
        byte[] partial = Encoding.UTF8.GetBytes("{\"seq\":" + (complete + 1) + ",\"ts\":\"2026-11-29T08:00:00.00");
        using (var stream = new FileStream(test.LogPath, FileMode.Append))
        {
            stream.Write(partial);
        }

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => test.Open());
        Assert.Contains($"line {complete + 1} is torn", ex.Message, StringComparison.Ordinal);

        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        Assert.False(result.Ok);
        Assert.Contains($"line {complete + 1} is torn", result.FirstProblem, StringComparison.Ordinal);
        Assert.Equal(complete, result.Lines);
        Assert.Equal(complete, result.CoveredLines);
        Assert.Single(result.Problems);
    }

    [Fact]
    public void Open_RepairTornTail_QuarantinesBytesLogsEventAndVerifies()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        int complete = test.ReadLines().Count;
        byte[] partial = "{\"seq\":99,\"ts\":\"20"u8.ToArray();
        using (var stream = new FileStream(test.LogPath, FileMode.Append))
        {
            stream.Write(partial);
        }

        using (AuditLog log = test.Open(repairTornTail: true))
        {
            Assert.Equal(complete + 2, log.Size);
        }

        string[] quarantined = Directory.GetFiles(Path.Combine(test.Directory, AuditLog.QuarantineDirectoryName));
        Assert.Equal(partial, File.ReadAllBytes(Assert.Single(quarantined)));
        using JsonDocument repaired = JsonDocument.Parse(test.ReadLines()[complete]);
        Assert.Equal(AuditEvents.TornTailQuarantined, repaired.RootElement.GetProperty("type").GetString());
        Assert.Equal(partial.Length, repaired.RootElement.GetProperty("fields").GetProperty("bytes").GetInt32());
        AuditVerification result = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        Assert.True(result.Ok, result.FirstProblem);
    }

    [Fact]
    public void Open_SignedLastLineCutShort_RefusedAsNoCrashWithoutRepairHint()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1); // closing the log signs every line, the last one included
        int lines = test.ReadLines().Count;
        byte[] all = File.ReadAllBytes(test.LogPath);
        byte[] cut = all[..^20];
        File.WriteAllBytes(test.LogPath, cut);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => test.Open());

        Assert.Contains($"line {lines} is cut short", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"signed {lines} complete line(s)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("no crash mid-write", ex.Message, StringComparison.Ordinal);
        Assert.IsNotType<AuditLogTornTailException>(ex.InnerException); // the services add no RepairTornAuditTail hint
        Assert.Equal(cut, File.ReadAllBytes(test.LogPath));
    }

    [Fact]
    public void Open_RepairTornTail_SignedLastLineCutShort_RefusesAndMovesNothing()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        byte[] cut = File.ReadAllBytes(test.LogPath)[..^20];
        File.WriteAllBytes(test.LogPath, cut);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => test.Open(repairTornTail: true));

        Assert.Contains("a torn-tail repair would discard a signed line", ex.Message, StringComparison.Ordinal);
        Assert.Equal(cut, File.ReadAllBytes(test.LogPath));
        Assert.False(Directory.Exists(Path.Combine(test.Directory, AuditLog.QuarantineDirectoryName)));
    }

    [Fact]
    public void Checkpoint_LatestOnDiskReplacedByInconsistentCheckpoint_Refuses()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        log.Checkpoint();
        SignedCheckpoint fork = SignedCheckpoint.Sign(TestLog.Origin, 2, new byte[32], test.Key);
        File.WriteAllText(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), fork.Text);
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 2));

        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(log.Checkpoint);
        Assert.Contains("inconsistent", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Checkpoint_LatestOnDiskReplacedByAnEarlierCheckpointOfThisLog_Signs()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        string first = File.ReadAllText(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "1.checkpoint"));
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        log.Checkpoint();
        File.WriteAllText(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), first);
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 2));

        Assert.Equal(3, log.Checkpoint().Size);
    }

    /// <summary>
    /// checkpoint.latest replaced by an earlier checkpoint of this log makes signing read audit.jsonl again. When that file
    /// changed under the writer (fewer lines; a folder or a named pipe in its place), the refusal blamed checkpoint.latest
    /// ("inconsistent with this log") or let InvalidDataException out of Checkpoint and Dispose; now it names the log file.
    /// </summary>
    [Theory]
    [InlineData("fewer lines")]
    [InlineData("folder")]
    [InlineData("named pipe")]
    public void Checkpoint_LogFileReplacedUnderTheWriter_RefusedNamingTheFileAndDisposeDoesNotThrow(string replacement)
    {
        using var test = new TestLog();
        AuditLog log = test.Open();
        string first = File.ReadAllText(Path.Combine(test.Directory, AuditLog.CheckpointDirectoryName, "1.checkpoint"));
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        log.Checkpoint();
        File.WriteAllText(Path.Combine(test.Directory, AuditLog.LatestCheckpointFileName), first);
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 2));
        string firstLine = test.ReadLines()[0];
        File.Delete(test.LogPath);
        string? fifo = null;
        switch (replacement)
        {
            case "fewer lines":
                File.WriteAllText(test.LogPath, firstLine + "\n");
                break;
            case "folder":
                Directory.CreateDirectory(test.LogPath);
                break;
            default:
                fifo = NamedPipe.Make(test.LogPath, output);
                if (fifo is null)
                {
                    log.Dispose();
                    return;
                }

                break;
        }

        Exception thrown = NamedPipe.ThrownPromptly(fifo, () => log.Checkpoint());
        InvalidOperationException ex = Assert.IsType<InvalidOperationException>(thrown);
        Assert.StartsWith($"Refusing to sign a checkpoint for size 3: the log file {test.LogPath} changed under this writer: ", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(AuditLog.LatestCheckpointFileName, ex.Message, StringComparison.Ordinal);
        Assert.Null(Record.Exception(log.Dispose)); // it signs the unsigned tail too, and must not throw
        Assert.Throws<ObjectDisposedException>(() => log.Append(AuditEvents.RoundJoined, f => f.Add("round", 3)));
    }

    [Fact]
    public void ReadEvents_LineEditedUnderTheOpenLog_RefusedNamingTheFile()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        log.Append(AuditEvents.RoundJoined, f => f.Add("round", 1));
        Assert.Single(log.ReadEvents(AuditEvents.RoundJoined));
        byte[] bytes = File.ReadAllBytes(test.LogPath);
        string text = Encoding.UTF8.GetString(bytes).Replace("\"round\":1", "\"round\":7", StringComparison.Ordinal);
        File.WriteAllText(test.LogPath, text);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => log.ReadEvents(AuditEvents.RoundJoined));
        Assert.Contains(test.LogPath, ex.Message, StringComparison.Ordinal);
        Assert.Contains("changed on disk", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The writer of a long-running federation's log keeps no state per line: it kept every line's leaf hash (some 60 bytes
    /// a line, for as long as the aggregator or agent ran), where the compact range's roots (at most 64) and the last
    /// checkpoint are all appending and checkpointing need. Walks the log's object graph and counts collection entries.
    /// </summary>
    [Fact]
    public void AppendAndReopen_ManyLines_WriterKeepsNoStatePerLine()
    {
        using var test = new TestLog();
        using (AuditLog first = test.Open())
        {
            for (int i = 0; i < 300; i++)
            {
                first.Append(AuditEvents.RoundJoined, f => f.Add("round", i));
            }
        }

        using AuditLog log = test.Open();
        for (int i = 0; i < 300; i++)
        {
            log.Append(AuditEvents.RoundJoined, f => f.Add("round", i));
        }

        log.Checkpoint();
        Assert.Equal(600, log.ReadEvents(AuditEvents.RoundJoined).Count);

        Assert.True(log.Size > 600);
        Assert.InRange(LargestCollection(log), 0, 64);
    }

    /// <summary>The most entries any collection reachable from <paramref name="root"/> through SecureFed.Audit objects holds (arrays of bytes or chars not counted).</summary>
    private static int LargestCollection(object root)
    {
        var seen = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<object>();
        pending.Push(root);
        int largest = 0;
        while (pending.Count > 0)
        {
            object current = pending.Pop();
            if (!seen.Add(current))
            {
                continue;
            }

            if (current is System.Collections.ICollection collection)
            {
                if (current is not byte[] and not char[])
                {
                    largest = Math.Max(largest, collection.Count);
                    foreach (object? item in collection)
                    {
                        if (item is not null && !item.GetType().IsPrimitive)
                        {
                            pending.Push(item);
                        }
                    }
                }

                continue;
            }

            if (current.GetType().Assembly != typeof(AuditLog).Assembly)
            {
                continue;
            }

            for (Type? type = current.GetType(); type is not null; type = type.BaseType)
            {
                foreach (System.Reflection.FieldInfo field in type.GetFields(System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.DeclaredOnly))
                {
                    if (!field.FieldType.IsValueType && field.GetValue(current) is { } value)
                    {
                        pending.Push(value);
                    }
                }
            }
        }

        return largest;
    }
}
