using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

using SecureFed.Privacy;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed privacy ...</c>: the RDP accountant, its inverse, and privacy-ledger inspection.</summary>
internal static class PrivacyCommands
{
    public static Command Create()
    {
        var command = new Command("privacy", "Differential-privacy accounting: epsilon for a DP-SGD run, the noise for a target epsilon, privacy ledgers.");
        command.Subcommands.Add(CreateEpsilon());
        command.Subcommands.Add(CreateNoise());
        command.Subcommands.Add(CreateLedger());
        command.Subcommands.Add(PrivacyAuditCommand.Create());
        return command;
    }

    private static Command CreateEpsilon()
    {
        var sigma = new Option<double>("--noise-multiplier") { Description = "Noise multiplier sigma (noise std / clipping norm), > 0.", Required = true };
        var q = new Option<double>("--sample-rate") { Description = "Poisson sampling rate q in (0, 1].", Required = true };
        var steps = new Option<long>("--steps") { Description = "Number of DP-SGD steps, >= 1.", Required = true };
        var delta = new Option<double>("--delta") { Description = "Target delta in (0, 0.1] (1e-5 is usual).", Required = true };
        Option<string> orders = OrdersOption();
        Option<string> conversion = ConversionOption();
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of text." };

        var command = new Command("epsilon", "Epsilon spent by the Poisson-subsampled Gaussian mechanism (RDP accountant, Opacus/TF-Privacy compatible).");
        foreach (Option option in new Option[] { sigma, q, steps, delta, orders, conversion, json })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) =>
        {
            double s = parse.GetValue(sigma);
            double rate = parse.GetValue(q);
            long t = parse.GetValue(steps);
            double d = parse.GetValue(delta);
            ValidateSigma(s);
            ValidateRun(rate, t, d);
            IReadOnlyList<double> orderList = ParseOrders(parse.GetValue(orders));
            RdpConversion conv = ParseConversion(parse.GetValue(conversion));

            var accountant = new RdpAccountant(orderList);
            accountant.AddSubsampledGaussian(rate, s, t);
            PrivacySpent spent = accountant.GetPrivacySpent(d, conv);

            TextWriter output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(Json(w =>
                {
                    // null where the noise is too small for any finite epsilon (JSON has no infinity).
                    WriteFiniteOrNull(w, "epsilon", spent.Epsilon);
                    WriteFiniteOrNull(w, "order", spent.Order);
                    w.WriteNumber("delta", d);
                    w.WriteNumber("noise_multiplier", s);
                    w.WriteNumber("sample_rate", rate);
                    w.WriteNumber("steps", t);
                    w.WriteString("orders", parse.GetValue(orders)!.ToLowerInvariant());
                    w.WriteString("conversion", conv == RdpConversion.Improved ? "improved" : "classic");
                }));
            }
            else if (double.IsPositiveInfinity(spent.Epsilon))
            {
                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"DP-SGD with sampling rate {rate:G6}, noise multiplier {s:G6} over {t} steps has no finite epsilon at delta {FormatDelta(d)}: the noise is too small for any privacy guarantee."));
            }
            else
            {
                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"DP-SGD with sampling rate {rate:G6}, noise multiplier {s:G6} over {t} steps satisfies ({spent.Epsilon:F5}, {FormatDelta(d)})-DP; optimal RDP order {spent.Order:G6} ({(conv == RdpConversion.Improved ? "improved" : "classic")} conversion)."));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command CreateNoise()
    {
        var epsilon = new Option<double>("--epsilon") { Description = "Target epsilon, > 0.", Required = true };
        var delta = new Option<double>("--delta") { Description = "Target delta in (0, 0.1] (1e-5 is usual).", Required = true };
        var q = new Option<double>("--sample-rate") { Description = "Poisson sampling rate q in (0, 1].", Required = true };
        var steps = new Option<long>("--steps") { Description = "Number of DP-SGD steps, >= 1.", Required = true };
        Option<string> orders = OrdersOption();
        Option<string> conversion = ConversionOption();
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of text." };

        var command = new Command("noise", "The smallest noise multiplier that keeps a DP-SGD run within a target epsilon (bisection, 1e-4 relative).");
        foreach (Option option in new Option[] { epsilon, delta, q, steps, orders, conversion, json })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) =>
        {
            double target = parse.GetValue(epsilon);
            double d = parse.GetValue(delta);
            double rate = parse.GetValue(q);
            long t = parse.GetValue(steps);
            if (!double.IsFinite(target) || target <= 0)
            {
                throw new UsageException($"--epsilon must be > 0 (got {target.ToString(CultureInfo.InvariantCulture)}).");
            }

            ValidateRun(rate, t, d);
            IReadOnlyList<double> orderList = ParseOrders(parse.GetValue(orders));
            RdpConversion conv = ParseConversion(parse.GetValue(conversion));

            double sigma;
            try
            {
                sigma = NoiseCalibration.NoiseMultiplierFor(target, d, rate, t, orderList, conv);
            }
            catch (ArgumentException ex) when (ex is not ArgumentOutOfRangeException)
            {
                throw new InvalidOperationException(ex.Message, ex);
            }

            var accountant = new RdpAccountant(orderList);
            accountant.AddSubsampledGaussian(rate, sigma, t);
            PrivacySpent spent = accountant.GetPrivacySpent(d, conv);

            TextWriter output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(Json(w =>
                {
                    w.WriteNumber("noise_multiplier", sigma);
                    w.WriteNumber("epsilon", spent.Epsilon);
                    w.WriteNumber("target_epsilon", target);
                    w.WriteNumber("order", spent.Order);
                    w.WriteNumber("delta", d);
                    w.WriteNumber("sample_rate", rate);
                    w.WriteNumber("steps", t);
                }));
            }
            else
            {
                output.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"Noise multiplier {SigmaText(sigma)} gives epsilon {spent.Epsilon:F5} <= {target:G6} at delta {FormatDelta(d)} (sampling rate {rate:G6}, {t} steps, order {spent.Order:G6})."));
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command CreateLedger()
    {
        var file = new Argument<string>("FILE") { Description = "The privacy ledger (JSON Lines) to verify and print." };
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var delta = new Option<double>("--delta") { Description = "Delta for the totals.", DefaultValueFactory = _ => 1e-5 };
        var show = new Command("show", "Verify a privacy ledger (hash chain, owner header, replayed epsilons) and print its entries and totals.");
        show.Arguments.Add(file);
        show.Options.Add(json);
        show.Options.Add(delta);
        show.SetAction((parse, ct) =>
        {
            double d = LedgerDelta(parse.GetValue(delta));
            string path = parse.GetValue(file)!;
            RequireLedgerFile(path);
            PrivacyLedger ledger = PrivacyLedger.OpenReadOnly(path);
            IReadOnlyList<LedgerEntry> entries = ledger.Entries;
            PrivacySpent record = ledger.Spent(Guarantee.Record, d);
            PrivacySpent site = ledger.Spent(Guarantee.Site, d);
            PrivacySpent collusion = ledger.Spent(Guarantee.RecordCollusion, d);
            TextWriter output = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                output.WriteLine(Json(w =>
                {
                    w.WriteString("file", ledger.FilePath);
                    w.WriteString("owner", ledger.Owner);
                    w.WriteBoolean("verified", true);
                    w.WriteNumber("delta", d);
                    WriteFiniteOrNull(w, "record_epsilon", record.Epsilon);
                    WriteFiniteOrNull(w, "site_epsilon", site.Epsilon);
                    WriteFiniteOrNull(w, "record_collusion_epsilon", collusion.Epsilon);
                    w.WriteStartArray("entries");
                    foreach (LedgerEntry e in entries)
                    {
                        w.WriteStartObject();
                        w.WriteNumber("round", e.Round);
                        w.WriteString("guarantee", GuaranteeNames.Of(e.Guarantee));
                        w.WriteString("mechanism", e.Mechanism.Describe());
                        WriteFiniteOrNull(w, "epsilon_after", e.EpsilonAfter);
                        w.WriteNumber("delta", e.Delta);
                        w.WriteString("timestamp", e.Timestamp.ToString("O", CultureInfo.InvariantCulture));
                        w.WriteEndObject();
                    }

                    w.WriteEndArray();
                }));
            }
            else
            {
                var text = new StringBuilder();
                text.Append(CultureInfo.InvariantCulture, $"Privacy ledger {ledger.FilePath}\nowner: {ledger.Owner}; {entries.Count} entries; hash chain and replayed epsilons verified.\n");
                // The chain needs no key: a ledger cut after a whole line, or an older copy, verifies on its own. The
                // owner's signed audit log logs every charge, and the agent and the aggregator compare the two at start-up.
                text.Append("(A hash chain cannot show entries cut from its end or an older copy put back: the owner's signed audit log records every charge; 'securefed audit report' shows them.)\n");
                text.Append(CultureInfo.InvariantCulture, $"{"round",6}  {"guarantee",-16}  {"epsilon after",13}  {"delta",8}  {"recorded (UTC)",-20}  mechanism\n");
                foreach (LedgerEntry e in entries)
                {
                    text.Append(CultureInfo.InvariantCulture,
                        $"{e.Round,6}  {GuaranteeNames.Of(e.Guarantee),-16}  {e.EpsilonAfter,13:F4}  {FormatDelta(e.Delta),8}  {e.Timestamp.UtcDateTime,-20:yyyy-MM-dd HH:mm:ss}  {e.Mechanism.Describe()}\n");
                }

                text.Append(CultureInfo.InvariantCulture, $"total at delta {FormatDelta(d)}: record-level epsilon {record.Epsilon:F4}, site-level epsilon {site.Epsilon:F4}");
                if (entries.Any(e => e.Guarantee == Guarantee.RecordCollusion))
                {
                    text.Append(CultureInfo.InvariantCulture, $", record-level epsilon if the aggregator and all other sites collude {collusion.Epsilon:F4}");
                }

                output.WriteLine(text.ToString());
            }

            return Task.FromResult(CliApp.ExitOk);
        });

        var command = new Command("ledger", "Inspect privacy-budget ledgers, and repair one torn by a crash in the middle of an append.");
        command.Subcommands.Add(show);
        command.Subcommands.Add(PrivacyLedgerRepairCommand.Create());
        return command;
    }

    private static Option<string> OrdersOption() => new("--orders")
    {
        Description = "RDP order list: opacus (default) or tfp.",
        DefaultValueFactory = _ => "opacus",
    };

    private static Option<string> ConversionOption() => new("--conversion")
    {
        Description = "RDP to (epsilon, delta) conversion: improved (Balle et al. 2020, default) or classic (Mironov 2017).",
        DefaultValueFactory = _ => "improved",
    };

    private static void ValidateSigma(double sigma)
    {
        if (!double.IsFinite(sigma) || sigma <= 0)
        {
            throw new UsageException($"--noise-multiplier must be > 0 (got {sigma.ToString(CultureInfo.InvariantCulture)}).");
        }
    }

    /// <summary>The largest δ the calculators accept: beyond it an (ε, δ) statement says next to nothing.</summary>
    private const double MaxDelta = 0.1;

    private static void ValidateRun(double sampleRate, long steps, double delta)
    {
        if (!(sampleRate > 0 && sampleRate <= 1))
        {
            throw new UsageException($"--sample-rate must be in (0, 1] (got {sampleRate.ToString(CultureInfo.InvariantCulture)}).");
        }

        if (steps < 1)
        {
            throw new UsageException($"--steps must be >= 1 (got {steps}).");
        }

        if (!(delta > 0 && delta <= MaxDelta))
        {
            throw new UsageException(
                $"--delta must be in (0, {MaxDelta.ToString(CultureInfo.InvariantCulture)}] (got {delta.ToString(CultureInfo.InvariantCulture)}): δ is the probability " +
                "that the ε guarantee fails outright, so it must be small, well below 1/n for n records (1e-5 is usual); a δ near 1 would make any ε, even 0, meaningless.");
        }
    }

    private static IReadOnlyList<double> ParseOrders(string? name)
    {
        try
        {
            return RdpOrders.Parse(name ?? "opacus");
        }
        catch (ArgumentException)
        {
            throw new UsageException($"--orders must be 'opacus' or 'tfp' (got '{name}').");
        }
    }

    private static RdpConversion ParseConversion(string? name) => (name ?? "improved").ToUpperInvariant() switch
    {
        "IMPROVED" => RdpConversion.Improved,
        "CLASSIC" => RdpConversion.Classic,
        _ => throw new UsageException($"--conversion must be 'improved' or 'classic' (got '{name}')."),
    };

    /// <summary>The ledger commands' <c>--delta</c>, refused outside (0, 1) as a usage error.</summary>
    internal static double LedgerDelta(double delta) => delta > 0 && delta < 1
        ? delta
        : throw new UsageException($"--delta must be in (0, 1) (got {delta.ToString(CultureInfo.InvariantCulture)}).");

    /// <summary>
    /// The ledger commands' FILE: a path that names no file is a mistake in the command (exit 2, as for 'audit verify' and
    /// every --manifest, --key or --previous); a ledger that is there but damaged stays a failure (exit 1). Returns the full path.
    /// </summary>
    internal static string RequireLedgerFile(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            throw new UsageException($"privacy ledger {full} is a folder; give the ledger file itself (e.g. {Path.Combine(full, "privacy-ledger.jsonl")}).");
        }

        if (!File.Exists(full) && new FileInfo(full).LinkTarget is null)
        {
            throw new UsageException($"privacy ledger {full} does not exist.");
        }

        return full;
    }

    internal static string FormatDelta(double delta) => delta.ToString("0.###e-00", CultureInfo.InvariantCulture);

    /// <summary>Four decimals as before, but never 0.0000: a target so loose that sigma is below 1e-3 shows its digits (1.907E-06).</summary>
    private static string SigmaText(double sigma) =>
        sigma.ToString(sigma >= 1e-3 ? "F4" : "G4", CultureInfo.InvariantCulture);

    private static void WriteFiniteOrNull(Utf8JsonWriter writer, string name, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumber(name, value);
        }
        else
        {
            writer.WriteNull(name);
        }
    }

    private static string Json(Action<Utf8JsonWriter> body)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            body(writer);
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }
}
