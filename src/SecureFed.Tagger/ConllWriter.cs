namespace SecureFed.Tagger;

/// <summary>Writes <c>token gold predicted</c> lines (blank line between sentences) that conlleval can re-score.</summary>
public static class ConllWriter
{
    /// <summary>Writes gold and predicted tags side by side.</summary>
    /// <param name="writer">Destination.</param>
    /// <param name="gold">Gold sentences.</param>
    /// <param name="predicted">Predicted tags, one list per gold sentence, same lengths.</param>
    /// <exception cref="ArgumentException">Counts or lengths differ.</exception>
    public static void Write(TextWriter writer, IReadOnlyList<Sentence> gold, IReadOnlyList<IReadOnlyList<string>> predicted)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(gold);
        ArgumentNullException.ThrowIfNull(predicted);
        if (gold.Count != predicted.Count)
        {
            throw new ArgumentException($"predicted has {predicted.Count} sentences but gold has {gold.Count}", nameof(predicted));
        }

        for (int s = 0; s < gold.Count; s++)
        {
            Sentence sentence = gold[s];
            if (predicted[s].Count != sentence.Tokens.Count)
            {
                throw new ArgumentException($"sentence {s}: {predicted[s].Count} predicted tags for {sentence.Tokens.Count} tokens", nameof(predicted));
            }

            for (int i = 0; i < sentence.Tokens.Count; i++)
            {
                writer.Write(sentence.Tokens[i]);
                writer.Write(' ');
                writer.Write(sentence.Tags[i]);
                writer.Write(' ');
                writer.WriteLine(predicted[s][i]);
            }

            writer.WriteLine();
        }
    }

    /// <summary>Writes gold and predicted tags to a file (created or overwritten).</summary>
    /// <param name="path">Destination file.</param>
    /// <param name="gold">Gold sentences.</param>
    /// <param name="predicted">Predicted tags.</param>
    public static void WriteFile(string path, IReadOnlyList<Sentence> gold, IReadOnlyList<IReadOnlyList<string>> predicted)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var writer = new StreamWriter(path);
        Write(writer, gold, predicted);
    }
}
