using Microsoft.Extensions.Configuration;
using SecureFed.Agent;
using SecureFed.Aggregator;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Paths and addresses that name the wrong kind of thing are refused at start-up naming the setting. Before, an agent's
/// or the aggregator's <c>DataDirectory</c> that is a file failed with "The file '…' already exists" (no setting named),
/// a <c>TrainFile</c> that is a folder was said not to exist, and an agent with <c>Aggregator</c> = https://host:0 started
/// and retried port 0 forever; an <c>InitialModel</c> folder was "Access to the path … is denied" and a <c>KitDirectory</c>
/// that is a file "does not exist".
/// </summary>
public sealed class SettingPathOptionsTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-paths-").FullName;

    [Fact]
    public void AgentValidate_DataDirectoryIsAFile_RefusedNamingTheSetting()
    {
        string file = Path.Combine(_dir, "ledger.jsonl");
        File.WriteAllText(file, "kept\n");

        string error = Assert.Single(BindAgent(("DataDirectory", file)).Validate());

        Assert.Equal($"SecureFed:DataDirectory '{file}' is a file; it must be a folder (new or existing) for the privacy ledger and audit log.", error);
        Assert.Equal("kept\n", File.ReadAllText(file));
    }

    [Fact]
    public void AggregatorValidate_DataDirectoryIsAFile_RefusedNamingTheSetting()
    {
        string file = Path.Combine(_dir, "aggregator.db");
        File.WriteAllText(file, "kept\n");
        var options = new AggregatorOptions { Federation = "fed", ModelSpecSha256 = new string('a', 64), DataDirectory = file };

        string error = Assert.Single(options.Validate());

        Assert.Equal($"SecureFed:DataDirectory '{file}' is a file; it must be a folder (new or existing) for the round store, privacy ledger and audit log.", error);
    }

    [Theory]
    [InlineData("TrainFile")]
    [InlineData("DevFile")]
    public void AgentValidate_DataFileIsAFolder_SaysItIsAFolder(string setting)
    {
        string error = Assert.Single(BindAgent((setting, _dir)).Validate());

        Assert.Equal($"SecureFed:{setting} '{_dir}' is a folder; give the path of a CoNLL file.", error);
    }

    [Theory]
    [InlineData("https://127.0.0.1:0", "SecureFed:Aggregator")]
    [InlineData("https://agg.example.org:0", "SecureFed:Aggregator")]
    [InlineData("https://127.0.0.1:7443,https://127.0.0.1:0", "SecureFed:Aggregator entry 2 of 2")]
    public void AgentValidate_AggregatorPortZero_RefusedNamingTheEntry(string aggregator, string which)
    {
        string error = Assert.Single(BindAgent(("Aggregator", aggregator)).Validate());

        Assert.StartsWith($"{which} has port 0, where no aggregator can be reached", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AgentValidate_NewDataDirectoryAndAggregatorPort_Valid()
    {
        Assert.Empty(BindAgent(("DataDirectory", Path.Combine(_dir, "new", "data")), ("Aggregator", "https://127.0.0.1:7443")).Validate());
    }

    [Fact]
    public void InitialModel_FolderOrMissingFile_NamesTheSetting()
    {
        // .NET said "Access to the path '/tmp' is denied." of a folder and "Could not find file …" of a missing file.
        string missing = Path.Combine(_dir, "initial.bin");

        var folder = Assert.Throws<InvalidDataException>(() => AggregatorState.OpenInitialModel(_dir));
        var absent = Assert.Throws<InvalidDataException>(() => AggregatorState.OpenInitialModel(missing));

        Assert.Equal($"SecureFed:InitialModel '{_dir}' is a folder; give a model file (float32, little-endian).", folder.Message);
        Assert.Equal($"SecureFed:InitialModel '{missing}' does not exist; give a model file (float32, little-endian).", absent.Message);
    }

    [Fact]
    public void KitDirectory_IsAFile_SaidToBeAFileNotMissing()
    {
        string file = Path.Combine(_dir, "kit");
        File.WriteAllText(file, "kept\n");

        var error = Assert.Throws<InvalidDataException>(() => SecureFed.Federation.PartyKit.Load(file));

        Assert.Equal($"Kit directory '{file}' is a file; give the folder 'securefed provision' wrote for this party.", error.Message);
    }

    private static AgentOptions BindAgent(params (string Key, string Value)[] overrides)
    {
        var settings = new Dictionary<string, string?> { ["SecureFed:Site"] = "site-a", ["SecureFed:Aggregator"] = "https://127.0.0.1:1" };
        foreach ((string key, string value) in overrides)
        {
            settings["SecureFed:" + key] = value;
        }

        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AgentOptions.Section).Bind(options);
        return options;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
