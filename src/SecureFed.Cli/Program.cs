using SecureFed.Cli;

return await CliApp.RunProcessAsync(args).ConfigureAwait(false);
