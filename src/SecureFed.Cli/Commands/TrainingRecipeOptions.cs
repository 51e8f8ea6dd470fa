using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary>
/// The federated training recipe's options shared by <c>securefed experiment</c> and <c>securefed privacy audit</c>
/// (DP-SGD and the public warm start), so both commands spell, default and apply them the same way.
/// </summary>
internal sealed class TrainingRecipeOptions
{
    private readonly Option<string> _recipe = CreateRecipe();
    private readonly Option<int?> _localEpochs = new("--local-epochs") { Description = Default("Local epochs per round (the arms without DP train as many epochs; with --dp-steps 0 DP-SGD takes epochs × round(1/q) steps).", r => r.LocalEpochs) };
    private readonly Option<double?> _lr = new("--lr") { Description = Default("Learning rate without DP (of --optimizer, Adam by default): the arms site alone, pooled and federated, and the public warm start and its pretraining.", r => r.LearningRate) };
    private readonly Option<string?> _dpOptimizer = new("--dp-optimizer") { Description = Default("Local optimiser with DP-SGD: adam or sgd.", r => r.DpOptimizer.ToString().ToLowerInvariant()) };
    private readonly Option<double?> _dpLr = new("--dp-lr") { Description = Default("Local learning rate with DP-SGD.", r => r.DpLearningRate) };
    private readonly Option<double?> _sampleRate = new("--sample-rate") { Description = Default("DP-SGD Poisson sampling rate q (expected batch q·N).", r => r.SampleRate) };
    private readonly Option<int?> _dpSteps = new("--dp-steps") { Description = Default("DP-SGD steps per site per round (0 = local epochs × round(1/q)).", r => r.DpStepsPerRound) };
    private readonly Option<double?> _gradClip = new("--grad-clip") { Description = Default("DP-SGD per-example gradient clip C.", r => r.GradClip) };
    private readonly Option<bool> _dpDropout = new("--dp-dropout") { Description = "DP-SGD keeps the model's dropout and word dropout in each example's gradient (the first-session recipe's behaviour; the agents' DpDropout)." };
    private readonly Option<bool> _dpNoDropout = new("--dp-no-dropout") { Description = "DP-SGD computes each example's gradient without dropout and word dropout (the noise already regularises; the product recipe's behaviour); ε unchanged." };
    private readonly Option<string?> _warmStart = new("--warm-start") { Description = "Public corpus folder (not an evaluated one) to train the initial model on, e.g. bc5cdr for NCBI-disease sites." };
    private readonly Option<int> _warmEpochs = new("--warm-start-epochs") { Description = "Epochs of the public warm start.", DefaultValueFactory = _ => 3 };
    private readonly Option<string> _warmSplits = CreateWarmSplits();
    private readonly Option<string?> _warmCache = new("--warm-start-cache") { Description = "Folder to keep public warm-start models in and reuse them from (same corpus, epochs, config, types and seed)." };
    private readonly Option<string?> _pretrainText = new("--pretrain-text") { Description = "Comma-separated public corpus folders (train/dev/test.tsv; tokens only, labels ignored) whose text pretrains the warm start's encoder with a bidirectional language-model objective (ELMo-style: each LSTM direction predicts the next / previous word's hash bucket) before --warm-start trains it; never the evaluated corpus. Needs --warm-start and a one-layer model without the pretrained encoder (tiny, tiny-crf); cached in --warm-start-cache." };
    private readonly Option<int> _pretrainEpochs = new("--pretrain-epochs") { Description = "Passes of the --pretrain-text language-model pretraining.", DefaultValueFactory = _ => 1 };

    /// <summary>Every option, to add to a command.</summary>
    public IEnumerable<Option> All => [_recipe, _localEpochs, _lr, _dpOptimizer, _dpLr, _sampleRate, _dpSteps, _gradClip, _dpDropout, _dpNoDropout, _warmStart, _warmEpochs, _warmSplits, _warmCache, _pretrainText, _pretrainEpochs];

    /// <summary>
    /// The parsed recipe on top of <paramref name="options"/>: every recipe option given on the command line, the others
    /// from the <c>--recipe</c> (<see cref="TrainingRecipe"/>).
    /// </summary>
    /// <exception cref="UsageException">An unknown recipe or optimiser, both --dp-dropout and --dp-no-dropout, or a --warm-start-cache that is a file.</exception>
    public ExperimentOptions Apply(ParseResult parse, ExperimentOptions options)
    {
        TrainingRecipe recipe = TrainingRecipe.Parse(parse.GetValue(_recipe)!);
        bool dropout = parse.GetValue(_dpDropout);
        bool noDropout = parse.GetValue(_dpNoDropout);
        if (dropout && noDropout)
        {
            throw new UsageException("--dp-dropout and --dp-no-dropout contradict each other: give one (the default is the --recipe's)");
        }

        if (parse.GetValue(_warmCache) is string cache && File.Exists(cache))
        {
            // Found here, not after the warm start's training, when the first model would be saved into it.
            throw new UsageException($"--warm-start-cache {cache} is a file; give a folder (it is created when missing) to keep the warm-start models in.");
        }

        // Checked before any corpus is read or split (a missing one was found only when the warm start began, exit 1).
        if (parse.GetValue(_warmStart) is string warmStart)
        {
            InputPaths.RequireFolder(warmStart, "--warm-start", InputPaths.Corpus);
        }

        foreach (string folder in (parse.GetValue(_pretrainText) ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            InputPaths.RequireFolder(folder, "--pretrain-text", InputPaths.Corpus);
        }

        return options with
        {
            RecipeName = recipe.Name,
            LocalEpochs = parse.GetValue(_localEpochs) ?? recipe.LocalEpochs,
            LearningRate = parse.GetValue(_lr) ?? recipe.LearningRate,
            DpOptimizer = parse.GetValue(_dpOptimizer) is string optimizer ? Optimizer(optimizer, "--dp-optimizer") : recipe.DpOptimizer,
            DpLearningRate = parse.GetValue(_dpLr) ?? recipe.DpLearningRate,
            SampleRate = parse.GetValue(_sampleRate) ?? recipe.SampleRate,
            DpStepsPerRound = parse.GetValue(_dpSteps) ?? recipe.DpStepsPerRound,
            GradClip = parse.GetValue(_gradClip) ?? recipe.GradClip,
            DpNoDropout = noDropout || (!dropout && recipe.DpNoDropout),
            WarmStartDirectory = parse.GetValue(_warmStart),
            WarmStartEpochs = parse.GetValue(_warmEpochs),
            WarmStartCache = parse.GetValue(_warmCache),
            WarmStartAllSplits = parse.GetValue(_warmSplits) == "all",
            PretrainTextDirectories = parse.GetValue(_pretrainText) is string text ? [.. text.Split(',', StringSplitOptions.TrimEntries)] : [],
            PretrainEpochs = parse.GetValue(_pretrainEpochs),
            GivenOptions = GivenOptions(parse),
        };
    }

    /// <summary>
    /// The names of the options given on the command line, not filled in from a default: Validate reports an option given at
    /// its default value without the option it needs as it reports any other value.
    /// </summary>
    internal static IReadOnlySet<string> GivenOptions(ParseResult parse) =>
        parse.CommandResult.Children.OfType<OptionResult>().Where(r => !r.Implicit).Select(r => r.Option.Name).ToHashSet(StringComparer.Ordinal);

    private static Option<string> CreateRecipe()
    {
        var option = new Option<string>("--recipe")
        {
            Description = "Defaults of the options below that are not given: product (what the agents and the demo run: 2 local epochs and adam lr 0.01 without DP; DP-SGD with sgd, lr 2, C 2, q 0.3, 20 steps a round, no dropout; q 0.1 and 2 local epochs of DP-SGD up to session 41, lr 0.5 and C 8 up to session 39) or first-session (1 local epoch; adam lr 0.003 without DP; DP-SGD with adam, lr 0.003, C 1, q 0.02, dropout: how every experiment and privacy audit command in the docs up to session 21 ran; it learns nothing under DP at ε ≤ 3 from a random model).",
            DefaultValueFactory = _ => TrainingRecipe.Product.Name,
        };
        option.CompletionSources.Add([.. TrainingRecipe.All.Select(r => r.Name)]);
        option.Validators.Add(result =>
        {
            try
            {
                TrainingRecipe.Parse(result.GetValueOrDefault<string>());
            }
            catch (ArgumentException ex)
            {
                result.AddError(ex.Message);
            }
        });
        return option;
    }

    /// <summary><paramref name="text"/> followed by the default under each recipe.</summary>
    private static string Default(string text, Func<TrainingRecipe, object> value) =>
        $"{text} Default: {string.Join(", ", TrainingRecipe.All.Select(r => string.Create(CultureInfo.InvariantCulture, $"{value(r)} ({r.Name})")))}.";

    private static Option<string> CreateWarmSplits()
    {
        var option = new Option<string>("--warm-start-splits") { Description = "Which splits of the public --warm-start corpus to train on: train (train.tsv) or all (train, dev and test: every split of a public corpus is public; more public data, a better start).", DefaultValueFactory = _ => "train" };
        option.AcceptOnlyFromAmong("train", "all");
        return option;
    }

    /// <summary>adam or sgd; anything else is a usage error naming <paramref name="option"/>.</summary>
    public static TaggerOptimizer Optimizer(string name, string option) => name switch
    {
        "adam" => TaggerOptimizer.Adam,
        "sgd" => TaggerOptimizer.Sgd,
        _ => throw new UsageException($"{option} must be adam or sgd, not '{name}'"),
    };
}
