using System.Collections.ObjectModel;
using System.Globalization;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using SecureFed.Agent;
using SecureFed.Cli;
using SecureFed.Cli.Demo;
using SecureFed.Protocol;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The auditor's report of a real federation run (aggregator + 3 agents over mTLS gRPC, one dropout), written by
/// <c>securefed audit report</c> and opened in headless Chromium through chromedriver, as an auditor would open it.
/// Needs Debian's <c>chromium</c> and <c>chromium-driver</c> (.ci/run installs them); skipped, saying so, without them.
/// </summary>
public sealed class AuditReportBrowserTests : IDisposable
{
    private static readonly string[] Sites = ["site-de", "site-fr", "site-jp"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-report-browser-").FullName;

    [SkippableFact]
    public async Task AuditReport_RealFederationRunInChromium_ShowsVerdictChartAndMatrixOnFirstScreenWithoutErrors()
    {
        string? chromium = HeadlessChromium.FindExecutable("chromium", "chromium-browser", "google-chrome");
        string? chromedriver = HeadlessChromium.FindExecutable("chromedriver");
        Skip.If(chromium is null || chromedriver is null,
            $"Chromium or chromedriver is not installed (chromium: {chromium ?? "not found"}, chromedriver: {chromedriver ?? "not found"}); " +
            "install them with 'apt-get install chromium chromium-driver' to run the audit report's browser test.");

        // Arrange: a real run (site-jp drops before its masked input in round 1), then the CLI writes the report.
        string[] logs = await RunFederationAsync();
        string report = Path.Combine(_dir, "audit-report.html");
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = await CliApp.RunAsync(["audit", "report", .. logs, "--out", report], stdout, stderr, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(code == 0, $"exit {code}\n{stdout}\n{stderr}");

        // Act: open it in Chromium at a laptop's screen size.
        using ChromeDriver driver = HeadlessChromium.Start(chromium!, chromedriver!, _dir);
        driver.Manage().Window.Size = new System.Drawing.Size(1366, 900);
        driver.Navigate().GoToUrl(new Uri(report).AbsoluteUri);

        // Assert: the verdict, in words.
        IWebElement verdict = driver.FindElement(By.Id("verdict-text"));
        Assert.Equal(
            "all 4 logs intact, 2 rounds completed, 0 aborted, 1 dropout, 0 cross-check discrepancies, every site within its patient-level ε budget." +
            " Keys not pinned: each log was checked against its own verifier.key (pin them with --key).",
            verdict.Text);
        Assert.Equal("Verdict: PASSED", driver.FindElement(By.Id("verdict-heading")).Text);
        Assert.Contains("Logs intact: 4 of 4", driver.FindElement(By.Id("verdict")).Text, StringComparison.Ordinal);

        // The chart: one ε series per site, rising over the rounds, each point citing its log line.
        IWebElement chart = driver.FindElement(By.Id("epsilon-chart"));
        Assert.True(chart.Displayed);
        Assert.Equal("img", chart.GetAttribute("role"));
        ReadOnlyCollection<IWebElement> series = chart.FindElements(By.CssSelector("g.series"));
        Assert.Equal(Sites, series.Select(s => s.GetAttribute("data-site")).Order());
        foreach (IWebElement s in series)
        {
            string site = s.GetAttribute("data-site")!;
            double[] ys = [.. s.FindElements(By.TagName("circle")).Select(c => double.Parse(c.GetAttribute("cy")!, CultureInfo.InvariantCulture))];
            Assert.Equal(site == "site-jp" ? 1 : 2, ys.Length);
            Assert.True(ys.Length < 2 || ys[1] < ys[0], $"{site}: ε must rise from round 1 to round 2 (y {string.Join(", ", ys)})");
            string title = s.FindElement(By.TagName("circle")).FindElement(By.TagName("title")).GetAttribute("textContent")!;
            Assert.Matches($"^{site}: ε [0-9.]+ after round [12] \\(budget 10\\) — {site} audit.jsonl line [0-9]+$", title);
            double width = Convert.ToDouble(driver.ExecuteScript("return arguments[0].getBBox().width;", s.FindElement(By.TagName("polyline"))), CultureInfo.InvariantCulture);
            Assert.True(site == "site-jp" || width > 50, $"{site}: the ε line spans {width} px");
        }

        Assert.Equal("budget ε = 10", chart.FindElement(By.CssSelector("g.budget text")).Text);

        // Who took part: site-jp dropped in round 1, everyone contributed to round 2.
        IWebElement matrix = driver.FindElement(By.Id("participation"));
        Assert.Equal("✗ masked input", matrix.FindElement(By.XPath(".//tr[th='site-jp']/td[1]")).Text);
        Assert.Equal("✓", matrix.FindElement(By.XPath(".//tr[th='site-jp']/td[2]")).Text);
        Assert.Equal("✓", matrix.FindElement(By.XPath(".//tr[th='site-de']/td[1]")).Text);

        // The verdict, the chart and the matrix start on the first screen; the details come after.
        long viewport = (long)driver.ExecuteScript("return window.innerHeight;")!;
        foreach (string id in new[] { "verdict", "epsilon-chart", "participation" })
        {
            double top = Convert.ToDouble(driver.ExecuteScript($"return document.getElementById('{id}').getBoundingClientRect().top;"), CultureInfo.InvariantCulture);
            Assert.True(top < viewport, $"#{id} starts at {top} px, below the first screen ({viewport} px)");
        }

        // Offline: nothing was fetched, and the page logged no error.
        Assert.Equal(0L, (long)driver.ExecuteScript("return performance.getEntriesByType('resource').length;")!);
        HeadlessChromium.AssertNoConsoleErrors(driver);
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

    private async Task<string[]> RunFederationAsync()
    {
        const int parameters = 2_000;
        var options = new LocalFederationOptions
        {
            OutputDirectory = _dir,
            Sites = Sites,
            Rounds = 2,
            Aggregator = new Dictionary<string, string>
            {
                ["MinSites"] = "3",
                ["TrainingTimeoutSeconds"] = "30",
                ["WeightCap"] = "1000",
                ["EpsilonBudget"] = "1000",
            },
            Agent = new Dictionary<string, string> { ["CallTimeoutSeconds"] = "10", ["SiteEpsilonBudget"] = "1000", ["EpsilonBudget"] = "10" },
            Drop = ("site-jp", 1, ProtocolStage.MaskedInputCollection),
        };
        var initial = new float[parameters];
        await using LocalFederation federation = await LocalFederation.StartAggregatorAsync(options, initial, FakeTrainer.SpecSha, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        // Round 1's masked-input stage waits out site-jp (5 s); every other stage gets 60 s, never waited out.
        DropoutDeadline.ShortOnlyAt(federation.Aggregator.Services, 1, ProtocolStage.MaskedInputCollection, 5);
        await federation.StartAgentsAsync(
            new ModelSpec(Tagger.TaggerConfig.Tiny, ["Disease"]),
            (site, _) => new FakeTrainer(site, parameters, 400),
            _ => { },
            CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        await federation.WaitAsync(TimeSpan.FromMinutes(2), CancellationToken.None);
        return [Aggregator.AggregatorState.AuditDirectory(federation.AggregatorDataDirectory), .. Sites.Select(s => AgentState.AuditDirectory(federation.AgentDataDirectory(s)))];
    }
}
