namespace SecureFed.Cli.Demo;

/// <summary>Finds the NCBI-disease corpus shipped in the repository (<c>data/ncbi-disease</c>).</summary>
internal static class DemoCorpus
{
    /// <summary>The folder, relative to the repository root, that holds train.tsv, dev.tsv and test.tsv.</summary>
    public static readonly string RelativeDirectory = Path.Combine("data", "ncbi-disease");

    /// <summary>
    /// Looks for <see cref="RelativeDirectory"/> in the current directory, the executable's directory and each of
    /// their parents (so both <c>dotnet run --project src/SecureFed.Cli</c> from the clone and the built executable
    /// find it). Returns null, and the places searched, when it is not there.
    /// </summary>
    public static string? Locate(out IReadOnlyList<string> searched)
    {
        var seen = new List<string>();
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (DirectoryInfo? dir = new(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, RelativeDirectory);
                if (seen.Contains(candidate))
                {
                    break;
                }

                seen.Add(candidate);
                if (new[] { "train.tsv", "dev.tsv", "test.tsv" }.All(f => File.Exists(Path.Combine(candidate, f))))
                {
                    searched = seen;
                    return candidate;
                }
            }
        }

        searched = seen;
        return null;
    }
}
