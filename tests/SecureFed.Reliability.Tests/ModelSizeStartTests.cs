using SecureFed.Aggregator;
using SecureFed.Aggregator.Persistence;
using SecureFed.Federation;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// A model whose size is not the specification's is refused at start-up, naming both counts (CLI crash hunt, session 57).
/// Before, an <c>InitialModel</c> of any size was stored as version 0 and every agent then declined every round ("the
/// round expects N parameters"); correcting the setting did not help, since the store already held a model.
/// </summary>
public sealed class ModelSizeStartTests : IDisposable
{
    private const int SpecParameters = 837;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "securefed-model-size-" + Guid.NewGuid().ToString("N"));
    private readonly ProvisionResult _fed;

    public ModelSizeStartTests()
    {
        _fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "size", ["site-a", "site-b"], "127.0.0.1"));
    }

    [Fact]
    public void Open_InitialModelOfAnotherSize_RefusedNamingBothCountsAndNothingStored()
    {
        string wrong = WriteModel("wrong.f32", 10);
        AggregatorOptions options = Options(initialModel: wrong);

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(options, initialModelFactory: null));

        Assert.Contains($"SecureFed:InitialModel '{wrong}' holds 10 parameters", ex.Message, StringComparison.Ordinal);
        Assert.Contains("describes a model of 837", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was stored", ex.Message, StringComparison.Ordinal);

        // The corrected setting is read: the refused file left no version 0 behind.
        string right = WriteModel("right.f32", SpecParameters);
        options.InitialModel = right;
        using (AggregatorState state = AggregatorState.Open(options, initialModelFactory: null))
        {
            Assert.Equal((0L, SpecParameters), (state.Model.Current.Version, state.Model.ParameterCount));
        }
    }

    [Fact]
    public void Open_StoredModelOfAnotherSizeThanTheSpec_RefusedNamingTheVersionAndBothCounts()
    {
        AggregatorOptions options = Options(initialModel: null);
        options.ModelParameterCount = 0; // a store made without the check (or for another specification)
        using (AggregatorState.Open(options, new float[8]))
        {
        }

        options.ModelParameterCount = SpecParameters;
        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(options, new float[SpecParameters]));

        Assert.Contains("Model version 0 in '", ex.Message, StringComparison.Ordinal);
        Assert.Contains("has 8 parameters, but the model specification (SecureFed:ModelSpec) describes a model of 837", ex.Message, StringComparison.Ordinal);
        using var store = AggregatorStore.Open(AggregatorState.StorePath(options.DataDirectory));
        Assert.Equal(0, Assert.Single(store.ListModels()).Version);
    }

    [Fact]
    public void Open_ModelOfTheSpecsSize_Starts()
    {
        AggregatorOptions options = Options(initialModel: WriteModel("initial.f32", SpecParameters));
        using (AggregatorState.Open(options, initialModelFactory: null))
        {
        }

        using AggregatorState again = AggregatorState.Open(options, initialModelFactory: null);
        Assert.Equal(SpecParameters, again.Model.ParameterCount);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private string WriteModel(string name, int parameters)
    {
        string path = Path.Combine(_dir, name);
        byte[] bytes = new byte[parameters * sizeof(float)];
        for (int i = 0; i < parameters; i++)
        {
            BitConverter.TryWriteBytes(bytes.AsSpan(i * sizeof(float)), 0.01f * i);
        }

        File.WriteAllBytes(path, bytes);
        return path;
    }

    private AggregatorOptions Options(string? initialModel) => new()
    {
        Federation = "size",
        KitDirectory = _fed.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_dir, "aggregator"),
        InitialModel = initialModel,
        ModelParameterCount = SpecParameters,
    };
}
