using TorchSharp;

namespace SecureFed.Tagger.Internal;

/// <summary>Resolves the <c>auto|cpu|cuda</c> device names.</summary>
internal static class TorchDevices
{
    public static torch.Device Resolve(string device)
    {
        ArgumentNullException.ThrowIfNull(device);
        switch (device.Trim().ToUpperInvariant())
        {
            case "AUTO":
                return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
            case "CPU":
                return torch.CPU;
            case "CUDA":
                if (!torch.cuda.is_available())
                {
                    throw new InvalidOperationException(
                        "device 'cuda' requested but torch.cuda.is_available() is false (this build uses the CPU libtorch; " +
                        "rebuild with -p:TorchBackend=cuda on a machine with CUDA 12.8 and an NVIDIA driver, or use --device auto|cpu)");
                }

                return torch.CUDA;
            default:
                throw new ArgumentException($"unknown device \"{device}\" (expected auto, cpu or cuda)", nameof(device));
        }
    }
}
