using Grpc.Core;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>What the hostile raw-gRPC-client tests send with every call: a header of the test federation and a deadline.</summary>
internal static class RawClient
{
    /// <summary>A request header of <see cref="TestFederation.FederationName"/>.</summary>
    public static Header Header(ulong round, string session, string sender, Stage stage) => new()
    {
        FederationId = TestFederation.FederationName,
        Round = round,
        SessionId = session,
        Stage = stage,
        Sender = sender,
    };

    /// <summary>A deadline <paramref name="seconds"/> from now.</summary>
    public static CallOptions Deadline(int seconds = 10) => new(deadline: DateTime.UtcNow.AddSeconds(seconds));
}
