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
}
