using SecureFed.Crypto;
using SecureFed.Protocol;

namespace SecureFed.Cluster.Tests;

/// <summary>The round grain must rebuild the aggregator's round parameters exactly: every message binds their digest.</summary>
public sealed class ClusterRoundSpecTests
{
    [Fact]
    public void From_EvaluationDpSgdBindingsLayerScalesAndQuorum_ToParametersHasTheSameDigest()
    {
        using var random = new DeterministicRandomSource(7);
        Ed25519PrivateKey[] identities = [.. Enumerable.Range(0, 4).Select(_ => Ed25519PrivateKey.Generate(random))];
        Participant[] participants = [.. identities.Select((id, i) => new Participant(i + 1, $"site-{i + 1}", id.PublicKey))];
        foreach (Ed25519PrivateKey id in identities)
        {
            id.Dispose();
        }

        var parameters = new RoundParameters("spec", 3, "session", participants, 3, 3, 5_000, 32,
            EvaluationLayout.Create(["PROBLEM", "TEST"], 1_000), dpSgdMaxSteps: 1, dpSgdNoiseShares: 2, dpSgdLayerScales: [0.5f, 2f, 1.25f], consistencyColluders: 1);
        var withoutQuorum = new RoundParameters("spec", 3, "session", participants, 3, 3, 5_000, 32,
            EvaluationLayout.Create(["PROBLEM", "TEST"], 1_000), dpSgdMaxSteps: 1, dpSgdNoiseShares: 2, dpSgdLayerScales: [0.5f, 2f, 1.25f]);
        var withoutScales = new RoundParameters("spec", 3, "session", participants, 3, 3, 5_000, 32,
            EvaluationLayout.Create(["PROBLEM", "TEST"], 1_000), dpSgdMaxSteps: 1, dpSgdNoiseShares: 2, consistencyColluders: 1);
        var plain = new RoundParameters("spec", 3, "session", participants, 3, 3, 5_000, 32);

        ClusterRoundSpec spec = ClusterRoundSpec.From(parameters, 1_024);

        Assert.Equal(parameters.Digest, spec.ToParameters().Digest);
        Assert.NotEqual(plain.Digest, spec.ToParameters().Digest); // the bindings are in the digest, so losing one would show
        Assert.Equal(plain.Digest, ClusterRoundSpec.From(plain, 1_024).ToParameters().Digest);
        Assert.Equal([0.5f, 2f, 1.25f], spec.ToParameters().DpSgdLayerScales);
        Assert.NotEqual(withoutScales.Digest, spec.ToParameters().Digest); // the layer scales too
        Assert.Equal(1, spec.ToParameters().ConsistencyColluders);
        Assert.NotEqual(withoutQuorum.Digest, spec.ToParameters().Digest); // and the announced consistency quorum
    }
}
