using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Experiments;
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
        Assert.Equal(Product.LocalEpochs, aggregator.LocalEpochs);
        Assert.Equal(Product.DpStepsPerRound, aggregator.DpSgdMaxSteps);
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
