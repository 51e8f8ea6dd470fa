using System.Globalization;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using SecureFed.Aggregator.Operations;
using SecureFed.Protocol;
using System.Text.Json;
using Deque.AxeCore.Commons;

namespace SecureFed.Integration.Tests.Operations;

/// <summary>
/// The operator console in headless Chromium (Debian's chromium and chromium-driver, as .ci/run installs them), driven
/// as an operator would: log in with the provisioned token, watch a real federation (aggregator + 3 agents over mTLS
/// gRPC) advance stage by stage, see the site that dropped shown as dropped; no script errors and no level-A
/// accessibility violations (axe-core). Skipped, saying so, where Chromium or chromedriver is missing.
/// </summary>
public sealed class OperatorConsoleBrowserTests : IDisposable
{
    private static readonly string[] StageOrder = ["waiting", "advertise_keys", "share_keys", "masked_input", "consistency", "unmasking", "completed", "aborted", "finished"];
    private readonly string _dir = Directory.CreateTempSubdirectory("securefed-console-browser-").FullName;

    [SkippableFact]
    public async Task Console_RealFederationInChromium_ShowsRoundAdvancingAndDroppedSiteWithoutErrorsOrLevelAViolations()
    {
        string? chromium = HeadlessChromium.FindExecutable("chromium", "chromium-browser", "google-chrome");
        string? chromedriver = HeadlessChromium.FindExecutable("chromedriver");
        Skip.If(chromium is null || chromedriver is null,
            $"Chromium or chromedriver is not installed (chromium: {chromium ?? "not found"}, chromedriver: {chromedriver ?? "not found"}); " +
            "install them with 'apt-get install chromium chromium-driver' to run the operator console's browser test.");

        // Arrange: the aggregator with its admin listener; site-jp goes silent before its masked input in round 2 (the
        // last), so the masked-input stage waits out its 4 s deadline and the page keeps showing site-jp dropped.
        await using OperatorFederation federation = await OperatorFederation.StartAsync(_dir, rounds: 2, ("site-jp", 2, ProtocolStage.MaskedInputCollection), stageTimeoutSeconds: 4);
        // Only that stage's deadline may pass: a site starved (Chromium beside it) must not be dropped elsewhere.
        DropoutDeadline.ShortOnlyAt(federation.Federation.Aggregator.Services, 2, ProtocolStage.MaskedInputCollection, 4);
        using ChromeDriver driver = HeadlessChromium.Start(chromium!, chromedriver!, _dir);
        driver.Manage().Window.Size = new System.Drawing.Size(1366, 900);

        // Without the credential: the login form, not the console.
        driver.Navigate().GoToUrl(federation.Admin);
        Assert.Empty(driver.FindElements(By.Id("sites")));
        driver.FindElement(By.Id("token")).SendKeys(new string('0', 64));
        driver.FindElement(By.Id("login")).Click();
        // The form posts and the answer is a new page: wait for it (the click may return before the navigation ends).
        Assert.Equal("That is not the operator token.", Wait(driver, TimeSpan.FromSeconds(10), d => d.FindElement(By.Id("login-error")).Text));
        AssertNoLevelAViolations(driver, "login page");

        // With the provisioned token: the console, before any agent is up.
        driver.FindElement(By.Id("token")).SendKeys(federation.Token);
        driver.FindElement(By.Id("login")).Click();
        Assert.StartsWith("No round is open.", Wait(driver, TimeSpan.FromSeconds(10), d => d.FindElement(By.Id("round-status")).Text), StringComparison.Ordinal);

        // Act: the agents start (each trains for 5 s, so the training stage stays on the page for several of its
        // one-second updates even on a loaded machine); the page updates itself. StartAgentsAsync builds the agents' hosts
        // before it returns, so the page is read from the moment the hosts start, which under load can be after round 1
        // opened: any open stage of round 1 counts below, round 2's stages are required by name.
        Task agents = federation.StartAgentsAsync(TimeSpan.FromSeconds(5));
        var seen = new List<(long Round, string Stage)>();
        DateTime deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            if (agents.IsFaulted)
            {
                await agents; // the agents could not start: their error, not a timeout below
            }

            (long, string)? now = ReadStatus(driver);
            if (now is { } s && (seen.Count == 0 || seen[^1] != s))
            {
                seen.Add(s);
            }

            if (now?.Item2 == "finished")
            {
                break;
            }

            await Task.Delay(100);
        }

        await agents;

        // Assert: the rounds advanced through their stages in order, as the page showed them. Round 1 must have been
        // shown open (its training alone keeps it open for 5 s); which of its stages the one-second updates caught
        // depends on the machine's load, so any open stage counts. Round 2's training and its masked-input stage
        // (waiting out site-jp's 4 s deadline) are each long enough to be seen by name.
        string trail = string.Join(" → ", seen.Select(s => $"{s.Round}:{s.Stage}"));
        Assert.True(seen.Count > 0 && seen[^1].Stage == "finished", "the page never showed the federation finished: " + trail);
        string[] open = ["advertise_keys", "share_keys", "masked_input", "consistency", "unmasking"];
        Assert.True(seen.Any(s => s.Round == 1 && open.Contains(s.Stage)), "the page never showed round 1 open: " + trail);
        Assert.Contains((2L, "advertise_keys"), seen);
        Assert.Contains((2L, "masked_input"), seen);
        for (int i = 1; i < seen.Count; i++)
        {
            (long r0, string s0) = seen[i - 1];
            (long r1, string s1) = seen[i];
            bool forward = s1 == "finished" || r1 > r0 || (r1 == r0 && Array.IndexOf(StageOrder, s1) > Array.IndexOf(StageOrder, s0));
            Assert.True(forward, $"the page went backwards from {r0}:{s0} to {r1}:{s1} ({trail})");
        }

        // The dropped site, in words, and the two that contributed.
        Assert.Equal("dropped", Wait(driver, TimeSpan.FromSeconds(5), d => d.FindElement(By.CssSelector("#sites tr[data-site='site-jp']")).GetAttribute("data-state") is "dropped" and var state ? state : null));
        // Every read below is retried when the page's one-second update replaces the element between find and read.
        TimeSpan read = TimeSpan.FromSeconds(5);
        Assert.Equal("dropped at masked input", Wait(driver, read, d => d.FindElement(By.XPath("//table[@id='sites']//tr[@data-site='site-jp']/td[2]")).Text));
        foreach (string site in new[] { "site-de", "site-fr" })
        {
            Assert.Equal("contributed", Wait(driver, read, d => d.FindElement(By.CssSelector($"#sites tr[data-site='{site}']")).GetAttribute("data-state")));
        }

        // History: two completed rounds; the federation F1 column waits for federated evaluation.
        Assert.Equal(["completed", "completed"], Wait(driver, read, d => d.FindElements(By.CssSelector("#history tbody tr")).Select(r => r.GetAttribute("data-outcome") ?? "").ToArray()));
        Assert.All(Wait(driver, read, d => d.FindElements(By.CssSelector("#history td.f1")).Select(c => c.Text).ToArray()), t => Assert.Equal(OperatorConsole.NotAvailable, t));
        Assert.Equal("2", Wait(driver, read, d => d.FindElement(By.Id("model")).GetAttribute("data-version")));
        Assert.True(double.Parse(Wait(driver, read, d => d.FindElement(By.Id("privacy")).GetAttribute("data-spent"))!, CultureInfo.InvariantCulture) > 0);
        Assert.Contains("securefed/securefed-demo/aggregator", Wait(driver, read, d => d.FindElement(By.Id("checkpoint")).Text), StringComparison.Ordinal);

        // When federated evaluation reports a round's F1, the next update shows it.
        federation.Telemetry.ReportFederationF1(2, 0.625);
        Assert.Equal("0.625", Wait(driver, TimeSpan.FromSeconds(5), d =>
            d.FindElement(By.CssSelector("#history tr[data-round='2'] td.f1")).Text is "0.625" and var t ? t : null));

        AssertNoLevelAViolations(driver, "console");
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

    private static (long Round, string Stage)? ReadStatus(IWebDriver driver)
    {
        try
        {
            IWebElement status = driver.FindElement(By.Id("round-status"));
            return (long.Parse(status.GetAttribute("data-round")!, CultureInfo.InvariantCulture), status.GetAttribute("data-stage")!);
        }
        catch (Exception ex) when (ex is StaleElementReferenceException or NoSuchElementException)
        {
            return null; // replaced by the page's update between the two reads
        }
    }

    private static T Wait<T>(IWebDriver driver, TimeSpan timeout, Func<IWebDriver, T?> condition)
    {
        var wait = new WebDriverWait(driver, timeout) { PollingInterval = TimeSpan.FromMilliseconds(100) };
        wait.IgnoreExceptionTypes(typeof(StaleElementReferenceException), typeof(NoSuchElementException));
        return wait.Until(d => condition(d))!;
    }

    private static void AssertNoLevelAViolations(IWebDriver driver, string page)
    {
        // axe-core as Deque ships it, injected and run through WebDriver (what Deque.AxeCore.Selenium does).
        var js = (IJavaScriptExecutor)driver;
        js.ExecuteScript(new BundledAxeScriptProvider().GetScript());
        driver.Manage().Timeouts().AsynchronousJavaScript = TimeSpan.FromSeconds(30);
        string json = (string)js.ExecuteAsyncScript("""
            var done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag21a'] } })
              .then(function (r) {
                done(JSON.stringify({ rules: r.passes.length, violations: r.violations.map(function (v) {
                  return v.id + ': ' + v.help + ' (' + v.nodes.map(function (n) { return n.target.join(' '); }).join(', ') + ')'; }) }));
              })
              .catch(function (e) { done(JSON.stringify({ rules: 0, violations: ['axe failed: ' + e] })); });
            """)!;
        using JsonDocument result = JsonDocument.Parse(json);
        string[] violations = [.. result.RootElement.GetProperty("violations").EnumerateArray().Select(v => v.GetString()!)];
        Assert.True(violations.Length == 0, $"{page}: accessibility violations (level A): " + string.Join("; ", violations));
        Assert.True(result.RootElement.GetProperty("rules").GetInt32() > 5, $"{page}: axe-core checked almost nothing ({json})");
    }
}
