using SecureFed.Cli;
using SecureFed.Tagger;

// Before any other thread reads the environment and before the first tensor (TorchRuntime.EnableHugePageAllocations).
TorchRuntime.EnableHugePageAllocations();
return await CliApp.RunProcessAsync(args).ConfigureAwait(false);
