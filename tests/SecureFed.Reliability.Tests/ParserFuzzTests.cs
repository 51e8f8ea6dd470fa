using Google.Protobuf;
using Microsoft.Extensions.Configuration;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Crypto;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Tagger;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Seeded mutation fuzzing of every parser that reads untrusted bytes: only the documented exception types, each with
/// a message; never a crash, a hang or another exception. Seeds: valid inputs, the kept corpus, real CoNLL files.
/// </summary>
public sealed class ParserFuzzTests : IDisposable
{
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(60);
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-fuzz-").FullName;

    [Fact]
    public async Task ConllReader_MutatedInput_OnlyInputDataException()
    {
        var seeds = new List<string> { "BRCA1\tO\nis\tO\nbreast\tB-Disease\ncancer\tI-Disease\n.\tO\n\n-DOCSTART- -X- O O\n\nAspirin NN B-Drug\n" };
        seeds.AddRange(Fuzz.Corpus("conll"));
        if (Fuzz.SharedData() is { } data)
        {
            foreach (string file in Directory.EnumerateFiles(data, "*.tsv", SearchOption.AllDirectories).Take(4))
            {
                seeds.Add(string.Join('\n', File.ReadLines(file).Take(60)));
            }
        }

        int refused = await Run(4000, seeds, input => Fuzz.Check("ConllReader", input, () => ConllReader.Read(new StringReader(input), "fuzz.conll").ToList(), typeof(InputDataException)));
        Assert.InRange(refused, 1, 3999);
    }

    [Fact]
    public async Task SignedCheckpointAndKeys_MutatedText_OnlyFormatException()
    {
        using Ed25519PrivateKey key = Ed25519PrivateKey.Generate();
        SignedCheckpoint checkpoint = SignedCheckpoint.Sign("securefed/fuzz/aggregator", 42, new byte[32], key);
        NoteVerifierKey verifier = NoteVerifierKey.FromEd25519("securefed/fuzz/aggregator", key.PublicKey);
        List<string> seeds = [checkpoint.Text, .. Fuzz.Corpus("checkpoint")];
        int refused = await Run(3000, seeds, input => Fuzz.Check("SignedCheckpoint.Parse", input, () => SignedCheckpoint.Parse(input), typeof(FormatException)));
        Assert.InRange(refused, 1, 3000);

        refused = await Run(3000, [verifier.ToString()], input => Fuzz.Check("NoteVerifierKey.Parse", input, () => NoteVerifierKey.Parse(input), typeof(FormatException)));
        Assert.InRange(refused, 1, 3000);
    }

    [Fact]
    public async Task AuditVerifier_MutatedLog_NeverThrowsAndFlagsEveryEdit()
    {
        string log = Path.Combine(_dir, "audit");
        using (Ed25519PrivateKey key = Ed25519PrivateKey.Generate())
        using (AuditLog audit = AuditLog.Open(log, "aggregator", key, "securefed/fuzz/aggregator"))
        {
            for (int i = 0; i < 6; i++)
            {
                audit.Append(AuditEvents.Refusal, f => f.Add("round", i).Add("site", "site-" + i).Add("reason", "fuzz seed"));
            }

            audit.Checkpoint();
        }

        string file = Path.Combine(log, AuditLog.LogFileName);
        string original = await File.ReadAllTextAsync(file);
        Assert.True(AuditVerifier.Verify(log).Ok);
        var random = new Random(8);
        await Task.Run(() =>
        {
            for (int i = 0; i < 400; i++)
            {
                // One changed character strictly inside the log: always a tampering the verifier must report.
                char[] chars = original.ToCharArray();
                int at = random.Next(1, chars.Length - 2);
                char replacement = (char)random.Next(33, 127);
                if (chars[at] == replacement || chars[at] == '\n')
                {
                    continue;
                }

                chars[at] = replacement;
                File.WriteAllBytes(file, System.Text.Encoding.UTF8.GetBytes(chars));
                AuditVerification result = AuditVerifier.Verify(log);
                Assert.False(result.Ok, $"edit at {at} not detected");
                Assert.False(string.IsNullOrWhiteSpace(result.FirstProblem));

                byte[] mutated = i % 2 == 0 ? System.Text.Encoding.UTF8.GetBytes(Fuzz.Mutate(random, original)) : Fuzz.MutateBytes(random, System.Text.Encoding.UTF8.GetBytes(original));
                File.WriteAllBytes(file, mutated);
                Fuzz.Check("AuditVerifier.Verify", Convert.ToHexString(mutated), () => AuditVerifier.Verify(log));
            }
        }).WaitAsync(Budget);
    }

    [Fact]
    public async Task PrivacyLedger_MutatedFile_OnlyInvalidDataException()
    {
        string path = Path.Combine(_dir, "ledger.jsonl");
        PrivacyLedger ledger = PrivacyLedger.Open(path, "site-a");
        for (int round = 1; round <= 3; round++)
        {
            ledger.Append(round, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 100), 1e-5);
        }

        string original = await File.ReadAllTextAsync(path);
        string target = Path.Combine(_dir, "mutated.jsonl");
        List<string> seeds = [original, .. Fuzz.Corpus("ledger")];
        int refused = await Run(1500, seeds, input =>
        {
            // Half the cases as text, half as raw byte mutations (invalid UTF-8 included).
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(input);
            if (input.Length % 2 == 1)
            {
                bytes = Fuzz.MutateBytes(new Random(input.Length), bytes);
            }

            File.WriteAllBytes(target, bytes);
            return Fuzz.Check("PrivacyLedger.OpenReadOnly", input, () => PrivacyLedger.OpenReadOnly(target), typeof(InvalidDataException));
        });
        Assert.InRange(refused, 1, 1500);
    }

    [Fact]
    public async Task FederationManifest_MutatedJson_OnlyInvalidDataException()
    {
        ProvisionResult provisioned = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "fuzz", ["site-a", "site-b"], "127.0.0.1"));
        List<string> seeds = [provisioned.Manifest.ToJson(), provisioned.Manifest.WithRevoked("site-b").ToJson(), .. Fuzz.Corpus("manifest")];
        int refused = await Run(3000, seeds, input => Fuzz.Check("FederationManifest.Parse", input, () => FederationManifest.Parse(input), typeof(InvalidDataException)));
        Assert.InRange(refused, 1, 3000);
    }

    [Fact]
    public async Task Options_RandomSettings_BindErrorsNameTheKeyAndValidationFlagsBadNumbers()
    {
        string[] doubles = ["EpsilonBudget", "L2Clip", "SiteNoiseMultiplier", "DpSgdNoiseMultiplier", "ServerLearningRate", "Delta"];
        string[] ints = ["Rounds", "MinSites", "StageTimeoutSeconds", "WeightCap", "MaxRetries", "CallTimeoutSeconds"];
        string[] values = ["0", "-1", "1", "0.5", "NaN", "Infinity", "-Infinity", "1e309", "2147483648", "abc", "", " ", "1,5", "0x10", "\u0000"];
        var random = new Random(12);
        await Task.Run(() =>
        {
            for (int i = 0; i < 3000; i++)
            {
                var settings = new Dictionary<string, string?>
                {
                    ["SecureFed:Federation"] = "fuzz",
                    ["SecureFed:Site"] = "site-a",
                    ["SecureFed:Aggregator"] = "https://127.0.0.1:1",
                    ["SecureFed:ModelSpecSha256"] = new string('a', 64),
                };
                string key = random.Next(2) == 0 ? doubles[random.Next(doubles.Length)] : ints[random.Next(ints.Length)];
                string value = random.Next(4) == 0 ? Fuzz.Mutate(random, values[random.Next(values.Length)]) : values[random.Next(values.Length)];
                settings["SecureFed:" + key] = value;
                IConfiguration configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
                foreach ((bool isAggregator, Func<IReadOnlyList<string>> validate) in new (bool, Func<IReadOnlyList<string>>)[]
                {
                    (true, () => { var o = new AggregatorOptions(); configuration.GetSection(AggregatorOptions.Section).Bind(o); return o.Validate(); }),
                    (false, () => { var o = new AgentOptions(); configuration.GetSection(AgentOptions.Section).Bind(o); return o.Validate(); }),
                })
                {
                    IReadOnlyList<string> problems;
                    try
                    {
                        problems = validate();
                    }
                    catch (InvalidOperationException ex)
                    {
                        // The binder refuses text that is not a number; its message names the setting.
                        Assert.Contains("SecureFed:" + key, ex.Message, StringComparison.Ordinal);
                        continue;
                    }

                    Assert.All(problems, p => Assert.StartsWith("SecureFed:", p, StringComparison.Ordinal));
                    if (isAggregator && doubles.Contains(key) && double.TryParse(value, System.Globalization.CultureInfo.InvariantCulture, out double d) && !(d > 0 && double.IsFinite(d)))
                    {
                        Assert.Contains(problems, p => p.StartsWith("SecureFed:" + key, StringComparison.Ordinal));
                    }
                }
            }
        }).WaitAsync(Budget);
    }

    [Fact]
    public async Task ProtobufRequests_RandomAndMutatedBytes_OnlyInvalidProtocolBufferException()
    {
        var chunk = new MaskedInputChunk { Header = new Header { FederationId = "f", Round = 3, SessionId = "ab", Sender = "site-a" }, Offset = 0, TotalWords = 4, Sha256 = new string('0', 64) };
        chunk.Words.AddRange([1u, 2u, 3u, 4u]);
        var shares = new ShareKeysRequest { Header = chunk.Header };
        shares.Shares.Add(new EncryptedShareMessage { Sender = 1, Recipient = 2, Ciphertext = ByteString.CopyFrom(new byte[116]) });
        var ad = new AdvertiseKeysRequest { Header = chunk.Header, EncryptionPublicKey = ByteString.CopyFrom(new byte[32]), MaskingPublicKey = ByteString.CopyFrom(new byte[32]), Signature = ByteString.CopyFrom(new byte[64]) };
        var unmask = new UnmaskResponseMessage { Header = chunk.Header };
        unmask.SelfMaskShares.Add(new RevealedShareMessage { Owner = 2, Value = ByteString.CopyFrom(new byte[40]) });
        (string Name, byte[] Seed, Func<byte[], IMessage> Parse)[] parsers =
        [
            ("MaskedInputChunk", chunk.ToByteArray(), b => MaskedInputChunk.Parser.ParseFrom(b)),
            ("ShareKeysRequest", shares.ToByteArray(), b => ShareKeysRequest.Parser.ParseFrom(b)),
            ("AdvertiseKeysRequest", ad.ToByteArray(), b => AdvertiseKeysRequest.Parser.ParseFrom(b)),
            ("UnmaskResponseMessage", unmask.ToByteArray(), b => UnmaskResponseMessage.Parser.ParseFrom(b)),
        ];
        var random = new Random(5);
        int refused = 0;
        await Task.Run(() =>
        {
            foreach ((string name, byte[] seed, Func<byte[], IMessage> parse) in parsers)
            {
                for (int i = 0; i < 3000; i++)
                {
                    byte[] input;
                    if (i % 3 == 0)
                    {
                        input = new byte[random.Next(0, 64)];
                        random.NextBytes(input);
                    }
                    else
                    {
                        input = Fuzz.MutateBytes(random, seed);
                    }

                    if (Fuzz.Check(name, Convert.ToHexString(input), () => parse(input), typeof(InvalidProtocolBufferException)))
                    {
                        refused++;
                    }
                }
            }
        }).WaitAsync(Budget);
        Assert.InRange(refused, 1, 11_999);
    }

    private static async Task<int> Run(int cases, IReadOnlyList<string> seeds, Func<string, bool> check)
    {
        var random = new Random(cases ^ seeds.Count);
        return await Task.Run(() =>
        {
            int refused = 0;
            foreach (string seed in seeds)
            {
                if (check(seed))
                {
                    refused++;
                }
            }

            for (int i = 0; i < cases - seeds.Count; i++)
            {
                if (check(Fuzz.Mutate(random, seeds[random.Next(seeds.Count)])))
                {
                    refused++;
                }
            }

            return refused;
        }).WaitAsync(Budget);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
