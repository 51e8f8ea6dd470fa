namespace SecureFed.Federation.Tests;

/// <summary>Misspelt configuration keys, which binding would silently ignore, are named with the setting they meant.</summary>
public sealed class SettingNamesTests
{
    private sealed class Options
    {
        public double EpsilonBudget { get; set; }

        public int MinSites { get; set; }

        public string Listen { get; set; } = "";

        public bool AdminEnabled => Listen.Length > 0;
    }

    [Fact]
    public void Unknown_KnownKeysInAnyCaseAndAllowedExtras_NoProblem()
    {
        Assert.Empty(SettingNames.Unknown("SecureFed", ["EpsilonBudget", "minsites", "LISTEN", "ModelSpec"], typeof(Options), "ModelSpec"));
    }

    [Theory]
    [InlineData("EpsilonBuget", "SecureFed:EpsilonBuget is not a setting (did you mean SecureFed:EpsilonBudget?).")]
    [InlineData("MinSite", "SecureFed:MinSite is not a setting (did you mean SecureFed:MinSites?).")]
    [InlineData("listne", "SecureFed:listne is not a setting (did you mean SecureFed:Listen?).")]
    [InlineData("Completely", "SecureFed:Completely is not a setting.")]
    public void Unknown_OtherKey_NamedWithTheNearestSettingWhenItIsATypo(string key, string expected)
    {
        Assert.Equal([expected], SettingNames.Unknown("SecureFed", [key, "MinSites"], typeof(Options)));
    }

    [Fact]
    public void Unknown_ReadOnlyProperty_NotASettingBindingWouldIgnoreIt()
    {
        Assert.Equal(["SecureFed:AdminEnabled is not a setting."], SettingNames.Unknown("SecureFed", ["AdminEnabled"], typeof(Options)));
    }

    [Fact]
    public void Unknown_SeveralKeys_OneProblemEachInOrdinalOrder()
    {
        IReadOnlyList<string> problems = SettingNames.Unknown("S", ["Zeta", "Alpha", "alpha"], typeof(Options));

        Assert.Equal(["S:Alpha is not a setting.", "S:Zeta is not a setting."], problems);
    }

    private sealed class ShapedOptions
    {
        public int Rounds { get; set; }

        public double Delta { get; set; }

        public bool Enabled { get; set; }

        public int? Port { get; set; }

        public string Name { get; set; } = "";

        public float[] Scales { get; set; } = [];

        public string[] Types { get; set; } = [];
    }

    private static SettingNode Leaf(string key, string? value) => new(key, value, []);

    private static SettingNode Section(string key, params SettingNode[] children) => new(key, null, children);

    [Fact]
    public void Shape_ValuesOfTheirSettingsTypes_NoProblem()
    {
        SettingNode[] children =
        [
            Leaf("Rounds", "10"), Leaf("delta", "1e-5"), Leaf("Enabled", "True"), Leaf("Port", ""), Leaf("Name", "x"),
            Section("Scales", Leaf("0", "0.5"), Leaf("1", "2")), Leaf("Types", ""), Leaf("Unknown", "whatever"),
        ];

        Assert.Empty(SettingNames.Shape("S", children, typeof(ShapedOptions)));
    }

    [Fact]
    public void Shape_ListGivenAsOneValue_NamesHowToGiveAList()
    {
        IReadOnlyList<string> problems = SettingNames.Shape("S", [Leaf("Scales", "0.5,0.5"), Leaf("Types", "Disease")], typeof(ShapedOptions));

        Assert.Equal(
        [
            "S:Scales is a list, but it was given as one value '0.5,0.5' (configuration binding would ignore it); give each element its own index: --S:Scales:0=0.5 --S:Scales:1=0.5, or a JSON array in the config file: \"Scales\": [0.5, 0.5].",
            "S:Types is a list, but it was given as one value 'Disease' (configuration binding would ignore it); give each element its own index: --S:Types:0=Disease, or a JSON array in the config file: \"Types\": [\"Disease\"].",
        ], problems);
    }

    [Fact]
    public void Shape_ListValueAlongsideElementsFromAnotherSource_StillNamed()
    {
        IReadOnlyList<string> problems = SettingNames.Shape("S", [new SettingNode("Types", "Disease", [Leaf("0", "Chemical")])], typeof(ShapedOptions));

        Assert.StartsWith("S:Types is a list, but it was given as one value 'Disease'", Assert.Single(problems), StringComparison.Ordinal);
    }

    [Fact]
    public void Shape_ObjectWhereOneValueBelongs_NamesTheKeyAndItsChildren()
    {
        IReadOnlyList<string> problems = SettingNames.Shape("S", [Section("Rounds", Leaf("a", "1")), Section("Port", Section("x", Leaf("y", "1")))], typeof(ShapedOptions));

        Assert.Equal(2, problems.Count);
        Assert.StartsWith("S:Port must be a whole number (at most 2147483647), but the configuration gives it an object or list (with x)", problems[0], StringComparison.Ordinal);
        Assert.StartsWith("S:Rounds must be a whole number (at most 2147483647), but the configuration gives it an object or list (with a)", problems[1], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Rounds", "ten", "S:Rounds is 'ten', which is not a whole number (at most 2147483647).")]
    [InlineData("Rounds", "3000000000", "S:Rounds is '3000000000', which is not a whole number (at most 2147483647).")]
    [InlineData("Rounds", "1.5", "S:Rounds is '1.5', which is not a whole number (at most 2147483647).")]
    [InlineData("Delta", "0,5", "S:Delta is '0,5', which is not a number (with a decimal point, e.g. 0.5 or 1e-5).")]
    [InlineData("Enabled", "yes", "S:Enabled is 'yes', which is not true or false.")]
    [InlineData("Port", "x", "S:Port is 'x', which is not a whole number (at most 2147483647).")]
    public void Shape_ValueNotOfTheType_NamesKeyValueAndTypeInPlainWords(string key, string value, string expected)
    {
        Assert.Equal([expected], SettingNames.Shape("S", [Leaf(key, value)], typeof(ShapedOptions)));
    }

    [Fact]
    public void Shape_BadListElement_NamedByIndex()
    {
        IReadOnlyList<string> problems = SettingNames.Shape("S", [Section("Scales", Leaf("0", "0.5"), Leaf("1", "half"))], typeof(ShapedOptions));

        Assert.Equal(["S:Scales:1 is 'half', which is not a number (with a decimal point, e.g. 0.5 or 1e-5)."], problems);
    }
}
