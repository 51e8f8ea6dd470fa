using System.CommandLine;
using System.Globalization;
using System.Text.Json;

using SecureFed.Audit;

namespace SecureFed.Cli.Commands;

/// <summary><c>securefed audit verify|report|prove|check-proof</c>: the compliance auditor's tools.</summary>
internal static class AuditCommands
{
    private static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Command Create()
    {
        var command = new Command("audit", "Verify tamper-evident audit logs, write a report, and prove or check that a line is in a signed log.");
        command.Subcommands.Add(CreateVerify());
        command.Subcommands.Add(CreateReport());
        command.Subcommands.Add(CreateProve());
        command.Subcommands.Add(CreateCheckProof());
        return command;
    }

    private static Option<string?> KeyOption() => new("--key")
    {
        Description = "The log's public key: a verifier key 'name+hash+base64', a base64 Ed25519 public key, or a file holding either. " +
                      "Without it the log's own verifier.key is trusted.",
    };

    private static Command CreateVerify()
    {
        var directory = new Argument<string>("DIR") { Description = "The log directory (holding audit.jsonl and checkpoints/)." };
        var key = KeyOption();
        var previous = new Option<string?>("--previous") { Description = "A checkpoint file you kept from an earlier verification (detects rollback and rewritten history)." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("verify", "Recompute the Merkle tree, check every checkpoint signature and their consistency. Exit 0 when intact, 1 naming the first bad line or checkpoint.");
        command.Arguments.Add(directory);
        command.Options.Add(key);
        command.Options.Add(previous);
        command.Options.Add(json);
        command.SetAction((parse, ct) =>
        {
            string dir = RequireDirectory(parse.GetValue(directory));
            string? previousFile = parse.GetValue(previous);
            if (previousFile is not null)
            {
                RequireCheckpointFile(previousFile);
            }

            AuditVerification result;
            try
            {
                result = AuditVerifier.Verify(dir, parse.GetValue(key), previousFile);
            }
            catch (FormatException ex)
            {
                throw new UsageException($"--key: {ex.Message}");
            }

            TextWriter stdout = parse.InvocationConfiguration.Output;
            if (parse.GetValue(json))
            {
                var document = new Dictionary<string, object?>
                {
                    ["ok"] = result.Ok,
                    ["directory"] = result.Directory,
                    ["log_found"] = result.LogFound,
                    ["lines"] = result.Lines,
                    ["checkpoints"] = result.Checkpoints,
                    ["covered_lines"] = result.CoveredLines,
                    ["uncovered_lines"] = result.UncoveredLines,
                    ["actor"] = result.Actor,
                    ["origin"] = result.Origin,
                    ["verifier_key"] = result.VerifierKey,
                    ["verifier_key_source"] = result.VerifierKeySource,
                    ["root"] = result.RootHash,
                    ["first_problem"] = result.FirstProblem,
                    ["problems"] = result.Problems,
                };
                stdout.WriteLine(JsonSerializer.Serialize(document, Indented));
            }
            else
            {
                stdout.Write(result.ToString());
            }

            return Task.FromResult(result.Ok ? CliApp.ExitOk : CliApp.ExitFailure);
        });
        return command;
    }

    private static Command CreateReport()
    {
        var directories = new Argument<string[]>("DIR") { Description = "Log directories (aggregator and agents).", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "The HTML file to write (outside the log folders; an earlier audit report there is replaced, any other existing file is refused).", Required = true };
        var privacyAudit = new Option<string?>("--privacy-audit") { Description = "privacy-audit.json of 'securefed privacy audit' (\"kind\": \"securefed-privacy-audit\"; any other file is refused), shown beside the ledger's ε." };
        var keys = new Option<string[]>("--key")
        {
            Description = "Pin a log's public key (as for 'audit verify --key'): give it once per DIR, in the order of the DIRs; '-' leaves that log unpinned. " +
                          "Without it each log's own verifier.key is trusted and the verdict says the keys were not pinned.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var previous = new Option<string[]>("--previous")
        {
            Description = "A checkpoint file kept from an earlier verification, once per DIR in the order of the DIRs ('-' for none): detects rollback.",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var command = new Command("report", "Write a self-contained HTML report: a verdict first (logs intact, rounds completed and aborted, dropouts, cross-check), patient-level epsilon per site against its budget, who took part in each round, then the details. Exit 1 when a log fails, a cross-check mismatches, a site exceeds its logged budget or a log holds impossible content. Lines after a log's newest signed checkpoint are listed as unverified and counted in no figure.");
        command.Arguments.Add(directories);
        command.Options.Add(output);
        command.Options.Add(privacyAudit);
        command.Options.Add(keys);
        command.Options.Add(previous);
        command.SetAction((parse, ct) =>
        {
            string[] dirs = [.. parse.GetValue(directories)!.Select(RequireDirectory)];
            string outPath = parse.GetValue(output)!;
            string? auditPath = parse.GetValue(privacyAudit);
            if (auditPath is not null && !File.Exists(auditPath))
            {
                throw new UsageException($"--privacy-audit {auditPath} {Absent(auditPath)}");
            }

            RequireReportPath(outPath, dirs, auditPath);
            if (auditPath is not null)
            {
                try
                {
                    AuditReport.CheckPrivacyAudit(auditPath);
                }
                catch (InvalidDataException ex)
                {
                    throw new UsageException($"--privacy-audit {ex.Message}");
                }
            }

            string?[]? pins = PerDirectory(parse.GetValue(keys), dirs, "--key");
            string?[]? kept = PerDirectory(parse.GetValue(previous), dirs, "--previous");
            foreach (string file in kept?.OfType<string>() ?? [])
            {
                RequireCheckpointFile(file);
            }

            AuditReportResult result;
            try
            {
                result = OutputPaths.Writing("--out", () => AuditReport.Write(dirs, outPath, auditPath, pins, kept));
            }
            catch (FormatException ex)
            {
                throw new UsageException($"--key: {ex.Message}");
            }

            // Text from the logs (actors, sites) is made printable: an escape sequence in a log cannot draw a fake verdict.
            TextWriter stdout = parse.InvocationConfiguration.Output;
            stdout.WriteLine(AuditText.Printable(result.Verdict));
            foreach (string problem in result.Problems)
            {
                stdout.WriteLine("  - " + AuditText.Printable(problem));
            }

            foreach (string warning in result.Warnings)
            {
                stdout.WriteLine("  warning: " + AuditText.Printable(warning));
            }

            foreach (string note in result.Notes)
            {
                stdout.WriteLine("  note: " + AuditText.Printable(note));
            }

            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {outPath}: {result.Logs} log(s), {result.FailedLogs} failed verification, {result.CrossCheckMismatches} cross-check mismatch(es), {result.SitesOverBudget.Count} site(s) over budget"));
            return Task.FromResult(result.Passed ? CliApp.ExitOk : CliApp.ExitFailure);
        });
        return command;
    }

    private static Command CreateProve()
    {
        var directory = new Argument<string>("DIR") { Description = "The log directory." };
        var line = new Option<long>("--line") { Description = "The 1-based line number to prove.", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the proof as JSON." };
        var command = new Command("prove", "Print an inclusion proof of one line against the newest signed checkpoint, checkable offline with 'audit check-proof'.");
        command.Arguments.Add(directory);
        command.Options.Add(line);
        command.Options.Add(json);
        command.SetAction((parse, ct) =>
        {
            string dir = RequireDirectory(parse.GetValue(directory));
            long number = parse.GetValue(line);
            if (number < 1)
            {
                throw new UsageException("--line must be 1 or more.");
            }

            AuditInclusionProof proof;
            try
            {
                proof = AuditInclusionProof.Create(dir, number);
            }
            catch (ArgumentOutOfRangeException ex)
            {
                // A line the newest checkpoint does not cover (past the end, or not yet signed) is the argument's mistake:
                // exit 2, as for every other argument the command cannot use.
                throw new UsageException($"--line {number}: {ex.Message.Split(" (Parameter", 2)[0]}");
            }

            parse.InvocationConfiguration.Output.Write(parse.GetValue(json) ? proof.ToJson() : proof.ToText());
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command CreateCheckProof()
    {
        var file = new Argument<string>("FILE") { Description = "A proof written by 'audit prove' (text or --json)." };
        var key = KeyOption();
        key.Description = "The log's public key to check the checkpoint against (recommended); without it the key named in the proof is used.";
        var command = new Command("check-proof", "Verify an inclusion proof offline: leaf hash, checkpoint signature, and the path to the signed root.");
        command.Arguments.Add(file);
        command.Options.Add(key);
        command.SetAction((parse, ct) =>
        {
            string path = parse.GetValue(file)!;
            if (!File.Exists(path))
            {
                throw new UsageException($"proof file '{path}' {Absent(path)}.");
            }

            InputPaths.RequireRegular(path, "give the proof file 'audit prove' wrote");

            AuditInclusionProof proof;
            try
            {
                proof = AuditInclusionProof.Parse(File.ReadAllText(path));
            }
            catch (FormatException ex)
            {
                throw new UsageException($"{path}: {ex.Message}");
            }

            string? pinned = parse.GetValue(key);
            bool ok;
            string? problem;
            try
            {
                ok = proof.TryVerify(pinned, out problem);
            }
            catch (FormatException ex)
            {
                throw new UsageException($"--key: {ex.Message}");
            }

            TextWriter stdout = parse.InvocationConfiguration.Output;
            if (ok)
            {
                stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"proof OK: line {proof.Line} is in the tree of size {proof.TreeSize} (root {proof.Root}) signed by {(pinned is null ? proof.VerifierKey + " (the key named in the proof; pass --key to pin it)" : "the given key")}"));
                return Task.FromResult(CliApp.ExitOk);
            }

            stdout.WriteLine($"proof FAILED: {problem}");
            return Task.FromResult(CliApp.ExitFailure);
        });
        return command;
    }

    /// <summary>
    /// The report never replaces what it reads: --out may not be the --privacy-audit file, lie inside an audited log
    /// folder (audit.jsonl, checkpoints/, verifier.key) or be a folder. An existing file elsewhere is replaced only when it
    /// is an earlier report (its HTML starts as a report's does); any other file (a database, a key) is refused.
    /// </summary>
    private static void RequireReportPath(string outPath, IEnumerable<string> dirs, string? auditPath)
    {
        if (string.IsNullOrWhiteSpace(outPath))
        {
            throw new UsageException("--out is blank; give the path of the HTML file to write.");
        }

        if (auditPath is not null && OutputPaths.SamePath(outPath, auditPath))
        {
            throw new UsageException($"--out {outPath} is the --privacy-audit file; writing the report there would replace it.");
        }

        if (dirs.FirstOrDefault(d => OutputPaths.IsInside(outPath, d) || OutputPaths.SamePath(outPath, d)) is string logDir)
        {
            throw new UsageException($"--out {outPath} is inside the audited log folder {logDir}; writing the report there could replace the log (write it outside the log folders, e.g. report.html).");
        }

        if (Directory.Exists(outPath))
        {
            throw new UsageException($"--out {outPath} is a folder; give the path of the HTML file to write.");
        }

        OutputPaths.RequireNewOrEarlierOutput(outPath, "--out", "an earlier audit report", IsEarlierReport);
        // Before any log is read: a read-only folder failed after the verification naming the report's temporary file
        // (".tmp") and a file on the way with "The file … already exists", neither the path given.
        OutputPaths.RequireCreatableFileFolder(outPath, "--out");
    }

    /// <summary>Null when the option was not given; else one value per log directory ('-' gives null), or a usage error.</summary>
    private static string?[]? PerDirectory(string[]? values, string[] dirs, string option)
    {
        if (values is null || values.Length == 0)
        {
            return null;
        }

        if (values.Length != dirs.Length)
        {
            throw new UsageException($"{option} was given {values.Length} time(s) for {dirs.Length} log folder(s): give it once per DIR, in the same order ('-' for none).");
        }

        return [.. values.Select(v => v == "-" ? null : v)];
    }

    /// <summary>Whether a file starts as the report's HTML does (ReportHtml: the doctype, then the title within the head).</summary>
    private static bool IsEarlierReport(string head) =>
        head.StartsWith("<!DOCTYPE html>", StringComparison.Ordinal) && head.Contains("<title>SecureFed audit report: ", StringComparison.Ordinal);

    private static string RequireDirectory(string? directory)
    {
        if (string.IsNullOrWhiteSpace(directory))
        {
            throw new UsageException("a log directory is required.");
        }

        if (File.Exists(directory))
        {
            // audit.jsonl itself, say: the log is the folder (the checkpoints and verifier.key lie beside it).
            string folder = Path.GetDirectoryName(Path.GetFullPath(directory))!;
            throw new UsageException($"log directory '{directory}' is a file; give the folder that holds audit.jsonl and checkpoints/ (e.g. '{folder}').");
        }

        if (!Directory.Exists(directory))
        {
            throw new UsageException($"log directory '{directory}' does not exist.");
        }

        if (!File.Exists(Path.Combine(directory, "audit.jsonl")) && !Directory.Exists(Path.Combine(directory, "checkpoints")) && !File.Exists(Path.Combine(directory, "checkpoint.latest")))
        {
            // Nothing of a log here (a log that lost its audit.jsonl still has its checkpoints, and fails the verification):
            // most likely the demo's output folder, or a data folder, given instead of the log folder inside it.
            string[] logs = [.. LogFoldersUnder(directory).Take(6)];
            throw new UsageException(logs.Length == 0
                ? $"'{directory}' is not an audit log folder (no audit.jsonl or checkpoints/ in it, nor in its subfolders); give the folder that holds audit.jsonl."
                : $"'{directory}' is not an audit log folder (no audit.jsonl or checkpoints/ in it); the log folders under it: {string.Join(", ", logs)}.");
        }

        return directory;
    }

    /// <summary>Folders under <paramref name="directory"/>, at most four levels down, that hold an audit.jsonl, in path order.</summary>
    private static IEnumerable<string> LogFoldersUnder(string directory)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = true, MaxRecursionDepth = 4, IgnoreInaccessible = true };
        return Directory.EnumerateFiles(directory, "audit.jsonl", options)
            .Select(f => Path.GetDirectoryName(f)!)
            .Order(StringComparer.Ordinal);
    }

    /// <summary>
    /// A usage error unless <paramref name="path"/> is a file holding a signed checkpoint. A file that is not one (the log's
    /// audit.jsonl, a key, an empty file) was reported as a FAILED verification, as if the log had been tampered with;
    /// whether the checkpoint's signature, origin and size fit the log is the verification's business, not this check's.
    /// </summary>
    private static void RequireCheckpointFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new UsageException($"--previous: checkpoint file '{path}' {Absent(path)}.");
        }

        InputPaths.RequireRegular(path, "give --previous the checkpoint file itself");

        try
        {
            SignedCheckpoint.Parse(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException)
        {
            throw new UsageException($"--previous: '{path}' is not a signed checkpoint ({ex.Message}); give a copy of a checkpoint you kept from an earlier verification (the log folder's {AuditLog.LatestCheckpointFileName} or checkpoints/<size>{AuditLog.CheckpointExtension}).");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--previous: checkpoint file '{path}' cannot be read: {ex.Message}");
        }
    }

    /// <summary>Why a file argument that <see cref="File.Exists(string)"/> denied cannot be read: it is a folder, or it does not exist.</summary>
    private static string Absent(string path) =>
        Directory.Exists(path) ? "is a folder; give the file itself" : "does not exist";
}
