namespace SecureFed.Federation.Tests;

/// <summary>A federation provisioned once per test class (ECDSA key generation is cheap but not free).</summary>
public sealed class ProvisionedFederation : IDisposable
{
    private readonly TempDirectory _directory = new();

    public ProvisionedFederation()
    {
        Result = FederationProvisioner.Provision(new ProvisionRequest(
            _directory.Combine("fed"),
            "test-fed",
            ["site-de", "site-fr", "site-jp"],
            "agg.example.org"));
    }

    internal ProvisionResult Result { get; }

    public string Root => Result.OutputDirectory;

    public void Dispose() => _directory.Dispose();
}
