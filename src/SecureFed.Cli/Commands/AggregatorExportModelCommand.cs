using System.CommandLine;
using System.Globalization;
using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary>
/// <c>securefed aggregator export-model --config aggregator.json [--version N] --out DIR [--SecureFed:Name=value ...]</c>:
/// writes a fused model of a stopped aggregator (its data directory's round store; <see cref="AggregatorStore.ReadModel"/>)
/// as a tagger model folder that <c>securefed tagger eval</c> and <c>predict</c> load. The final model of a federation exists
/// only there: each agent keeps the model it trained from, one version behind (new-user review of session 45). The
/// configuration is read as the service reads it (<see cref="ServiceCommands.Load"/>): the file, the environment, then the
/// settings that follow on the command line.
/// </summary>
internal static class AggregatorExportModelCommand
{
    public static Command Create()
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "The aggregator's configuration (aggregator.json, as written by 'securefed provision'): its SecureFed:DataDirectory holds the models, its SecureFed:ModelSpec (default: the default clinical model) says their shape. " +
                "Read as the aggregator reads it: the file, then SecureFed__Name environment variables, then settings that follow, --SecureFed:Name=value (e.g. --SecureFed:DataDirectory=/srv/agg-data).",
            Required = true,
        };
        var version = new Option<long?>("--version") { Description = "The model version to export (default: the newest, the fused model after the last completed round; version 0 is the initial model)." };
        var output = new Option<string>("--out") { Description = "Output model folder (must not exist or be empty).", Required = true };
        var command = new Command(
            "export-model",
            "Write a fused model of a stopped aggregator as a tagger model folder (model.json and weights) that 'securefed tagger eval' " +
            "and 'securefed tagger predict' load: by default the newest version, the federation's result. The model is read from the " +
            "aggregator's round store (data-dir/aggregator.db), checked against its SHA-256, and never changed. Stop the aggregator first: " +
            "a store another process has open is refused.")
        {
            config,
            version,
            output,
        };
        // Settings may follow, as after 'securefed aggregator --config FILE': the same sources in the same order.
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction((parse, ct) =>
        {
            string outDir = parse.GetValue(output)!;
            OutputPaths.RequireNewFolder(outDir, "--out", "exported models");
            if (parse.GetValue(version) is < 0)
            {
                throw new UsageException($"--version must be 0 or more, got {parse.GetValue(version)}.");
            }

            // A token naming one of this command's own options in another case or with other dashes (--Version 3, -out DIR)
            // is that option mistyped, not a setting: the settings check would answer "settings are given as
            // --SecureFed:Version=…", a key nothing here reads, and following it exported the newest model instead.
            foreach (string token in parse.UnmatchedTokens)
            {
                string name = token.TrimStart('-', '/').Split('=', 2)[0];
                if (token.Length > 1 && token[0] is '-' or '/'
                    && new Option[] { config, version, output }.FirstOrDefault(o => string.Equals(o.Name.TrimStart('-'), name, StringComparison.OrdinalIgnoreCase)) is { } own)
                {
                    throw new UsageException($"unknown argument '{token}': did you mean {own.Name}? (option names are case-sensitive; export-model takes --config, --version and --out, then settings as --SecureFed:Name=value)");
                }
            }

            Microsoft.Extensions.Configuration.IConfiguration configuration = ServiceCommands.Load(parse.GetValue(config)!, parse.UnmatchedTokens);
            string dataDirectory = configuration["SecureFed:DataDirectory"] is { Length: > 0 } d ? d : new AggregatorOptions().DataDirectory;
            Agent.ModelSpec spec = ServiceCommands.Spec(configuration);
            (ModelRecord record, byte[] bytes) read;
            try
            {
                read = AggregatorStore.ReadModel(AggregatorState.StorePath(dataDirectory), parse.GetValue(version));
            }
            catch (KeyNotFoundException ex)
            {
                throw new UsageException(ex.Message);
            }

            float[] values = ModelState.FromBytes(read.bytes, string.Create(CultureInfo.InvariantCulture, $"model v{read.record.Version}"));
            using TaggerModel model = TaggerModel.Create(spec.Config, spec.Labels, seed: 1, device: "cpu");
            if (values.Length != model.ParameterCount)
            {
                throw new UsageException(string.Create(CultureInfo.InvariantCulture,
                    $"model v{read.record.Version} has {values.Length:N0} parameters, but the model specification the configuration names ({configuration["SecureFed:ModelSpec"] ?? "the default clinical model"}) has {model.ParameterCount:N0}: give the aggregator's own configuration."));
            }

            model.Unflatten(values);
            model.Save(outDir);
            parse.InvocationConfiguration.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"wrote {outDir}: model v{read.record.Version} ({(read.record.Version == 0 ? "the initial model, before any round" : $"after round {read.record.Round}")}, {read.record.CreatedUtc:u}, SHA-256 {read.record.Sha256}), {values.Length:N0} parameters; score it with: securefed tagger eval --model {outDir} --test TEST.tsv"));
            return Task.FromResult(CliApp.ExitOk);
        });
        return command;
    }
}
