using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using SecureFed.Aggregator;
using SecureFed.Protocol;

namespace SecureFed.Testing;

/// <summary>
/// A test where a site goes silent at one stage needs that stage's deadline to pass, and soon; every other stage's deadline
/// must not pass before the honest sites have sent, which on a loaded machine (a process starved for seconds) can take
/// long. One <c>StageTimeoutSeconds</c> serves every stage, so this gives the silent stage a short deadline and every other
/// stage (and every other round) <see cref="LongSeconds"/>. It needs no seam: the coordinator raises
/// <see cref="RoundCoordinator.Progress"/> on its own thread as it closes a stage, before it reads
/// <see cref="AggregatorOptions.StageTimeoutSeconds"/> for the next stage's deadline. Call it before the round opens.
/// </summary>
internal static class DropoutDeadline
{
    /// <summary>The deadline of a stage that must not pass (never waited out: the stage closes once everyone has sent).</summary>
    public const int LongSeconds = 60;

    /// <summary>
    /// <paramref name="stage"/> of <paramref name="round"/> gets a deadline of <paramref name="shortSeconds"/>, every other
    /// stage <see cref="LongSeconds"/> (the training deadline is left as configured). For <see cref="ProtocolStage.AdvertiseKeys"/> (round 1 only) the deadline is the
    /// training deadline, set as the round opens: round 1's is <paramref name="shortSeconds"/>, later rounds' long.
    /// </summary>
    public static void ShortOnlyAt(IServiceProvider aggregator, long round, ProtocolStage stage, int shortSeconds)
    {
        AggregatorOptions options = aggregator.GetRequiredService<IOptions<AggregatorOptions>>().Value;
        RoundCoordinator coordinator = aggregator.GetRequiredService<RoundCoordinator>();
        options.StageTimeoutSeconds = LongSeconds;
        if (stage == ProtocolStage.AdvertiseKeys)
        {
            ArgumentOutOfRangeException.ThrowIfNotEqual(round, 1L);
            options.TrainingTimeoutSeconds = shortSeconds;
            coordinator.Progress += (_, _) => options.TrainingTimeoutSeconds = LongSeconds;
            return;
        }

        string before = (stage - 1) switch
        {
            ProtocolStage.AdvertiseKeys => "advertise_keys",
            ProtocolStage.ShareKeys => "share_keys",
            ProtocolStage.MaskedInputCollection => "masked_input",
            ProtocolStage.ConsistencyCheck => "consistency",
            _ => throw new ArgumentOutOfRangeException(nameof(stage), stage, "a stage a site can go silent at"),
        };
        coordinator.Progress += (_, p) => options.StageTimeoutSeconds = p.Round == round && p.Stage == before ? shortSeconds : LongSeconds;
    }
}
