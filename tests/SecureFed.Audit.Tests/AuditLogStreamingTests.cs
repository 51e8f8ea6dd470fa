using System.Text;

using SecureFed.Audit.Internal;

namespace SecureFed.Audit.Tests;

/// <summary>
/// The log is read line by line in bounded memory: the writer's open, 'audit verify' and 'audit prove' read audit.jsonl
/// whole into an array, so an auditor's machine or the aggregator needed memory growing with the log.
/// </summary>
public sealed class AuditLogStreamingTests
{
    private const long TailBytes = 320L << 20;

    /// <summary>
    /// A log followed by 320 MiB of bytes without a newline (sparse where the file system allows). Opening it, verifying it
    /// and proving a line allocated the whole file (verify and open twice: the file and its torn tail); read in chunks,
    /// each allocates less than half of it (the reader's buffer grows to 64 MiB and a byte for the unfinished line, about
    /// 128 MiB allocated in all, then hashes on). Counted bytes allocated on this thread, not process memory. (The tail was
    /// 1 GiB: a GiB of disk and of hashing where files are not sparse.)
    /// </summary>
    [Fact]
    public void OpenVerifyProve_LogWithALargeTornTail_AllocateFarLessThanTheFile()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        long intact = new FileInfo(test.LogPath).Length;
        using (var stream = new FileStream(test.LogPath, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(intact + TailBytes);
        }

        long length = intact + TailBytes;

        long before = GC.GetAllocatedBytesForCurrentThread();
        AuditVerification verify = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        long verifyBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        before = GC.GetAllocatedBytesForCurrentThread();
        AuditInclusionProof proof = AuditInclusionProof.Create(test.Directory, 2);
        long proveBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        before = GC.GetAllocatedBytesForCurrentThread();
        InvalidDataException open = Assert.Throws<InvalidDataException>(() => test.Open());
        long openBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Contains($"line 5 is torn: {TailBytes} byte(s) without a final newline", Assert.Single(verify.Problems), StringComparison.Ordinal);
        Assert.Equal(4, verify.Lines);
        Assert.True(proof.TryVerify(test.VerifierKey, out string? problem), problem);
        Assert.Contains($"line 5 is torn ({TailBytes} bytes without a final newline", open.Message, StringComparison.Ordinal);
        Assert.True(verifyBytes < length / 2, $"verify allocated {verifyBytes:N0} bytes for a {length:N0}-byte file");
        Assert.True(proveBytes < length / 2, $"prove allocated {proveBytes:N0} bytes for a {length:N0}-byte file");
        Assert.True(openBytes < length / 2, $"open allocated {openBytes:N0} bytes for a {length:N0}-byte file");
    }

    /// <summary>A line longer than the reader's buffer (and split across reads) is read whole: written, reopened, verified and proved.</summary>
    [Fact]
    public void OpenVerifyProve_LineLongerThanTheReadBuffer_ReadWhole()
    {
        using var test = new TestLog();
        string payload = string.Concat(Enumerable.Range(0, 30_000).Select(i => (char)('a' + (i % 26)))) + new string('z', 3 * LogReader.BufferBytes);
        using (AuditLog log = test.Open())
        {
            log.Append(AuditEvents.MessageSent, f => f.Add("payload", payload));
            log.Append(AuditEvents.MessageSent, f => f.Add("payload", "short"));
        }

        using (AuditLog reopened = test.Open())
        {
            Assert.Equal(payload, Assert.Single(reopened.ReadEvents(AuditEvents.MessageSent), e => e.Line == 2).Fields.GetProperty("payload").GetString());
        }

        AuditVerification verify = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        AuditInclusionProof proof = AuditInclusionProof.Create(test.Directory, 2);

        Assert.True(verify.Ok, verify.FirstProblem);
        Assert.Contains(payload, proof.Leaf, StringComparison.Ordinal);
        Assert.True(proof.Leaf.Length > 3 * LogReader.BufferBytes);
        Assert.True(proof.TryVerify(test.VerifierKey, out string? problem), problem);
    }

    /// <summary>
    /// Lines of every length across chunk boundaries read as the whole-file split reads them (bytes, numbers, leaf hashes,
    /// torn tail), and a 3 MB file of short lines never grows the buffer beyond its first 64 KiB.
    /// </summary>
    [Fact]
    public void TryReadLine_ManyLinesAcrossChunks_SameAsWholeFileAndBufferNeverGrows()
    {
        string path = Path.Combine(Path.GetTempPath(), "securefed-logreader-" + Guid.NewGuid().ToString("N"));
        try
        {
            var text = new StringBuilder();
            var random = new Random(7);
            while (text.Length < 3_000_000)
            {
                text.Append('x', random.Next(0, 700)).Append('\n');
            }

            text.Append("torn");
            byte[] data = Encoding.ASCII.GetBytes(text.ToString());
            File.WriteAllBytes(path, data);
            LogFile whole = LogFile.Parse(data);

            using LogReader reader = LogReader.Open(path);
            int index = 0;
            while (reader.TryReadLine(out LogLine line))
            {
                Assert.Equal(index + 1, line.Number);
                Assert.True(whole.Lines[index].Span.SequenceEqual(line.Bytes.Span), $"line {index + 1} differs");
                Assert.Equal(MerkleTree.LeafHash(whole.Lines[index].Span), line.LeafHash);
                Assert.Equal(LogReader.BufferBytes, reader.BufferCapacity);
                index++;
            }

            Assert.Equal(whole.LineCount, index);
            Assert.Equal(whole.TornTail!.Length, reader.TornLength);
            Assert.Equal(whole.TornTailOffset, reader.IntactLength);
            Assert.Equal((whole.TornTailOffset, (long)whole.LineCount), reader.FindTornTail());
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A line longer than 64 MiB (sparse NUL bytes, then a newline) is not kept: verify names it with its length, its leaf
    /// hash is still the exact one (taken as it streams).
    /// </summary>
    [Fact]
    public void Verify_LineLongerThanTheLimit_NamedWithItsLengthAndHashedExactly()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        long intact = new FileInfo(test.LogPath).Length;
        const int Long = LogReader.MaxLineBytes + 1000;
        using (var stream = new FileStream(test.LogPath, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(intact + Long);
            stream.Seek(0, SeekOrigin.End);
            stream.Write("\n"u8);
        }

        AuditVerification verify = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        LogLine read;
        using (LogReader reader = LogReader.Open(test.LogPath))
        {
            while (reader.TryReadLine(out read) && read.Number < 5)
            {
            }
        }

        Assert.Equal(5, verify.Lines);
        Assert.Equal("line 5 is 67,109,864 bytes, more than the 67,108,864 a log line can be (no line the writer writes is): edited or corrupted?", Assert.Single(verify.Problems));
        Assert.True(read.Oversize);
        Assert.Equal(MerkleTree.LeafHash(new byte[Long]), read.LeafHash);
    }

    /// <summary>
    /// A line of exactly the limit is kept and parsed, one byte more is named as too long: the buffer stopped at the limit,
    /// so a line of exactly <see cref="LogReader.MaxLineBytes"/> bytes (which the writer writes: it refuses only longer
    /// ones) left no room for its newline and was named as too long; the writer wrote a line its own open then refused.
    /// Lines of NUL bytes in a sparse file; the reader alone (about 200 MB read and hashed).
    /// </summary>
    [Fact]
    public void TryReadLine_LinesOfTheLimitAndOneByteEitherSide_OnlyTheLongerOneIsTooLong()
    {
        const int Max = LogReader.MaxLineBytes;
        string path = Path.Combine(Path.GetTempPath(), "securefed-logreader-" + Guid.NewGuid().ToString("N"));
        try
        {
            long[] newlines = [Max - 1, Max - 1 + 1 + Max, Max - 1 + 1 + Max + 1 + Max + 1];
            using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
            {
                stream.SetLength(newlines[^1] + 1);
                foreach (long at in newlines)
                {
                    stream.Position = at;
                    stream.WriteByte((byte)'\n');
                }
            }

            var lines = new List<(long Length, bool Oversize, int Kept)>();
            byte[]? atTheLimit = null;
            using (LogReader reader = LogReader.Open(path))
            {
                while (reader.TryReadLine(out LogLine line))
                {
                    lines.Add((line.Length, line.Oversize, line.Bytes.Length));
                    atTheLimit = line.Number == 2 ? line.LeafHash : atTheLimit;
                }

                Assert.Equal(0, reader.TornLength);
                Assert.True(reader.BufferCapacity <= Max + 1, $"buffer of {reader.BufferCapacity:N0} bytes");
            }

            (long, bool, int)[] expected = [(Max - 1, false, Max - 1), (Max, false, Max), (Max + 1L, true, 0)];
            Assert.Equal(expected, lines);
            Assert.Equal(MerkleTree.LeafHash(new byte[Max]), atTheLimit);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// Verify reads the file twice (CR LF endings counted, then the lines): an empty line that appears in between in a log
    /// whose every line ended with CR LF threw ArgumentOutOfRangeException (the CR cut off a line without one); it is named.
    /// </summary>
    [Fact]
    public void Verify_EmptyLineAppearsBetweenTheTwoReadsOfACrLfLog_NamedNotThrown()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        List<string> lines = test.ReadLines();
        File.WriteAllText(test.LogPath, string.Concat(lines.Select(l => l + "\r\n")));
        void Edit(string path)
        {
            if (path == test.LogPath)
            {
                File.WriteAllText(path, lines[0] + "\r\n\n" + string.Concat(lines.Skip(1).Select(l => l + "\r\n")));
            }
        }

        AuditVerifier.BetweenReads += Edit;
        AuditVerification verify;
        try
        {
            verify = AuditVerifier.Verify(test.Directory, test.VerifierKey);
        }
        finally
        {
            AuditVerifier.BetweenReads -= Edit;
        }

        Assert.Contains(verify.Problems, p => p.StartsWith("all 4 line(s) end with CR LF", StringComparison.Ordinal));
        Assert.Contains(verify.Problems, p => p.StartsWith("line 2 is blank, but no log line is empty", StringComparison.Ordinal));
        Assert.Equal(lines.Count + 1, verify.Lines);
    }

    /// <summary>
    /// The torn tail's copy into quarantine/ goes through a new temporary file of a unique name: it was written to the
    /// quarantined name + ".tmp" with FileMode.Create, so a folder (or a named pipe: the repair hung) of that name made the
    /// repair fail.
    /// </summary>
    [Fact]
    public void Open_RepairTornTailWithAFolderAtTheOldTemporaryName_Repaired()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        int complete = test.ReadLines().Count;
        byte[] partial = "{\"seq\":5,\"ts\":\"20"u8.ToArray();
        using (var stream = new FileStream(test.LogPath, FileMode.Append))
        {
            stream.Write(partial);
        }

        string quarantine = Path.Combine(test.Directory, AuditLog.QuarantineDirectoryName);
        string name = $"torn-line-{complete + 1}-{TestLog.Clock.GetUtcNow().UtcDateTime:yyyyMMddTHHmmssfffZ}.bin";
        Directory.CreateDirectory(Path.Combine(quarantine, name + ".tmp"));

        using (AuditLog log = test.Open(repairTornTail: true))
        {
            Assert.Equal(complete + 2, log.Size);
        }

        Assert.Equal(partial, File.ReadAllBytes(Path.Combine(quarantine, name)));
        Assert.True(AuditVerifier.Verify(test.Directory, test.VerifierKey).Ok);
    }

    /// <summary>
    /// A torn tail cut while it is copied (the log shortened under the reader) fails the copy and leaves nothing in the
    /// quarantine folder: the temporary file stayed behind.
    /// </summary>
    [Fact]
    public void CopyTailTo_LogCutDuringTheCopy_FailsAndLeavesNoFile()
    {
        using var test = new TestLog();
        test.Populate(rounds: 1);
        long intact = new FileInfo(test.LogPath).Length;
        using (var stream = new FileStream(test.LogPath, FileMode.Open, FileAccess.Write))
        {
            stream.SetLength(intact + (3 * LogReader.BufferBytes));
        }

        string folder = Path.Combine(test.Directory, "copies");
        Directory.CreateDirectory(folder);
        using (LogReader reader = LogReader.Open(test.LogPath))
        {
            using (var stream = new FileStream(test.LogPath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            {
                stream.SetLength(intact + LogReader.BufferBytes);
            }

            InvalidDataException ex = Assert.Throws<InvalidDataException>(() => reader.CopyTailTo(intact, Path.Combine(folder, "tail.bin")));
            Assert.Contains("was cut while it was read", ex.Message, StringComparison.Ordinal);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
    }

    /// <summary>The writer refuses a line readers would name as too long, and writes nothing.</summary>
    [Fact]
    public void Append_LineLongerThanTheLimit_RefusedAndNothingWritten()
    {
        using var test = new TestLog();
        using AuditLog log = test.Open();
        long size = new FileInfo(test.LogPath).Length;

        ArgumentException ex = Assert.Throws<ArgumentException>(() => log.Append(AuditEvents.MessageSent, f => f.Add("payload", new string('x', LogReader.MaxLineBytes))));

        Assert.Contains("longer than the 67,108,864 an audit line can be; it was not written", ex.Message, StringComparison.Ordinal);
        Assert.Equal(size, new FileInfo(test.LogPath).Length);
        Assert.Equal(2, log.Append(AuditEvents.MessageSent, f => f.Add("payload", "after")));
    }
}
