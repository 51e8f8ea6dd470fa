using System.Text.Json;
using SecureFed.Tagger;

namespace SecureFed.Integration.Tests;

/// <summary>
/// The CLI turns on libtorch's transparent huge pages for large tensors (<see cref="TorchRuntime.EnableHugePageAllocations"/>)
/// before anything else runs, and leaves an operator's own setting alone. Checked in child processes: the setting is
/// made once per process, in the C library's environment, which libtorch reads and .NET's copy does not show.
/// </summary>
public sealed class HugePagesTests
{
    private static readonly string[] TinyBench = ["bench", "dp-sgd", "--config", "tiny", "--sentences", "48", "--batch", "8", "--steps", "1", "--repeats", "1", "--json"];

    [SkippableFact]
    public async Task Cli_WithoutTheVariable_TurnsHugePagesOn()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "libtorch's huge pages are a Linux feature; elsewhere the CLI leaves the allocator alone");

        JsonElement result = await BenchAsync(new Dictionary<string, string?> { [TorchRuntime.HugePagesVariable] = null });

        Assert.True(result.GetProperty("huge_pages").GetBoolean(), "the CLI should set THP_MEM_ALLOC_ENABLE=1 when the process was started without it");
    }

    [SkippableTheory]
    [InlineData("0", false)]
    [InlineData("1", true)]
    public async Task Cli_WithTheVariableSet_KeepsTheOperatorsChoice(string value, bool on)
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "libtorch's huge pages are a Linux feature; elsewhere the CLI leaves the allocator alone");

        JsonElement result = await BenchAsync(new Dictionary<string, string?> { [TorchRuntime.HugePagesVariable] = value });

        Assert.Equal(on, result.GetProperty("huge_pages").GetBoolean());
    }

    private static async Task<JsonElement> BenchAsync(Dictionary<string, string?> environment)
    {
        using CliProcess cli = CliProcess.StartWithEnvironment(environment, TinyBench);
        int code = await cli.WaitForExitAsync(TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"bench dp-sgd exited with {code}:\n{cli.Output}");
        string last = cli.Output.TrimEnd().Split('\n')[^1];
        using var json = JsonDocument.Parse(last);
        return json.RootElement.Clone();
    }
}
