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
