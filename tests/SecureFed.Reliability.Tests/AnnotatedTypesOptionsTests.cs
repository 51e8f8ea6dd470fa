using Microsoft.Extensions.Configuration;
using SecureFed.Agent;
using SecureFed.Tagger;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// <c>SecureFed:AnnotatedTypes</c>: a site that marks only some of the federation's types trains on partial labels
/// (docs/tagger.md); the setting binds, its types must be the model's, and data that tags an unlisted type is refused.
/// </summary>
public sealed class AnnotatedTypesOptionsTests
{
    private static readonly ModelSpec Spec = new(TaggerConfig.Tiny, ["Chemical", "Disease", "Gene"]);

    private static readonly Sentence[] Train =
    [
        new(["aspirin", "for", "migraine"], ["O", "O", "B-Disease"]),
        new(["no", "entity"], ["O", "O"]),
    ];

    [Fact]
    public void Bind_CommaSeparatedTypes_ParsedTrimmedAndValid()
    {
        AgentOptions options = Bind(" Disease , Gene ");

        Assert.Equal(["Disease", "Gene"], options.ParsedAnnotatedTypes);
        Assert.Empty(options.Validate());
    }

    [Fact]
    public void Bind_Unset_EveryTypeAnnotatedAndTheDataUnchanged()
    {
        AgentOptions options = Bind(null);

        Assert.Null(options.ParsedAnnotatedTypes);
        Assert.Same(Train, AgentHost.WithAnnotatedTypes(Train, options.ParsedAnnotatedTypes, Spec));
    }

    [Fact]
    public void Validate_TypeTwice_NamesTheSetting()
    {
        IReadOnlyList<string> errors = Bind("Disease,Disease").Validate();

        Assert.Contains(errors, e => e.Contains("SecureFed:AnnotatedTypes", StringComparison.Ordinal));
    }

    [Fact]
    public void WithAnnotatedTypes_ListedTypes_EverySentenceCarriesThem()
    {
        IReadOnlyList<Sentence> marked = AgentHost.WithAnnotatedTypes(Train, ["Disease"], Spec);

        Assert.All(marked, s => Assert.Equal(["Disease"], s.AnnotatedTypes));
        Assert.Equal(Train.Select(s => s.Tags), marked.Select(s => s.Tags));
    }

    [Fact]
    public void WithAnnotatedTypes_TypeNotInTheModel_RefusedNamingItAndTheModelsTypes()
    {
        var error = Assert.Throws<ArgumentException>(() => AgentHost.WithAnnotatedTypes(Train, ["Disease", "Drug"], Spec));

        Assert.Contains("Drug", error.Message, StringComparison.Ordinal);
        Assert.Contains("Chemical, Disease, Gene", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WithAnnotatedTypes_DataTagsAnUnlistedType_RefusedNamingIt()
    {
        var error = Assert.Throws<ArgumentException>(() => AgentHost.WithAnnotatedTypes(Train, ["Gene"], Spec));

        Assert.Contains("tags Disease", error.Message, StringComparison.Ordinal);
        Assert.Contains("SecureFed:AnnotatedTypes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RequireTrainable_EmptyFile_RefusedNamingIt()
    {
        var error = Assert.Throws<ArgumentException>(() => AgentHost.RequireTrainable("/data/train.tsv", [], Spec));

        Assert.Contains("'/data/train.tsv' has no sentence", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RequireTrainable_TagsNoTypeOfTheModel_RefusedNamingBoth()
    {
        Sentence[] shouting = [new(["aspirin", "for", "migraine"], ["O", "O", "B-DISEASE"])];

        var error = Assert.Throws<ArgumentException>(() => AgentHost.RequireTrainable("train.tsv", shouting, Spec));

        Assert.Contains("tags DISEASE", error.Message, StringComparison.Ordinal);
        Assert.Contains("Chemical, Disease, Gene", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RequireTrainable_ModelTypesBesideOthersOrNoEntityAtAll_Accepted()
    {
        Sentence[] extra = [new(["aspirin", "for", "migraine"], ["B-Drug", "O", "B-Disease"])];
        Sentence[] untagged = [new(["no", "entity"], ["O", "O"])];

        AgentHost.RequireTrainable("a.tsv", extra, Spec);
        AgentHost.RequireTrainable("b.tsv", untagged, Spec);
        AgentHost.RequireTrainable("c.tsv", Train, Spec);
    }

    [Fact]
    public void UnknownSettings_MisspeltKey_NamedWithTheSettingItMeant()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SecureFed:Site"] = "site-a",
            ["SecureFed:EpsilonBuget"] = "2",
            ["SecureFed:ModelSpec"] = "spec.json",
            ["SecureFed:annotatedtypes"] = "Disease",
            ["Logging:LogLevel:Default"] = "Warning",
        }).Build();

        IReadOnlyList<string> problems = AgentHost.UnknownSettings(configuration);

        Assert.Equal(["SecureFed:EpsilonBuget is not a setting (did you mean SecureFed:EpsilonBudget?)."], problems);
    }

    [Fact]
    public void Build_MisspeltKey_RefusedWithEveryProblem()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["SecureFed:Site"] = "site-a",
            ["SecureFed:Aggregator"] = "https://127.0.0.1:1",
            ["SecureFed:EpsilonBuget"] = "2",
        }).Build();

        var error = Assert.Throws<Microsoft.Extensions.Options.OptionsValidationException>(() => AgentHost.Build(configuration, Spec));

        Assert.Contains(error.Failures, f => f.Contains("SecureFed:EpsilonBuget is not a setting", StringComparison.Ordinal));
    }

    private static AgentOptions Bind(string? annotated)
    {
        var settings = new Dictionary<string, string?> { ["SecureFed:Site"] = "site-a", ["SecureFed:Aggregator"] = "https://127.0.0.1:1" };
        if (annotated is not null)
        {
            settings["SecureFed:AnnotatedTypes"] = annotated;
        }

        var options = new AgentOptions();
        new ConfigurationBuilder().AddInMemoryCollection(settings).Build().GetSection(AgentOptions.Section).Bind(options);
        return options;
    }
}
