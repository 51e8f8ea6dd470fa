using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

public sealed class TorchLoadTests
{
    [Fact]
    public void TensorOpAndBackward_AfterBuildPatch_Run()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { 1f, 2f, 3f }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        float[] grad = x.grad!.data<float>().ToArray();
        Assert.Equal(new[] { 2f, 4f, 6f }, grad);
    }

    [Fact]
    public void OutputCopy_OnOldLibstdcxx_IsWeakWhileNuGetCacheCopyIsUntouched()
    {
        string output = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (!OperatingSystem.IsLinux() || !File.Exists(output))
        {
            Console.WriteLine("skipped: not Linux or libLibTorchSharp.so not in the test output");
            return;
        }

        bool hostHasVersion = ElfTestHelper.HostLibstdcxxHas("GLIBCXX_3.4.32");
        string? cache = ElfTestHelper.FindNuGetCacheCopy();
        byte[] outBytes = File.ReadAllBytes(output);
        ushort? outFlags = ElfTestHelper.VernauxFlags(outBytes, "GLIBCXX_3.4.32");
        if (outFlags is null)
        {
            Console.WriteLine("skipped: this libLibTorchSharp.so has no GLIBCXX_3.4.32 need");
            return;
        }

        if (!hostHasVersion)
        {
            Assert.True((outFlags.Value & 0x2) != 0, "output copy must carry VER_FLG_WEAK on GLIBCXX_3.4.32");
        }

        if (cache is not null)
        {
            ushort? cacheFlags = ElfTestHelper.VernauxFlags(File.ReadAllBytes(cache), "GLIBCXX_3.4.32");
            Assert.NotNull(cacheFlags);
            Assert.Equal(0, cacheFlags.Value & 0x2);
            Assert.Equal(cacheFlags.Value | 0x2, outFlags.Value | 0x2);
        }
    }
}
