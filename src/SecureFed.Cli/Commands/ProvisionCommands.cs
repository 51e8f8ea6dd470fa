using System.CommandLine;

using SecureFed.Federation;

using Spectre.Console;
using Spectre.Console.Rendering;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed provision</c>: create a federation (CA, one kit per party), <c>securefed provision revoke</c>:
/// revoke a site in the manifest, and <c>securefed provision add-site</c>: admit one more site.
/// </summary>
internal static class ProvisionCommands
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output directory (must not exist or be empty).", Required = true };
        var federation = new Option<string>("--federation") { Description = "Federation name: lowercase a-z, 0-9 and '-', 1..63 characters, starting and ending with a letter or digit.", Required = true };
        var sites = new Option<string>("--sites") { Description = "Comma-separated site names, e.g. site-de,site-fr,site-jp.", Required = true };
        var host = new Option<string>("--aggregator-host") { Description = "DNS name or IP address under which agents reach the aggregator.", Required = true };
        var validityDays = new Option<int>("--validity-days") { Description = "Validity of the CA and all certificates, in days (1..3650).", DefaultValueFactory = _ => 365 };

        var command = new Command(
            "provision",
            "Create a federation: an ECDSA P-256 CA, and for the aggregator and each site a kit with TLS certificate and key, " +
            "Ed25519 identity key, the CA certificate, the federation manifest and a configuration template.");
        foreach (Option option in new Option[] { output, federation, sites, host, validityDays })
        {
            command.Options.Add(option);
        }

        command.Subcommands.Add(CreateRevoke());
        command.Subcommands.Add(CreateAddSite());
        command.SetAction((parse, cancellationToken) =>
        {
            int days = parse.GetValue(validityDays);
            if (days is < 1 or > 3650)
            {
                throw new UsageException($"--validity-days must be between 1 and 3650 (got {days}).");
            }

            string[] siteNames = ParseSites(parse.GetValue(sites)!);
            string outDir = parse.GetValue(output)!;
            OutputPaths.RequireNewFolder(outDir, "--out", "federation kits");
            var request = new ProvisionRequest(outDir, parse.GetValue(federation)!, siteNames, parse.GetValue(host)!, TimeSpan.FromDays(days));
            ProvisionResult result;
            try
            {
                result = OutputPaths.Writing("--out", () => FederationProvisioner.Provision(request));
            }
            catch (ArgumentException ex)
            {
                throw new UsageException(WithoutParameterName(ex));
            }

            Render(parse.InvocationConfiguration.Output, Summary(result));
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command CreateRevoke()
    {
        var manifestOption = new Option<string>("--manifest") { Description = "The federation manifest to update (DIR/federation.json).", Required = true };
        var siteOption = new Option<string>("--site") { Description = "The site to revoke.", Required = true };
        Option<int> lockWait = LockWaitOption();
        var command = new Command(
            "revoke",
            "Revoke a site: its certificate and identity key are refused from now on. Updates the manifest atomically, holding " +
            "its lock file meanwhile (the --manifest path, or the file a link there points to, with .lock appended, e.g. federation.json.lock; another revoke or add-site waits up to --lock-wait-seconds for it, 10 by default, then stops and changes nothing); " +
            "then give the new manifest to the aggregator (aggregator kit federation.json).");
        command.Options.Add(manifestOption);
        command.Options.Add(siteOption);
        command.Options.Add(lockWait);
        command.SetAction((parse, cancellationToken) =>
        {
            TimeSpan wait = LockWait(parse.GetValue(lockWait));
            string path = parse.GetValue(manifestOption)!;
            string site = parse.GetValue(siteOption)!;
            _ = InputPaths.RequireFile(path, "--manifest");
            // Held until the manifest is rewritten: a concurrent revoke or add-site would otherwise read the same manifest and
            // the later write would drop the earlier change.
            using ManifestLock held = ManifestLock.Acquire(path, $"provision revoke --site {site}", wait);
            FederationManifest manifest = FederationManifest.Load(path);
            TextWriter stdout = parse.InvocationConfiguration.Output;
            if (!manifest.TryGetSite(site, out _))
            {
                throw new UsageException(
                    $"--site: unknown site '{site}' in federation '{manifest.FederationName}'; known sites: {string.Join(", ", manifest.Sites.Select(s => s.Name))}.");
            }

            string full = Path.GetFullPath(path);
            if (manifest.IsRevoked(site))
            {
                stdout.WriteLine($"Site '{site}' is already revoked in {full}; nothing changed.");
                WarnOfRevocationsOnlyInTheKitCopy(full, manifest, parse.InvocationConfiguration.Error);
                return Task.FromResult(CliApp.ExitOk);
            }

            FederationManifest updated = manifest.WithRevoked(site);
            string? unconfirmed = null;
            try
            {
                updated.Save(path);
            }
            catch (DirectoryFlushException ex)
            {
                // The new manifest is in place: the site is revoked, so say so and what comes next, then the failed flush.
                unconfirmed = $"Site '{site}' is revoked in {full}: {ex.Message} Check the disk; if after a power loss the manifest no longer revokes '{site}', revoke it again.";
            }

            stdout.WriteLine($"Revoked site '{site}' in federation '{updated.FederationName}' ({full}).");
            stdout.WriteLine($"Revoked sites now: {string.Join(", ", updated.Revoked)}.");
            string folder = Path.GetDirectoryName(full)!;
            if (File.Exists(Path.Combine(folder, KitFiles.AggregatorConfig)))
            {
                // The aggregator's own kit copy: there is nothing to copy it over; the federation's manifest must follow.
                string federationManifest = Path.Combine(Path.GetDirectoryName(folder) ?? folder, KitFiles.Manifest);
                stdout.WriteLine(
                    $"This is the aggregator's kit copy: restart the aggregator to apply it. Revoke '{site}' in the federation's own manifest too" +
                    (File.Exists(federationManifest) ? $" ({federationManifest})" : string.Empty) +
                    ": copying that over this one later would admit the site again.");
            }
            else if (File.Exists(Path.Combine(folder, KitFiles.AgentConfig)))
            {
                // A site's kit copy: its own agent refuses the site once restarted; the aggregator's copy comes from the
                // federation's manifest (two folders up, where 'securefed provision' wrote it), not from here.
                string federationManifest = Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(folder) ?? folder) ?? folder, KitFiles.Manifest);
                stdout.WriteLine(
                    $"This is site '{Path.GetFileName(folder)}''s kit copy: restart that site's agent to apply it there. Revoke '{site}' in the federation's own manifest" +
                    (File.Exists(federationManifest) ? $" ({federationManifest})" : string.Empty) +
                    " and copy that over the aggregator's kit copy: only the aggregator's copy keeps the site out of the rounds.");
            }
            else
            {
                string kitCopy = Path.Combine(folder, KitFiles.AggregatorDirectory, KitFiles.Manifest);
                stdout.WriteLine(
                    $"Next: copy this manifest over the aggregator's kit copy ({kitCopy} here, wherever the aggregator's kit is on its host) and restart the aggregator.");
                WarnOfRevocationsOnlyInTheKitCopy(full, updated, parse.InvocationConfiguration.Error);
            }

            if (unconfirmed is not null)
            {
                parse.InvocationConfiguration.Error.WriteLine($"error: {unconfirmed}");
                return Task.FromResult(CliApp.ExitFailure);
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    private static Command CreateAddSite()
    {
        var dirOption = new Option<string>("--dir") { Description = "The federation folder 'securefed provision --out' wrote (it holds ca/ca.key and federation.json).", Required = true };
        var siteOption = new Option<string>("--site") { Description = "The new site's name: lowercase a-z, 0-9 and '-', 1..63 characters, starting and ending with a letter or digit, not used before in this federation.", Required = true };
        var validityDays = new Option<int>("--validity-days") { Description = "Validity of the site's certificate, in days (1..3650; cut to the CA's own validity).", DefaultValueFactory = _ => 365 };
        Option<int> lockWait = LockWaitOption();
        var command = new Command(
            "add-site",
            "Admit one more hospital: a kit for it in DIR/sites/SITE (TLS certificate signed by the federation CA, Ed25519 identity key, " +
            "agent configuration) and federation.json rewritten with it listed, holding federation.json.lock meanwhile (another add-site or revoke " +
            "waits up to --lock-wait-seconds for it, 10 by default, then stops and changes nothing). Then give the new federation.json to every party, the sites first.");
        command.Options.Add(dirOption);
        command.Options.Add(siteOption);
        command.Options.Add(validityDays);
        command.Options.Add(lockWait);
        command.SetAction((parse, cancellationToken) =>
        {
            int days = parse.GetValue(validityDays);
            if (days is < 1 or > 3650)
            {
                throw new UsageException($"--validity-days must be between 1 and 3650 (got {days}).");
            }

            TimeSpan wait = LockWait(parse.GetValue(lockWait));
            string dir = parse.GetValue(dirOption)!;
            if (!Directory.Exists(dir))
            {
                throw new UsageException(File.Exists(dir)
                    ? $"--dir {dir} is a file; give the federation folder 'securefed provision --out' wrote."
                    : $"--dir {dir}: no such folder.");
            }

            AddSiteResult result;
            try
            {
                result = FederationProvisioner.AddSite(dir, parse.GetValue(siteOption)!, TimeSpan.FromDays(days), lockWait: wait);
            }
            catch (ArgumentException ex)
            {
                throw new UsageException("--site: " + WithoutParameterName(ex));
            }
            catch (InvalidDataException ex)
            {
                throw new UsageException("--dir: " + ex.Message);
            }

            TextWriter stdout = parse.InvocationConfiguration.Output;
            string site = Path.GetFileName(result.KitDirectory);
            string root = Path.GetDirectoryName(result.ManifestPath)!;
            string aggregatorCopy = Path.Combine(root, KitFiles.AggregatorDirectory, KitFiles.Manifest);
            stdout.WriteLine($"Added site '{site}' to federation '{result.Manifest.FederationName}': kit {result.KitDirectory} ({result.Files.Count} files; certificate valid {result.NotBefore.UtcDateTime:yyyy-MM-dd HH:mm} .. {result.NotAfter.UtcDateTime:yyyy-MM-dd HH:mm} UTC, SHA-256 {result.Manifest.Sites.First(s => s.Name == site).CertificateThumbprint}).");
            stdout.WriteLine($"Updated {result.ManifestPath}: {result.Manifest.Sites.Count} sites ({string.Join(", ", result.Manifest.Sites.Select(s => result.Manifest.IsRevoked(s.Name) ? s.Name + " (revoked)" : s.Name))}).");
            stdout.WriteLine("Next, in this order:");
            stdout.WriteLine($"  1. Hand the kit {result.KitDirectory} to hospital '{site}' only, over a secure channel (it holds private keys); it should start its agent only after step 3: until then the aggregator refuses '{site}' as an unknown site and the agent stops (exit code 1).");
            stdout.WriteLine($"  2. Replace federation.json in every other site's kit with {result.ManifestPath} and restart its agent: an agent with the old manifest declines every round that includes '{site}'.");
            stdout.WriteLine($"  3. Then copy it over the aggregator's kit copy ({aggregatorCopy} here, wherever the aggregator's kit is on its host) and restart the aggregator: rounds include '{site}' from then on.");
            WarnOfRevocationsOnlyInTheKitCopy(result.ManifestPath, result.Manifest, parse.InvocationConfiguration.Error);
            if (result.DurabilityUnconfirmed is { } unconfirmed)
            {
                // The site is added (the steps above hold), but the disk did not confirm it: a failure, not a silent success.
                parse.InvocationConfiguration.Error.WriteLine($"error: {unconfirmed}");
                return Task.FromResult(CliApp.ExitFailure);
            }

            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }

    /// <summary>
    /// Warns when the aggregator's kit copy next to the federation's manifest <paramref name="manifestPath"/> revokes
    /// sites the manifest does not (revoked in the copy only): copying the manifest over it, as the next step says,
    /// would silently admit them again.
    /// </summary>
    private static void WarnOfRevocationsOnlyInTheKitCopy(string manifestPath, FederationManifest manifest, TextWriter stderr)
    {
        string kitCopy = Path.Combine(Path.GetDirectoryName(manifestPath)!, KitFiles.AggregatorDirectory, KitFiles.Manifest);
        if (!File.Exists(kitCopy))
        {
            return;
        }

        FederationManifest copy;
        try
        {
            copy = FederationManifest.Load(kitCopy);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException or FormatException or System.Text.Json.JsonException)
        {
            stderr.WriteLine($"warning: the aggregator's kit copy {kitCopy} cannot be read ({ex.Message}); check which sites it revokes before replacing it.");
            return;
        }

        string[] onlyInCopy = [.. copy.Revoked.Where(s => !manifest.IsRevoked(s))];
        if (onlyInCopy.Length > 0)
        {
            stderr.WriteLine(
                $"warning: the aggregator's kit copy {kitCopy} also revokes {string.Join(", ", onlyInCopy)}, which {manifestPath} does not: " +
                $"copying this manifest over it would admit {(onlyInCopy.Length == 1 ? "that site" : "those sites")} again. Revoke {(onlyInCopy.Length == 1 ? "it" : "them")} here first: " +
                string.Join(" && ", onlyInCopy.Select(s => $"securefed provision revoke --manifest {SecureFed.Cli.Demo.DemoRunner.ShellQuote(manifestPath)} --site {s}")));
        }
    }

    /// <summary><c>--lock-wait-seconds</c> of revoke and add-site: how long to wait for another holder of the manifest's lock.</summary>
    private static Option<int> LockWaitOption() => new("--lock-wait-seconds")
    {
        Description = $"How long to wait for another revoke or add-site holding the manifest's lock, in seconds (0..{MaxLockWaitSeconds}).",
        DefaultValueFactory = _ => (int)ManifestLock.DefaultWait.TotalSeconds,
    };

    private const int MaxLockWaitSeconds = 3600;

    private static TimeSpan LockWait(int seconds) => seconds is >= 0 and <= MaxLockWaitSeconds
        ? TimeSpan.FromSeconds(seconds)
        : throw new UsageException($"--lock-wait-seconds must be between 0 and {MaxLockWaitSeconds} (got {seconds}).");

    private static string[] ParseSites(string value)
    {
        string[] names = value.Split(',', StringSplitOptions.TrimEntries);
        if (names.Any(string.IsNullOrEmpty))
        {
            throw new UsageException($"--sites: empty site name in '{value}'; give comma-separated names such as site-de,site-fr.");
        }

        return names;
    }

    private static string WithoutParameterName(ArgumentException ex) =>
        ex.ParamName is null ? ex.Message : ex.Message.Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal);

    private static IRenderable Summary(ProvisionResult result)
    {
        string Relative(string path) => Path.GetRelativePath(result.OutputDirectory, path);

        var table = new Table().Border(TableBorder.Rounded);
        table.AddColumn("party");
        table.AddColumn("folder");
        table.AddColumn("files");
        table.AddColumn("hand to");
        table.AddRow(
            "CA",
            Markup.Escape(KitFiles.CaDirectory + "/"),
            Markup.Escape($"{KitFiles.CaCertificate}, {KitFiles.CaKey}"),
            "nobody: keep ca.key offline (it admits new parties)");
        string kitFiles = $"{KitFiles.TlsCertificate}, {KitFiles.TlsKey}, {KitFiles.IdentityKey}, {KitFiles.CaCertificate}, {KitFiles.Manifest}";
        table.AddRow(
            KitFiles.AggregatorName,
            Markup.Escape(Relative(result.AggregatorKitDirectory) + "/"),
            Markup.Escape($"{kitFiles}, {KitFiles.AggregatorConfig}"),
            Markup.Escape($"the aggregator operator (host {result.Manifest.AggregatorHost})"));
        foreach ((string site, string directory) in result.SiteKitDirectories.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            table.AddRow(
                Markup.Escape(site),
                Markup.Escape(Relative(directory) + "/"),
                Markup.Escape($"{kitFiles}, {KitFiles.AgentConfig}"),
                Markup.Escape($"hospital '{site}' only"));
        }

        table.AddRow(
            "operator",
            Markup.Escape(KitFiles.OperatorDirectory + "/"),
            Markup.Escape(KitFiles.OperatorToken),
            Markup.Escape($"the people who watch the aggregator's console and metrics (the kit holds only its SHA-256, {KitFiles.OperatorTokenVerifier})"));

        var thumbprints = new Table().Border(TableBorder.Simple);
        thumbprints.AddColumn("party");
        thumbprints.AddColumn("TLS certificate SHA-256");
        thumbprints.AddRow(KitFiles.AggregatorName, result.Manifest.Aggregator.CertificateThumbprint);
        foreach (PartyInfo site in result.Manifest.Sites)
        {
            thumbprints.AddRow(Markup.Escape(site.Name), site.CertificateThumbprint);
        }

        return new Rows(
            new Markup($"Provisioned federation [bold]{Markup.Escape(result.Manifest.FederationName)}[/] in {Markup.Escape(result.OutputDirectory)}"),
            new Markup(Markup.Escape(
                $"Certificates valid {result.NotBefore.UtcDateTime:yyyy-MM-dd HH:mm} .. {result.NotAfter.UtcDateTime:yyyy-MM-dd HH:mm} UTC; " +
                $"{result.Files.Count} files written; manifest: {KitFiles.Manifest}")),
            table,
            thumbprints,
            new Markup(Markup.Escape(
                "Each kit holds private keys (mode 0600): transfer it over a secure channel to its party only. " +
                "Revoke a site with 'securefed provision revoke --manifest " + result.ManifestPath + " --site NAME'; " +
                "admit another with 'securefed provision add-site --dir " + result.OutputDirectory + " --site NAME'.")));
    }

    private static void Render(TextWriter writer, IRenderable renderable)
    {
        bool interactive = ReferenceEquals(writer, Console.Out) && !Console.IsOutputRedirected;
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(writer),
            Ansi = interactive ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = interactive ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!interactive)
        {
            console.Profile.Width = 200;
        }

        console.Write(renderable);
        console.WriteLine();
    }
}
