using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Experiments;
using SecureFed.Privacy;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The product's training recipe is one set of numbers: the agents', the aggregator's, the demo's and
/// <c>securefed experiment</c>'s defaults (<see cref="TrainingRecipe.Product"/>) may not drift apart.
/// </summary>
public sealed class RecipeDefaultsTests
{
    private static readonly TrainingRecipe Product = TrainingRecipe.Product;

    [Fact]
    public void AgentDefaults_AreTheProductRecipe()
    {
        var agent = new AgentOptions();

        Assert.Equal(Product.DpLearningRate, agent.LearningRate);
        Assert.Equal(Product.DpOptimizer.ToString(), agent.Optimizer, ignoreCase: true);
        Assert.Equal(Product.DpNoDropout, !agent.DpDropout);
    }

    [Fact]
    public void AggregatorDefaults_AreTheProductRecipe()
    {
        var aggregator = new AggregatorOptions();

        Assert.Equal(Product.SampleRate, aggregator.DpSgdSampleRate);
        Assert.Equal(Product.GradClip, aggregator.DpSgdMaxGradNorm);
        Assert.Equal(Product.AnnouncedLocalEpochs, aggregator.LocalEpochs);
        Assert.Equal(Product.DpStepsPerRound, aggregator.DpSgdMaxSteps);
        // The steps an agent takes from the announcement are the recipe's: 7 × round(1 / 0.3) = 21, capped at 20.
        var plan = new LocalTrainingPlan(1, aggregator.LocalEpochs, aggregator.DpSgdNoiseMultiplier, aggregator.DpSgdMaxGradNorm, aggregator.DpSgdSampleRate) { MaxSteps = aggregator.DpSgdMaxSteps };
        Assert.Equal(20, plan.Steps);
        Assert.Equal(Product.DpStepsPerRound, plan.Steps);
        Assert.Equal(new ExperimentOptions().EffectiveDpStepsPerRound, plan.Steps);
    }

    /// <summary>
    /// The aggregator's default σ spends at most the agents' default budget (ε = 8 at δ = 1e-5) in the demo's 10 rounds,
    /// and not much less: it is the RDP accountant's σ for that, rounded up.
    /// </summary>
    [Fact]
    public void AggregatorDefaultNoise_TenRoundsSpendJustUnderTheAgentsBudget()
    {
        var aggregator = new AggregatorOptions();
        var agent = new AgentOptions();
        long steps = 10L * Product.DpStepsPerRound;

        double calibrated = NoiseCalibration.NoiseMultiplierFor(agent.EpsilonBudget, agent.Delta, aggregator.DpSgdSampleRate, steps);
        var accountant = new RdpAccountant();
        accountant.AddSubsampledGaussian(aggregator.DpSgdSampleRate, aggregator.DpSgdNoiseMultiplier, steps);
        double spent = accountant.GetPrivacySpent(agent.Delta).Epsilon;

        Assert.InRange(aggregator.DpSgdNoiseMultiplier, calibrated, calibrated + 0.01);
        Assert.InRange(spent, agent.EpsilonBudget - 0.1, agent.EpsilonBudget);
    }

    [Fact]
    public void AnnouncedLocalEpochs_FewestEpochsWhoseAgentStepsReachTheRecipesSteps()
    {
        Assert.Equal(7, Product.AnnouncedLocalEpochs);
        Assert.Equal(TrainingRecipe.FirstSession.LocalEpochs, TrainingRecipe.FirstSession.AnnouncedLocalEpochs);
        Assert.Equal(2, (Product with { SampleRate = 0.1 }).AnnouncedLocalEpochs); // 2 × 10 = 20
        Assert.Equal(2, (Product with { SampleRate = 0.07 }).AnnouncedLocalEpochs); // 2 × 14 = 28 ≥ 20 > 14
        Assert.Equal(10, (Product with { SampleRate = 0.5 }).AnnouncedLocalEpochs); // 10 × 2 = 20
        Assert.Equal(1, (Product with { SampleRate = 0.02 }).AnnouncedLocalEpochs); // 1 × 50 ≥ 20
    }

    [Theory]
    [InlineData(2, 0.1, 0, 20)]
    [InlineData(7, 0.3, 20, 20)] // the product's: 21 capped
    [InlineData(7, 0.3, 0, 21)]
    [InlineData(6, 0.3, 0, 18)] // round(1/q) steps an epoch, as the trainer's Poisson batches: not ceil(6 / 0.3) = 20
    [InlineData(3, 0.5, 1, 1)]
    [InlineData(1, 0.001, 0, 1000)]
    [InlineData(50, 1e-9, 0, 50_000_000_000)] // more than the planners allow, still counted in full: a site never accounts fewer steps than it takes
    [InlineData(50, 1e-300, 0, long.MaxValue)]
    public void StepsPerRound_EpochsTimesRoundedInverseRate_AtMostTheCap(int epochs, double q, int cap, long steps)
    {
        Assert.Equal(steps, DpSgdOptions.StepsPerRound(epochs, q, cap));
        Assert.Equal(steps, new LocalTrainingPlan(1, epochs, 1.0, 1.0, q) { MaxSteps = cap }.Steps);
    }

    [Fact]
    public void ExperimentOptionsDefaults_AreTheProductRecipe()
    {
        var options = new ExperimentOptions();

        Assert.Equal(Product.Name, options.RecipeName);
        Assert.Equal(Product, new TrainingRecipe(options.RecipeName, options.LocalEpochs, options.LearningRate, options.DpOptimizer, options.DpLearningRate, options.SampleRate, options.GradClip, options.DpStepsPerRound, options.DpNoDropout));
        Assert.Equal(20, options.EffectiveDpStepsPerRound);
    }

    /// <summary>
    /// The experiment's DP-SGD steps per epoch come from <see cref="DpSgdOptions.StepsPerEpoch"/>, as the trainer's Poisson
    /// batches do: round(1/q), at least 1, the same numbers as the inline max(1, (int)round(1/q)) they replaced.
    /// </summary>
    [Theory]
    [InlineData(0.3, 3)]
    [InlineData(0.1, 10)]
    [InlineData(0.07, 14)]
    [InlineData(0.4, 2)]
    [InlineData(1.0, 1)]
    [InlineData(0.001, 1000)]
    public void EffectiveDpStepsPerRound_LocalEpochsTimesStepsPerEpoch_AsTheInlineRounding(double q, int perEpoch)
    {
        var options = new ExperimentOptions { SampleRate = q, LocalEpochs = 2, DpStepsPerRound = 0 };

        Assert.Equal(perEpoch, (int)DpSgdOptions.StepsPerEpoch(q));
        Assert.Equal(Math.Max(1, (int)Math.Round(1.0 / q)), (int)DpSgdOptions.StepsPerEpoch(q));
        Assert.Equal(2 * perEpoch, options.EffectiveDpStepsPerRound);
    }

    [Fact]
    public void DemoComparisonsWithoutDp_TrainAtTheProductRecipesLearningRate()
    {
        var plain = SecureFed.Cli.Demo.DemoBaselines.PlainOptions(epochs: 4, seed: 1);

        Assert.Equal(Product.LearningRate, plain.LearningRate);
        Assert.Equal(TaggerOptimizer.Adam, plain.Optimizer);
        Assert.Equal(0.003, TrainingRecipe.FirstSession.LearningRate);
    }

    [Fact]
    public void Parse_UnknownRecipe_ErrorListsTheNames()
    {
        Assert.Same(TrainingRecipe.FirstSession, TrainingRecipe.Parse("first-session"));
        var error = Assert.Throws<ArgumentException>(() => TrainingRecipe.Parse("fast"));
        Assert.Contains("product, first-session", error.Message, StringComparison.Ordinal);
        Assert.Contains("'fast'", error.Message, StringComparison.Ordinal);
        Assert.Equal(TaggerOptimizer.Adam, TrainingRecipe.FirstSession.DpOptimizer);
    }
}
