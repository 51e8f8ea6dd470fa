using System.CommandLine;
using System.CommandLine.Parsing;
using SecureFed.Experiments;
using SecureFed.Tagger;

namespace SecureFed.Cli.Commands;

/// <summary>
/// The federated training recipe's options shared by <c>securefed experiment</c> and <c>securefed privacy audit</c>
/// (DP-SGD and the public warm start), so both commands spell, default and apply them the same way.
/// </summary>
internal sealed class TrainingRecipeOptions
{
    private readonly Option<string> _dpOptimizer = new("--dp-optimizer") { Description = "Local optimiser with DP-SGD: adam or sgd.", DefaultValueFactory = _ => "adam" };
    private readonly Option<double> _dpLr = new("--dp-lr") { Description = "Local learning rate with DP-SGD.", DefaultValueFactory = _ => 0.003 };
    private readonly Option<double> _sampleRate = new("--sample-rate") { Description = "DP-SGD Poisson sampling rate q (expected batch q·N).", DefaultValueFactory = _ => 0.02 };
    private readonly Option<int> _dpSteps = new("--dp-steps") { Description = "DP-SGD steps per site per round (0 = local epochs × round(1/q)).", DefaultValueFactory = _ => 0 };
    private readonly Option<double> _gradClip = new("--grad-clip") { Description = "DP-SGD per-example gradient clip C.", DefaultValueFactory = _ => 1.0 };
    private readonly Option<string?> _warmStart = new("--warm-start") { Description = "Public corpus folder (not an evaluated one) to train the initial model on, e.g. bc5cdr for NCBI-disease sites." };
    private readonly Option<int> _warmEpochs = new("--warm-start-epochs") { Description = "Epochs of the public warm start.", DefaultValueFactory = _ => 3 };
    private readonly Option<string> _warmSplits = CreateWarmSplits();
    private readonly Option<string?> _warmCache = new("--warm-start-cache") { Description = "Folder to keep public warm-start models in and reuse them from (same corpus, epochs, config, types and seed)." };
    private readonly Option<string?> _pretrainText = new("--pretrain-text") { Description = "Comma-separated public corpus folders (train/dev/test.tsv; tokens only, labels ignored) whose text pretrains the warm start's encoder with a bidirectional language-model objective (ELMo-style: each LSTM direction predicts the next / previous word's hash bucket) before --warm-start trains it; never the evaluated corpus. Needs --warm-start and a one-layer model (tiny, tiny-crf); cached in --warm-start-cache." };
    private readonly Option<int> _pretrainEpochs = new("--pretrain-epochs") { Description = "Passes of the --pretrain-text language-model pretraining.", DefaultValueFactory = _ => 1 };

    /// <summary>Every option, to add to a command.</summary>
    public IEnumerable<Option> All => [_dpOptimizer, _dpLr, _sampleRate, _dpSteps, _gradClip, _warmStart, _warmEpochs, _warmSplits, _warmCache, _pretrainText, _pretrainEpochs];

    /// <summary>The parsed recipe on top of <paramref name="options"/>.</summary>
    public ExperimentOptions Apply(ParseResult parse, ExperimentOptions options) => options with
    {
        DpOptimizer = Optimizer(parse.GetValue(_dpOptimizer)!, "--dp-optimizer"),
        DpLearningRate = parse.GetValue(_dpLr),
        SampleRate = parse.GetValue(_sampleRate),
        DpStepsPerRound = parse.GetValue(_dpSteps),
        GradClip = parse.GetValue(_gradClip),
        WarmStartDirectory = parse.GetValue(_warmStart),
        WarmStartEpochs = parse.GetValue(_warmEpochs),
        WarmStartCache = parse.GetValue(_warmCache),
        WarmStartAllSplits = parse.GetValue(_warmSplits) == "all",
        PretrainTextDirectories = parse.GetValue(_pretrainText) is string text ? [.. text.Split(',', StringSplitOptions.TrimEntries)] : [],
        PretrainEpochs = parse.GetValue(_pretrainEpochs),
    };

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
