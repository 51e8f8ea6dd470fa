using Microsoft.Data.Sqlite;
using SecureFed.Aggregator;

namespace SecureFed.Cluster.Tests;

/// <summary>
/// The aggregator keeps the model in its round store only (<see cref="ModelState"/> holds its version, SHA-256 and size):
/// the initial model file is streamed into the store bit for bit and checked (finite values) on the way; at start-up
/// the stored model is read once, streamed, and a model whose bytes do not match their recorded SHA-256 stops the
/// start-up naming the version and the store, as the whole-model load did.
/// </summary>
public sealed class AggregatorStateModelTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "securefed-state-model-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public async Task Open_InitialModelFile_StoredBitForBitAndReopenedWithoutHoldingIt()
    {
        await using var federation = new FrontFederation(_directory, "state-model", ["site-a", "site-b", "site-c"]);
        AggregatorOptions options = Options(federation);
        byte[] file = File.ReadAllBytes(federation.InitialModelPath);

        using (AggregatorState state = AggregatorState.Open(options))
        {
            Assert.Equal(0, state.Model.Version);
            Assert.Equal(FrontFederation.Parameters, state.Model.ParameterCount);
            Assert.Equal(ModelState.Digest(federation.InitialModel), state.Model.Sha256);
            Assert.Equal(file, state.Store.LoadModel(0));
        }

        string leftover = Path.Combine(options.DataDirectory, "next-model-0123.tmp"); // a killed fusion's staging file
        File.WriteAllBytes(leftover, [1, 2, 3, 4]);
        string unrelated = Path.Combine(options.DataDirectory, "next-model-notes.txt");
        File.WriteAllText(unrelated, "kept");
        using AggregatorState reopened = AggregatorState.Open(options);
        Assert.Equal((0L, ModelState.Digest(federation.InitialModel)), reopened.Model.Current);
        Assert.Equal(FrontFederation.Parameters, reopened.Model.ParameterCount);
        Assert.False(File.Exists(leftover));
        Assert.True(File.Exists(unrelated));
    }

    [Fact]
    public async Task Open_InitialModelOverWhatTheRoundStoreHolds_RefusedNamingTheLimitNothingStored()
    {
        await using var federation = new FrontFederation(_directory, "state-model-large", ["site-a", "site-b", "site-c"]);
        string large = Path.Combine(_directory, "large-model.bin");
        using (var file = new FileStream(large, FileMode.Create))
        {
            file.SetLength(1_000_000_004); // 250,000,001 zeros (finite), sparse on disk
        }

        AggregatorOptions options = Options(federation);
        options.InitialModel = large;

        var refused = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(options));

        Assert.Equal($"The initial model '{large}' is 1,000,000,004 bytes (250,000,001 parameters); the round store keeps each model version as one SQLite value of at most 1,000,000,000 bytes (250,000,000 parameters).", refused.Message);
        File.Delete(large);
        using AggregatorState state = AggregatorState.Open(Options(federation)); // nothing was stored: the next start-up takes the configured model
        Assert.Equal(FrontFederation.Parameters, state.Model.ParameterCount);
    }

    [Fact]
    public async Task Open_StoredModelTampered_RefusedNamingTheVersionAndStore()
    {
        await using var federation = new FrontFederation(_directory, "state-model-bad", ["site-a", "site-b", "site-c"]);
        AggregatorOptions options = Options(federation);
        string store;
        using (AggregatorState state = AggregatorState.Open(options))
        {
            store = state.Store.Path;
        }

        byte[] tampered = ModelState.ToBytes(federation.InitialModel);
        tampered[4_321] ^= 0x01;
        using (var connection = new SqliteConnection($"Data Source={store};Pooling=False"))
        {
            connection.Open();
            using SqliteCommand command = connection.CreateCommand();
            command.CommandText = "UPDATE models SET bytes = $b WHERE version = 0;";
            command.Parameters.AddWithValue("$b", tampered);
            Assert.Equal(1, command.ExecuteNonQuery());
        }

        var ex = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(options));

        Assert.Contains($"Model version 0 in '{store}' is corrupt: its recorded SHA-256 is {ModelState.Digest(federation.InitialModel)}", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Open_InitialModelFileNotFiniteOrOddLength_RefusedAndNothingStored()
    {
        await using var federation = new FrontFederation(_directory, "state-model-nan", ["site-a", "site-b", "site-c"]);
        float[] values = [.. federation.InitialModel];
        values[2_999] = float.NaN;
        File.WriteAllBytes(federation.InitialModelPath, ModelState.ToBytes(values));

        var notFinite = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(Options(federation)));
        File.WriteAllBytes(federation.InitialModelPath, ModelState.ToBytes(federation.InitialModel)[..^1]);
        var odd = Assert.Throws<InvalidDataException>(() => AggregatorState.Open(Options(federation)));
        File.WriteAllBytes(federation.InitialModelPath, ModelState.ToBytes(federation.InitialModel));
        using AggregatorState state = AggregatorState.Open(Options(federation));

        Assert.Contains("value 2999 is not finite", notFinite.Message, StringComparison.Ordinal);
        Assert.Contains("not a positive multiple of 4", odd.Message, StringComparison.Ordinal);
        Assert.Equal(0, state.Model.Version); // the refused files stored nothing: the good one is version 0
        Assert.Equal(ModelState.Digest(federation.InitialModel), state.Model.Sha256);
    }

    private AggregatorOptions Options(FrontFederation federation) => new()
    {
        Federation = federation.Federation,
        KitDirectory = federation.Provisioned.AggregatorKitDirectory,
        DataDirectory = Path.Combine(_directory, "data"),
        InitialModel = federation.InitialModelPath,
    };
}
