using System.Text;

namespace SecureFed.Reliability.Tests;

/// <summary>Seeded mutation of text and bytes, and a check that a parser fails only in its documented ways.</summary>
internal static class Fuzz
{
    private const string Alphabet = "\t\n\r \"{}[]:,.-+0123456789eEabcxyzBIO-_/\\=#\u0000\u00e9\u2028\ud83d\ude00";

    public static string Mutate(Random random, string seed)
    {
        var text = new StringBuilder(seed);
        int operations = random.Next(1, 5);
        for (int k = 0; k < operations; k++)
        {
            int at = text.Length == 0 ? 0 : random.Next(text.Length);
            switch (random.Next(6))
            {
                case 0 when text.Length > 0:
                    text[at] = Alphabet[random.Next(Alphabet.Length)];
                    break;
                case 1 when text.Length > 0:
                    text.Remove(at, Math.Min(text.Length - at, random.Next(1, 40)));
                    break;
                case 2:
                    for (int i = random.Next(1, 12); i > 0; i--)
                    {
                        text.Insert(at, Alphabet[random.Next(Alphabet.Length)]);
                    }

                    break;
                case 3 when text.Length > 0:
                    int length = Math.Min(text.Length - at, random.Next(1, 200));
                    text.Insert(random.Next(text.Length), text.ToString(at, length));
                    break;
                case 4:
                    text.Length = at;
                    break;
                default:
                    text.Insert(at, random.Next(3) switch { 0 => "1e309", 1 => "-9223372036854775809", _ => "NaN" });
                    break;
            }
        }

        return text.ToString();
    }

    public static byte[] MutateBytes(Random random, byte[] seed)
    {
        var bytes = new List<byte>(seed);
        for (int k = random.Next(1, 5); k > 0; k--)
        {
            int at = bytes.Count == 0 ? 0 : random.Next(bytes.Count);
            switch (random.Next(4))
            {
                case 0 when bytes.Count > 0:
                    bytes[at] ^= (byte)(1 << random.Next(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, random.Next(1, 16)));
                    break;
                case 2:
                    byte[] extra = new byte[random.Next(1, 16)];
                    random.NextBytes(extra);
                    bytes.InsertRange(at, extra);
                    break;
                case 3 when bytes.Count > 0:
                    bytes[at] = 0xFF;
                    break;
                default:
                    bytes.Insert(at, 0xC3); // a lone UTF-8 lead byte
                    break;
            }
        }

        return [.. bytes];
    }

    /// <summary>
    /// Runs <paramref name="parse"/>; passes when it succeeds or throws one of <paramref name="documented"/> with a
    /// message; fails naming the input otherwise. Returns true when it threw a documented exception.
    /// </summary>
    public static bool Check(string what, string input, Action parse, params Type[] documented)
    {
        try
        {
            parse();
            return false;
        }
        catch (Exception ex) when (documented.Any(t => t.IsInstanceOfType(ex)))
        {
            Assert.False(string.IsNullOrWhiteSpace(ex.Message), $"{what}: {ex.GetType().Name} without a message");
            return true;
        }
        catch (Exception ex)
        {
            Assert.Fail($"{what}: undocumented {ex}\ninput (escaped): {Escape(input)}\nAdd it to tests/SecureFed.Reliability.Tests/corpus/.");
            return false;
        }
    }

    public static string Escape(string input) => input.Length > 2000
        ? System.Text.Json.JsonSerializer.Serialize(input[..2000]) + "..."
        : System.Text.Json.JsonSerializer.Serialize(input);

    /// <summary>The kept corpus files whose names start with <paramref name="prefix"/>.</summary>
    public static IEnumerable<string> Corpus(string prefix)
    {
        string dir = Path.Combine(AppContext.BaseDirectory, "corpus");
        return Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir, prefix + "*").Order(StringComparer.Ordinal).Select(File.ReadAllText)
            : [];
    }

    /// <summary>The shared data folder (../shared/data from the repository root), or null.</summary>
    public static string? SharedData()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "SecureFed.sln")))
            {
                string data = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data"));
                return Directory.Exists(data) ? data : null;
            }
        }

        return null;
    }
}
