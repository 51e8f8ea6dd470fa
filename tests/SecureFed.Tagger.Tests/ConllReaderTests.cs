namespace SecureFed.Tagger.Tests;

public sealed class ConllReaderTests
{
    private static List<Sentence> ReadText(string text) => [.. ConllReader.Read(new StringReader(text), "mem.tsv")];

    [Fact]
    public void Read_TabSeparatedIob2_ReturnsSentencesSplitOnBlankLines()
    {
        var sentences = ReadText("The\tO\nBRCA1\tB-Genetics\ngene\tO\n\nFever\tB-Symptom\n.\tO\n");

        Assert.Equal(2, sentences.Count);
        Assert.Equal(new[] { "The", "BRCA1", "gene" }, sentences[0].Tokens);
        Assert.Equal(new[] { "O", "B-Genetics", "O" }, sentences[0].Tags);
        Assert.Equal(new[] { "Fever", "." }, sentences[1].Tokens);
    }

    [Fact]
    public void Read_SpaceSeparatedWithExtraColumns_UsesFirstAndLastColumn()
    {
        var sentences = ReadText("-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n");

        Sentence s = Assert.Single(sentences);
        Assert.Equal(new[] { "EU", "rejects" }, s.Tokens);
        Assert.Equal(new[] { "B-ORG", "O" }, s.Tags);
    }

    [Fact]
    public void Read_DocstartBetweenSentencesWithoutBlankLine_EndsSentence()
    {
        var sentences = ReadText("a\tO\n-DOCSTART-\tO\nb\tO\n");

        Assert.Equal(2, sentences.Count);
    }

    [Fact]
    public void Read_Iob1_ConvertsChunkOpeningIToB()
    {
        var s = Assert.Single(ReadText("x\tI-Drug\ny\tI-Drug\nz\tB-Drug\nw\tO\nv\tI-Disease\nu\tI-Drug\n"));

        Assert.Equal(new[] { "B-Drug", "I-Drug", "B-Drug", "O", "B-Disease", "B-Drug" }, s.Tags);
    }

    [Fact]
    public void Read_UntypedBio_MapsToEntityType()
    {
        var s = Assert.Single(ReadText("IL\tB\n2\tI\nx\tO\n"));

        Assert.Equal(new[] { "B-Entity", "I-Entity", "O" }, s.Tags);
    }

    [Fact]
    public void Read_SingleColumnLine_ThrowsWithSourceAndLineNumber()
    {
        var ex = Assert.Throws<InputDataException>(() => ReadText("a\tO\n\nb\tO\nbroken\n"));

        Assert.StartsWith("mem.tsv:4:", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_InvalidTag_ThrowsWithLineNumberAndTag()
    {
        var ex = Assert.Throws<InputDataException>(() => ReadText("a\tO\nb\tX-Drug\n"));

        Assert.StartsWith("mem.tsv:2:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("X-Drug", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Ataxia\tB-Disease\nis\tO\tO\n", 2, "3 columns, but line 1 has 2")] // a 'token gold predicted' line among TOKEN<TAB>TAG ones
    [InlineData("New York B-Location\nis O\n", 2, "2 columns, but line 1 has 3")] // a token with a space in a space-separated file
    [InlineData("a\tO\n\nb\tNN\tO\n", 3, "3 columns, but line 1 has 2")]
    public void Read_LineWithAnotherNumberOfColumnsThanTheFirst_ThrowsNamingBothLines(string text, int line, string problem)
    {
        // The tag is the last column and the token the first: a line of another width was read silently, its middle
        // column dropped (the predicted tag of a conll-out file trained as gold, "York" of "New York" lost).
        var ex = Assert.Throws<InputDataException>(() => ReadText(text));

        Assert.StartsWith($"mem.tsv:{line}: {problem}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_OtherNumberOfColumnsAfterDocstart_ReadAsANewDocument()
    {
        var sentences = ReadText("BRCA1\tO\ncancer\tB-Disease\n\n-DOCSTART- -X- O O\n\nAspirin NN B-Drug\n");

        Assert.Equal(2, sentences.Count);
        Assert.Equal(new[] { "B-Drug" }, sentences[1].Tags);
    }

    [Fact]
    public void Read_SameNumberOfColumnsOnEveryLineWithCrLfAndTrailingTab_Read()
    {
        var sentences = ReadText("EU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\n\r\nGerman JJ B-NP B-MISC\t\r\n");

        Assert.Equal(2, sentences.Count);
        Assert.Equal(new[] { "B-ORG", "O" }, sentences[0].Tags);
        Assert.Equal(new[] { "B-MISC" }, sentences[1].Tags);
    }

    [Fact]
    public void Read_LineLongerThanTheLimit_ThrowsNamingTheLineAndTheLimit()
    {
        // A file without line breaks was read whole into one line until the runtime's string limit ended the run with an
        // OutOfMemoryException and a stack trace.
        string text = "a\tO\n\n" + new string('x', (1 << 20) + 1) + "\tO\n";

        var ex = Assert.Throws<InputDataException>(() => ReadText(text));

        Assert.StartsWith("mem.tsv:3: line longer than 1,048,576 characters (starting \"xxxx", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_LineBreaksLfCrLfAndCr_SameLinesAsReadLine()
    {
        var sentences = ReadText("a\tO\r\nb\tB-Drug\rc\tI-Drug\n\r\nd\tO\re\tO");

        Assert.Equal(2, sentences.Count);
        Assert.Equal(new[] { "a", "b", "c" }, sentences[0].Tokens);
        Assert.Equal(new[] { "d", "e" }, sentences[1].Tokens);
    }

    [Fact]
    public void ReadFile_MissingFile_ThrowsFileNotFoundNamingPath()
    {
        string path = Path.Combine(Path.GetTempPath(), "securefed-missing-" + Guid.NewGuid().ToString("N") + ".tsv");

        var ex = Assert.Throws<FileNotFoundException>(() => ConllReader.ReadFile(path));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ReadFile_Latin1Bytes_RefusedNamingTheFileInsteadOfReplacementCharacters(bool utf8Bom)
    {
        string path = Path.Combine(Path.GetTempPath(), "securefed-latin1-" + Guid.NewGuid().ToString("N") + ".tsv");
        byte[] bom = utf8Bom ? [0xEF, 0xBB, 0xBF] : [];
        File.WriteAllBytes(path, [.. bom, .. "Fever\tB-Symptom\n\nCaf"u8, 0xE9, .. "\tO\n"u8]);
        try
        {
            var ex = Assert.Throws<InputDataException>(() => ConllReader.ReadFile(path).ToList());

            // The line and column, not only the file: the decoder reads ahead in blocks and could not say where (session 55).
            Assert.StartsWith($"{path}:3: not UTF-8 text (byte 0xE9 at column 4, byte offset {bom.Length + 20});", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ReadTextAsync_BinaryOrLatin1Bytes_RefusedNamingTheSource(bool utf8Bom)
    {
        // tagger predict read its input leniently and tagged a binary file's U+FFFD tokens, exit 0.
        byte[] bom = utf8Bom ? [0xEF, 0xBB, 0xBF] : [];
        using var stream = new MemoryStream([.. bom, .. "Caf"u8, 0xE9, 0xD0, 0x4A, 0x33, 0xE7, 0x47, 0xEC]);

        var ex = await Assert.ThrowsAsync<InputDataException>(() => ConllReader.ReadTextAsync(stream, "/data/in.bin", CancellationToken.None));

        Assert.StartsWith($"/data/in.bin:1: not UTF-8 text (byte 0xE9 at column 4, byte offset {bom.Length + 3});", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadTextAsync_Utf8WithBom_TextWithoutTheBom()
    {
        using var stream = new MemoryStream([0xEF, 0xBB, 0xBF, .. "Ménière disease\nsecond line"u8]);

        string text = await ConllReader.ReadTextAsync(stream, "stdin", CancellationToken.None);

        Assert.Equal("Ménière disease\nsecond line", text);
    }

    [Fact]
    public void ReadFile_Utf8WithBomAndAccents_Read()
    {
        string path = Path.Combine(Path.GetTempPath(), "securefed-utf8-" + Guid.NewGuid().ToString("N") + ".tsv");
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. "Ménière\tB-Disease\ndisease\tI-Disease\n"u8]);
        try
        {
            Sentence sentence = Assert.Single(ConllReader.ReadFile(path));

            Assert.Equal(["Ménière", "disease"], sentence.Tokens);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Read_IsStreaming_YieldsFirstSentenceBeforeMalformedTail()
    {
        using var reader = new StringReader("a\tO\n\nbad\n");
        using var e = ConllReader.Read(reader, "s").GetEnumerator();

        Assert.True(e.MoveNext());
        Assert.Equal("a", e.Current.Tokens[0]);
        Assert.Throws<InputDataException>(() => e.MoveNext());
    }

    [Fact]
    public void ConllWriter_Write_ProducesTokenGoldPredictedLines()
    {
        var gold = new[] { new Sentence(["a", "b"], ["B-Drug", "O"]) };
        var predicted = new IReadOnlyList<string>[] { ["O", "O"] };
        using var writer = new StringWriter();

        ConllWriter.Write(writer, gold, predicted);

        string[] lines = writer.ToString().Split('\n');
        Assert.Equal("a B-Drug O", lines[0].TrimEnd('\r'));
        Assert.Equal("b O O", lines[1].TrimEnd('\r'));
        Assert.Equal(string.Empty, lines[2].TrimEnd('\r'));
    }

    [Fact]
    public void TextTokenizer_Tokenize_SplitsPunctuation()
    {
        Assert.Equal(new[] { "BRCA1", "-", "positive", ",", "on", "5", "mg", "." }, TextTokenizer.Tokenize("BRCA1-positive, on 5 mg."));
    }
}
