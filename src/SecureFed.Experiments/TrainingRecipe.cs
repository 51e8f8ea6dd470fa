using SecureFed.Tagger;

namespace SecureFed.Experiments;

/// <summary>
/// A named set of defaults for the local training of <c>securefed experiment</c> and <c>securefed privacy audit</c>
/// (<c>--recipe</c>): what each option not given on the command line becomes.
/// </summary>
/// <param name="Name">The name <c>--recipe</c> takes.</param>
/// <param name="LocalEpochs">Local epochs per round (with <paramref name="DpStepsPerRound"/> 0 also the DP-SGD steps: epochs × round(1/q)).</param>
/// <param name="LearningRate">The learning rate without DP (of experiment's <c>--optimizer</c>, Adam by default; batches of 32): the arms site alone, pooled and federated, and the public warm start and its pretraining.</param>
/// <param name="DpOptimizer">Local optimiser of the DP-SGD arms.</param>
/// <param name="DpLearningRate">Local learning rate of the DP-SGD arms.</param>
/// <param name="SampleRate">DP-SGD's Poisson sampling rate q.</param>
/// <param name="GradClip">DP-SGD's per-example clip C.</param>
/// <param name="DpStepsPerRound">DP-SGD steps per site and round (0 = <paramref name="LocalEpochs"/> × round(1/q)).</param>
/// <param name="DpNoDropout">Whether DP-SGD computes each example's gradient without dropout.</param>
public sealed record TrainingRecipe(string Name, int LocalEpochs, double LearningRate, TaggerOptimizer DpOptimizer, double DpLearningRate, double SampleRate, double GradClip, int DpStepsPerRound, bool DpNoDropout)
{
    /// <summary>
    /// The product's recipe, the default: what the agents and <c>securefed demo</c> run. DP-SGD: plain SGD at lr 2, C 2,
    /// q 0.3, 20 steps a round (what the aggregator announces: <see cref="AnnouncedLocalEpochs"/>, 7 local epochs of
    /// round(1/0.3) = 3 steps, capped at 20), each example's gradient without dropout. Since session 42; q 0.1 with
    /// 2 local epochs (20 steps) before, 2.3 points under at ε = 8 over two seeds (docs/utility.md "Session 41"); lr 0.5
    /// and C 8 up to session 39 ("Recipe"). Without DP: Adam at lr 0.01, 2 local epochs a round (since session 28: the
    /// federation without DP at 10 rounds × 2 epochs converges in that budget, where lr 0.003 left it 4.5 points under
    /// pooled training; docs/utility.md "Session 28").
    /// <c>AgentOptions</c>, <c>AggregatorOptions</c>, <c>DemoSettings</c> and the demo's comparisons default to the same
    /// values (<c>RecipeDefaultsTests</c>).
    /// </summary>
    public static TrainingRecipe Product { get; } = new("product", 2, 0.01, TaggerOptimizer.Sgd, 2.0, 0.3, 2.0, 20, DpNoDropout: true);

    /// <summary>
    /// The first session's defaults (1 local epoch; Adam at lr 0.003 without DP; DP-SGD with Adam at lr 0.003, C 1, q 0.02,
    /// dropout in each example's gradient): the defaults of every <c>experiment</c> and <c>privacy audit</c> command in the docs up to session 21
    /// (2026-12-02), which reproduce with <c>--recipe first-session</c>. From a random model they learn
    /// nothing under DP at ε ≤ 3 (docs/utility.md "Session 21: the whole table, timed").
    /// </summary>
    public static TrainingRecipe FirstSession { get; } = new("first-session", 1, 0.003, TaggerOptimizer.Adam, 0.003, 0.02, 1.0, 0, DpNoDropout: false);

    /// <summary>
    /// The local epochs an aggregator announces with <see cref="DpStepsPerRound"/> as its step cap, as the experiment's
    /// DP-SGD arms train: ceil(steps / round(1/q)), so that epochs × round(1/q) reaches the cap (<see cref="LocalEpochs"/>
    /// when the recipe has no cap). The product's: 7 (21 steps at q 0.3, capped at 20).
    /// </summary>
    public int AnnouncedLocalEpochs => DpStepsPerRound <= 0 ? LocalEpochs : DpSgdOptions.EpochsFor(DpStepsPerRound, SampleRate);

    /// <summary>Every recipe <c>--recipe</c> accepts, the default first.</summary>
    public static IReadOnlyList<TrainingRecipe> All { get; } = [Product, FirstSession];

    /// <summary>The recipe called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No recipe has that name; the message lists the names.</exception>
    public static TrainingRecipe Parse(string name) =>
        All.FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.Ordinal))
        ?? throw new ArgumentException($"--recipe must be one of {string.Join(", ", All.Select(r => r.Name))}, not '{name}'");
}
