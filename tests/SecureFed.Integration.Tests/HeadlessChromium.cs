using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;

namespace SecureFed.Integration.Tests;

/// <summary>Debian's chromium driven headless through its chromium-driver (installed by .ci/run), for the browser tests.</summary>
internal static class HeadlessChromium
{
    /// <summary>The first of <paramref name="names"/> found on PATH, or null.</summary>
    public static string? FindExecutable(params string[] names)
    {
        string[] folders = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        return names.SelectMany(n => folders.Select(f => Path.Combine(f, n))).FirstOrDefault(File.Exists);
    }

    /// <summary>Starts <paramref name="chromium"/> with a fresh profile under <paramref name="profileParent"/>, browser log on.</summary>
    public static ChromeDriver Start(string chromium, string chromedriver, string profileParent)
    {
        var options = new ChromeOptions { BinaryLocation = chromium };
        // Root in a container: no sandbox; no network, no background services, a fresh profile each time.
        options.AddArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + Path.Combine(profileParent, "chromium-profile"));
        options.SetLoggingPreference(LogType.Browser, LogLevel.All);
        ChromeDriverService service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(chromedriver)!, Path.GetFileName(chromedriver));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
        driver.Manage().Timeouts().PageLoad = TimeSpan.FromSeconds(30);
        return driver;
    }

    /// <summary>Fails when the page logged a warning or an error in the browser console.</summary>
    public static void AssertNoConsoleErrors(IWebDriver driver)
    {
        List<LogEntry> errors = [.. driver.Manage().Logs.GetLog(LogType.Browser).Where(e => e.Level >= LogLevel.Warning)];
        Assert.True(errors.Count == 0, "browser console: " + string.Join("\n", errors.Select(e => e.Message)));
    }
}
