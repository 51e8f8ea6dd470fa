using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using SecureFed.Agent;
using SecureFed.Aggregator;
using SecureFed.Audit;
using SecureFed.Federation;
using SecureFed.Privacy;
using SecureFed.Protocol;
using SecureFed.Tagger;
using SecureFed.Testing;
using SecureFed.Wire.V1;

namespace SecureFed.Reliability.Tests;

/// <summary>
/// Values a hostile aggregator announces (review of session 45): the real agent against the fake aggregator of
/// <see cref="MaliciousAggregatorTests"/>, which tampers one field of round 2's announcement (or its model). Each was
/// confirmed as a defect by the review (the agent sent its update without site-level noise while charging its ledger,
/// or stopped with an exception from deep inside instead of declining); each test fails without its fix.
/// </summary>
public sealed partial class MaliciousAggregatorTests
{
    private sealed record ReviewRun(ConcurrentQueue<AgentRoundReport> Reports, MaliciousAggregatorService Fake, Exception? Failure, string Data,
        ConcurrentDictionary<long, uint[]> Inputs, ConcurrentDictionary<long, RoundAnnouncement> Announced, CapturingLogger Logger);

    /// <summary>
    /// noise_sigma_site = +NaN (sign bit clear; protobuf carries a double's 64 bits as they are) passed "σ below the
    /// plan's" (a NaN comparison is false) and PrivatizeUpdate's ThrowIfNegative, and noise was added only "if σ &gt; 0":
    /// the input left with no site-level noise while the ledger and the audit log charged the planned ρ. Now declined.
    /// </summary>
    [Fact]
    public async Task Announce_NaNSiteNoiseSigma_DeclinedBeforeTrainingNothingSentNothingCharged()
    {
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round == 2)
            {
                a.SiteDp.NoiseSigmaSite = BitConverter.Int64BitsToDouble(0x7FF8_0000_0000_0000);
            }
        });

        Assert.Null(run.Failure);
        AgentRoundReport round2 = Assert.Single(run.Reports, r => r.Round == 2);
        Assert.Equal("declined: the announced per-site noise σ is NaN, not a finite number", round2.Outcome);
        Assert.DoesNotContain(run.Fake.Received, c => c.Round == 2 && c.Call is "AdvertiseKeys" or "UploadMaskedInput");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(run.Data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
        Assert.Contains(run.Reports, r => r.Round == 1 && r.Completed);
        Assert.True(NoisyCoordinates(run, 1) > Parameters / 2); // the honest round's input does carry the noise
    }

    public static TheoryData<string, string> OutOfRangeAnnouncementValues => new()
    {
        { "dp-noise-nan", "the announced DP-SGD noise multiplier is NaN, not a finite number" },
        { "site-target-noise-nan", "the announced site noise multiplier is NaN, not a finite number" },
        { "quant-scale-infinite", "the announced quantization scale is Infinity, not a finite number" },
        { "site-clip-infinite", "the announced site update clip S is Infinity, not a finite number" },
        { "quant-clip-nan", "the announced quantization clip is NaN, not a finite number" },
        { "site-sigma-infinite", "the announced per-site noise σ is Infinity, not a finite number" },
        { "site-sigma-negative-nan", "the announced per-site noise σ is NaN, not a finite number" },
        { "bit-width-1", "the quantization or clipping parameters are out of range" },
        { "deadline-out-of-range", "the announced stage deadline 9223372036854775807 ms is not a time within the next 7 days" },
        { "deadline-in-a-century", "the announced stage deadline 4102444800000 ms is not a time within the next 7 days" },
        { "tiny-sample-rate", "the DP-SGD plan is implausible: sample rate q = 1E-10 plans" },
        { "a-billion-steps", "the DP-SGD plan is implausible: sample rate q = 1E-06 plans 1,000,000,000 DP-SGD steps per round" },
        { "quant-clip-does-not-fit", "the aggregator announced quantization clip 1000000000000 × scale " },
        { "quant-scale-does-not-fit", "the aggregator announced quantization clip " },
        { "dp-noise-beyond-float", "the aggregator announced DP-SGD noise multiplier σ = 1E+300 and clip C = 1; σ, C and σ·C must each be at most 3.4E+38" },
        { "dp-clip-beyond-float", "the aggregator announced DP-SGD noise multiplier σ = 1 and clip C = 1E+300; σ, C and σ·C must each be at most 3.4E+38" },
        { "dp-noise-times-clip-beyond-float", "the aggregator announced DP-SGD noise multiplier σ = 1E+20 and clip C = 1E+20" },
        { "stage-timeout-max", "the aggregator announced a stage timeout of 4294967295 s, more than this site's maximum of 3600 s (SecureFed:MaxStageTimeoutSeconds)" },
        { "stage-timeout-a-day", "the aggregator announced a stage timeout of 86400 s, more than this site's maximum of 3600 s (SecureFed:MaxStageTimeoutSeconds)" },
        { "stage-timeout-zero", "the aggregator announced a stage timeout of 0 s; each later stage needs at least 1 s" },
    };

    /// <summary>
    /// Announcements the agent took into training or protocol code that then threw (a NaN or infinite number, a bit
    /// width of 1, a deadline outside any date, a plan of 10^9 DP-SGD steps accepted within the default budget, or q so
    /// small that the trainer refused it after the ledger check): the exception stopped the agent, without a decline. A
    /// stage timeout of 0 or beyond SecureFed:MaxStageTimeoutSeconds (2^32 − 1 s, a day) was taken as it came: the agent
    /// then waited that long + 30 s at each later stage. Now each is declined at the announcement, naming the value, and
    /// the agent waits for the next round.
    /// </summary>
    [Theory]
    [MemberData(nameof(OutOfRangeAnnouncementValues))]
    public async Task Announce_OutOfRangeValue_DeclinedNamingItAndTheAgentGoesOn(string tamper, string reason)
    {
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round != 2)
            {
                return;
            }

            switch (tamper)
            {
                case "dp-noise-nan": a.DpSgd.NoiseMultiplier = double.NaN; break;
                case "site-target-noise-nan": a.SiteDp.TargetNoiseMultiplier = double.NaN; break;
                case "quant-scale-infinite": a.QuantScale = double.PositiveInfinity; break;
                case "site-clip-infinite": a.SiteDp.L2Clip = double.PositiveInfinity; break;
                case "quant-clip-nan": a.QuantClip = double.NaN; break;
                case "site-sigma-infinite": a.SiteDp.NoiseSigmaSite = double.PositiveInfinity; break;
                case "site-sigma-negative-nan": a.SiteDp.NoiseSigmaSite = double.NaN; break;
                case "bit-width-1": a.BitWidth = 1; break;
                case "deadline-out-of-range": a.StageDeadlineUnixMs = long.MaxValue; break;
                case "deadline-in-a-century": a.StageDeadlineUnixMs = 4_102_444_800_000; break; // 2100-01-01: "now + wait" overflowed
                case "tiny-sample-rate": a.DpSgd.SampleRate = 1e-10; a.DpSgd.MaxSteps = 1; break;
                case "a-billion-steps": a.DpSgd.SampleRate = 1e-6; a.DpSgd.LocalEpochs = 1000; a.DpSgd.MaxSteps = 0; a.DpSgd.NoiseMultiplier = 2; break;
                case "quant-clip-does-not-fit": a.QuantClip = 1e12; break; // the quantizer threw outside any catch: the agent stopped
                case "quant-scale-does-not-fit": a.QuantScale = 1e12; break;
                case "dp-noise-beyond-float": a.DpSgd.NoiseMultiplier = 1e300; break; // the trainer's 32-bit noise overflowed
                case "dp-clip-beyond-float": a.DpSgd.MaxGradNorm = 1e300; break;
                case "dp-noise-times-clip-beyond-float": a.DpSgd.NoiseMultiplier = 1e20; a.DpSgd.MaxGradNorm = 1e20; break;
                case "stage-timeout-max": a.StageTimeoutSeconds = uint.MaxValue; break; // the agent waited up to 136 years per stage
                case "stage-timeout-a-day": a.StageTimeoutSeconds = 86_400; break;
                case "stage-timeout-zero": a.StageTimeoutSeconds = 0; break;
            }
        }, epsilonBudget: 8);

        Assert.Null(run.Failure);
        AgentRoundReport round2 = Assert.Single(run.Reports, r => r.Round == 2);
        Assert.StartsWith("declined: " + reason, round2.Outcome, StringComparison.Ordinal);
        Assert.Contains(run.Fake.Received, c => c.Round == 2 && c.Call == "DeclineRound");
        Assert.DoesNotContain(run.Fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        Assert.DoesNotContain(PrivacyLedger.OpenReadOnly(Path.Combine(run.Data, "privacy-ledger.jsonl")).Entries, e => e.Round == 2);
        Assert.Contains(run.Reports, r => r.Round == 1 && r.Completed);
    }

    /// <summary>
    /// A round number below one already in the site's ledger (a hostile aggregator, or one restored from a backup): the
    /// agent trained, shared keys and audited its masked input as sent, and only then the ledger refused the entry and
    /// the agent stopped (its audit log claimed an upload that never happened). Now declined at the announcement.
    /// </summary>
    [Fact]
    public async Task Announce_RoundBelowTheLedgersLast_DeclinedBeforeAnythingIsSent()
    {
        ReviewRun run = await RunReviewAsync(null, prepare: state => state.Ledger.Append(10, Guarantee.Record, PlannedMechanism.SubsampledGaussian(0.05, 1.0, 20), 1e-5));

        Assert.Null(run.Failure);
        Assert.All(run.Reports, r => Assert.StartsWith("declined: round ", r.Outcome, StringComparison.Ordinal));
        Assert.Contains(run.Reports, r => r.Outcome.Contains("goes back before round 10 of this site's privacy ledger", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Fake.Received, c => c.Call is "AdvertiseKeys" or "ShareKeys" or "UploadMaskedInput");
        Assert.DoesNotContain(File.ReadAllLines(Path.Combine(AgentState.AuditDirectory(run.Data), AuditLog.LogFileName)),
            l => l.Contains(AuditEvents.MaskedInputMessageType, StringComparison.Ordinal));
    }

    /// <summary>A model with a NaN in it is refused like a model that does not match its digest; the agent goes on.</summary>
    [Fact]
    public async Task Model_WithANaN_RefusedBeforeTrainingAndTheAgentGoesOn()
    {
        ReviewRun run = await RunReviewAsync(null, tamperModel: (round, model) =>
        {
            if (round != 2)
            {
                return model;
            }

            float[] poisoned = (float[])model.Clone();
            poisoned[3] = float.NaN;
            return poisoned;
        }, trainer: new ModelDependentTrainer(Parameters));

        Assert.Null(run.Failure);
        AgentRoundReport round2 = Assert.Single(run.Reports, r => r.Round == 2);
        Assert.Matches("^refused: the downloaded model version [0-9]+ has a non-finite value \\(NaN\\) at index 3", round2.Outcome);
        Assert.DoesNotContain(run.Fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
    }

    /// <summary>
    /// Local training that diverges (review of session 45: the default full model at lr 2 on NCBI-disease in round 2) gave
    /// a NaN update; PrivatizeUpdate refused it after the training block, so the agent stopped with a stack trace without
    /// withdrawing and the others waited for its silence. Now it withdraws at once, naming the cause.
    /// </summary>
    [Fact]
    public async Task Train_UpdateWithANaN_WithdrawsAtOnceAndStopsNamingTheLearningRate()
    {
        ReviewRun run = await RunReviewAsync(null, trainer: new DivergingTrainer(Parameters));

        LocalTrainingException failure = Assert.IsType<LocalTrainingException>(run.Failure);
        Assert.Contains("local training diverged: the update has a non-finite value (NaN) at index 7", failure.Message, StringComparison.Ordinal);
        Assert.Contains("SecureFed:LearningRate", failure.Message, StringComparison.Ordinal);
        Assert.Contains(run.Fake.Received, c => c.Round == 2 && c.Call == "DeclineRound");
        Assert.DoesNotContain(run.Fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        Assert.StartsWith("failed: ", Assert.Single(run.Reports, r => r.Round == 2).Outcome, StringComparison.Ordinal);
    }

    /// <summary>
    /// Aggregator text went unbounded into the agent's signed audit log: a federation id of 1,000,000 control characters
    /// made one decline line of about 6 MB, again at every announcement. Now the reason is bounded and cleaned as the
    /// aggregator bounds a site's.
    /// </summary>
    [Fact]
    public async Task Announce_HugeFederationId_TheDeclineLineIsBounded()
    {
        long before = 0;
        string auditPath = "";
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round == 2)
            {
                before = new FileInfo(auditPath).Length;
                a.Header.FederationId = new string('\u0001', 1_000_000);
            }
        }, prepare: state => auditPath = Path.Combine(AgentState.AuditDirectory(Path.GetDirectoryName(state.Ledger.FilePath)!), AuditLog.LogFileName));

        Assert.Null(run.Failure);
        Assert.StartsWith("declined: the round is for federation", Assert.Single(run.Reports, r => r.Round == 2).Outcome, StringComparison.Ordinal);
        string declined = Assert.Single(File.ReadAllLines(auditPath), l => l.Contains("the round is for federation", StringComparison.Ordinal));
        Assert.True(declined.Length < 4_000, $"the decline line is {declined.Length} characters");
        Assert.DoesNotContain("\\u0001", declined, StringComparison.Ordinal);
    }

    /// <summary>
    /// An aggregator that answers AwaitRound with ABORTED at once (the answer to a long-poll replaced by a newer one) was
    /// called again without any wait: about 580 calls in 3 s in the review. Now the agent pauses 200 ms between them.
    /// </summary>
    [Fact]
    public async Task AwaitRound_AnsweredAbortedAtOnce_AgentPausesBetweenCalls()
    {
        DateTime until = DateTime.MaxValue;
        ReviewRun run = await RunReviewAsync(null, started: _ => until = DateTime.UtcNow.AddSeconds(3), awaitRoundAborted: () => DateTime.UtcNow < until);

        Assert.Null(run.Failure);
        int calls = run.Fake.Received.Count(c => c.Round == 1 && c.Call == "AwaitRound");
        Assert.InRange(calls, 1, 25); // 3 s / 0.2 s = 15, and a little slack for the call itself
    }

    public static TheoryData<string, string> MissingAnnouncementParts => new()
    {
        { "header", "the announcement carries no header (federation, round, session)" },
        { "dp_sgd", "the announcement carries no DP-SGD settings (dp_sgd)" },
        { "site_dp", "the announcement carries no site-level DP settings (site_dp)" },
    };

    /// <summary>
    /// An announcement without a sub-message it needs (protobuf leaves an absent one null): one without its header stopped
    /// the agent with a NullReferenceException (review of session 45). Now each is declined, naming the missing part
    /// (without a header as round 0: the round is unknown), and the agent goes on with the next announcement.
    /// </summary>
    [Theory]
    [MemberData(nameof(MissingAnnouncementParts))]
    public async Task Announce_WithoutARequiredPart_DeclinedNamingItAndTheAgentGoesOn(string part, string reason)
    {
        int tampered = 0;
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round != 2 || Interlocked.Increment(ref tampered) > 1)
            {
                return; // only the first announcement of round 2: the one after it is honest
            }

            switch (part)
            {
                case "header": a.Header = null; break;
                case "dp_sgd": a.DpSgd = null; break;
                case "site_dp": a.SiteDp = null; break;
            }
        });

        Assert.Null(run.Failure);
        long declinedRound = part == "header" ? 0 : 2;
        AgentRoundReport declined = Assert.Single(run.Reports, r => r.Outcome.StartsWith("declined", StringComparison.Ordinal));
        Assert.Equal("declined: " + reason, declined.Outcome);
        Assert.Equal(declinedRound, declined.Round);
        Assert.Contains(run.Fake.Received, c => c.Round == declinedRound && c.Call == "DeclineRound");
        Assert.Contains(run.Reports, r => r.Round == 1 && r.Completed);
        if (part == "header")
        {
            // The agent asked again for the round after round 1 and took part in the honest announcement.
            Assert.Contains(run.Reports, r => r.Round == 2 && r.Completed);
        }
        else
        {
            Assert.DoesNotContain(run.Fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        }
    }

    /// <summary>
    /// An announcement of another model specification (review of session 45: declined round after round with only two
    /// hashes in the log): each such round is declined, the first decline explains both specifications and what to do on
    /// either side in one error line, later ones do not repeat it, and the agent goes on: when the aggregator announces
    /// this site's specification again (its operator fixed it), the agent takes part without a restart.
    /// </summary>
    [Fact]
    public async Task Announce_OtherModelSpec_DeclinedWhileItLasts_ExplainedOnce_AndTheAgentTakesPartAgainAfter()
    {
        string federationSpec = ModelSpec.Clinical(tiny: false).Sha256;
        string auditPath = "";
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round is 2 or 3)
            {
                a.ModelSpecSha256 = federationSpec;
            }
        }, prepare: state => auditPath = Path.Combine(AgentState.AuditDirectory(Path.GetDirectoryName(state.Ledger.FilePath)!), AuditLog.LogFileName), rounds: 4);

        Assert.Null(run.Failure);
        foreach (long round in new long[] { 2, 3 })
        {
            Assert.Equal($"declined: the round's model specification {federationSpec} differs from this site's {FakeTrainer.SpecSha}",
                Assert.Single(run.Reports, r => r.Round == round).Outcome);
            Assert.DoesNotContain(run.Fake.Received, c => c.Round == round && c.Call == "AdvertiseKeys");
        }

        Assert.Equal(2, run.Fake.Received.Count(c => c.Call == "DeclineRound"));
        Assert.Contains(run.Fake.Received, c => c.Round == 4 && c.Call == "UploadMaskedInput"); // the aggregator's spec fixed: it takes part again
        string explained = Assert.Single(run.Logger.Lines, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Error && l.Message.Contains("differs from the one the aggregator announces", StringComparison.Ordinal)).Message;
        Assert.Contains($"SHA-256 {federationSpec}, the spec of 'securefed model spec --size default'", explained, StringComparison.Ordinal);
        Assert.Contains("if the aggregator was started with the wrong one", explained, StringComparison.Ordinal);
        Assert.Equal(2, File.ReadAllLines(auditPath).Count(l => l.Contains(AuditEvents.Refusal, StringComparison.Ordinal) && l.Contains(federationSpec, StringComparison.Ordinal)));
    }

    /// <summary>
    /// Review of cab4808: the aggregator announces another spec (round 2), is fixed (round 3: the agent takes part), and
    /// later is started with the same wrong spec again (round 4). The second episode deserves the explanation as the
    /// first did (the operator may have rotated logs, and it is a new misconfiguration); on cab4808 the explanation was
    /// not cleared when a round passed the spec check, so round 4 was declined with only the two hashes.
    /// </summary>
    [Fact]
    public async Task Announce_OtherModelSpecAgainAfterAFixedRound_ExplainedAgain()
    {
        string federationSpec = ModelSpec.Clinical(tiny: false).Sha256;
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round is 2 or 4)
            {
                a.ModelSpecSha256 = federationSpec;
            }
        }, rounds: 5);

        Assert.Null(run.Failure);
        Assert.Contains(run.Fake.Received, c => c.Round == 3 && c.Call == "UploadMaskedInput");
        Assert.Equal(2, run.Fake.Received.Count(c => c.Call == "DeclineRound"));
        Assert.Equal(2, run.Logger.Lines.Count(l => l.Level == Microsoft.Extensions.Logging.LogLevel.Error && l.Message.Contains("differs from the one the aggregator announces", StringComparison.Ordinal)));
    }

    /// <summary>
    /// Protocol version 4 announces an endpoint per slice, and the agent kept a channel per endpoint authority for its
    /// lifetime: a cluster that announced other endpoints every round grew them without bound. Here every round names two
    /// new ones (other ports of the fake); the agent keeps only the current round's channels, and every round completes.
    /// </summary>
    [Fact]
    public async Task Announce_NewSliceEndpointsEveryRound_TheAgentKeepsOnlyTheCurrentRoundsChannels()
    {
        const int rounds = 5;
        IReadOnlyList<Uri> hosts = [];
        int channels = -1;
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            uint sliceSize = (a.VectorLength + 1) / 2;
            a.ProtocolVersion = AgentRunner.SliceUploadVersion;
            a.SliceUploads = new SliceUploads { SliceSize = sliceSize };
            a.SliceUploads.Endpoints.Add(hosts[(int)(2 * (round - 1))].ToString());
            a.SliceUploads.Endpoints.Add(hosts[(int)(2 * (round - 1)) + 1].ToString());
        }, rounds: rounds, extraListeners: 2 * rounds, extraAddresses: a => hosts = a, inspectClient: client => channels = client.SliceChannelCount);

        Assert.Null(run.Failure);
        Assert.Equal(rounds, run.Reports.Count(r => r.Completed));
        Assert.Equal(2 * rounds, run.Fake.Received.Count(c => c.Call == "UploadMaskedInput")); // two slices a round
        Assert.Equal(2, channels); // the last round's two, not all ten
    }

    /// <summary>
    /// A round's abort reason is the aggregator's text, and went into the agent's log and round report as it came (agent
    /// review of 9e774e0): 100,000 characters on one line, and a line break and ANSI escape that forge a log line of their
    /// own and recolour the operator's terminal. Now it is cut to 500 characters with the count of the rest, and its
    /// control characters are replaced.
    /// </summary>
    [Fact]
    public async Task Outcome_HugeAbortReasonWithALineBreakAndAnAnsiEscape_LoggedBoundedAndCleaned()
    {
        string forged = "the sum is out of range\n2026-12-07 site-a: round 2 completed\u001b[31m";
        ReviewRun run = await RunReviewAsync(null, abortReason: round => round == 2 ? forged + new string('y', 100_000) : null);

        Assert.Null(run.Failure);
        string expected = "the sum is out of range\uFFFD2026-12-07 site-a: round 2 completed\uFFFD[31m" + new string('y', 500 - forged.Length)
            + $"\u2026 ({100_000 + forged.Length - 500:N0} more characters)";
        Assert.Equal("aborted: " + expected, Assert.Single(run.Reports, r => r.Round == 2).Outcome);
        string logged = Assert.Single(run.Logger.Lines, l => l.Message.Contains("round 2 ended early", StringComparison.Ordinal)).Message;
        Assert.Equal("site-a: round 2 ended early: " + expected, logged);
    }

    /// <summary>
    /// A gRPC status detail is the aggregator's text too: an UNAVAILABLE answer to AwaitRound whose detail is 20,000
    /// characters with an escape that clears the screen went into the agent's "still waiting" line as it came.
    /// </summary>
    [Fact]
    public async Task AwaitRound_UnavailableWithAHugeDetailAndAnAnsiEscape_LoggedBoundedAndCleaned()
    {
        int calls = 0;
        ReviewRun run = await RunReviewAsync(null,
            awaitRoundStatus: () => Interlocked.Increment(ref calls) == 1 ? new Grpc.Core.Status(Grpc.Core.StatusCode.Unavailable, "down\u001b[2J" + new string('z', 20_000)) : null,
            configureRunner: runner => runner.FirstUnreachableWait = TimeSpan.FromMilliseconds(10), maxRetries: 0);

        Assert.Null(run.Failure);
        string logged = Assert.Single(run.Logger.Lines, l => l.Message.Contains("still waiting for the aggregator", StringComparison.Ordinal)).Message;
        Assert.Contains("(down\uFFFD[2J" + new string('z', 492) + "\u2026 (19,508 more characters)); trying again", logged, StringComparison.Ordinal);
        Assert.Contains(run.Reports, r => r.Round == 1 && r.Completed);
    }

    /// <summary>
    /// A base model version below the one the agent last downloaded (the fake's round 3 announces version 0 after version
    /// 1) was taken without a word (agent review of 9e774e0). The protocol does not refuse it (PROTOCOL.md §5: the agent
    /// requests exactly the announced version; an agent that restarts knows no earlier one), so the agent still takes
    /// part, and now logs a warning naming both versions, once.
    /// </summary>
    [Fact]
    public async Task Announce_ModelVersionBelowTheOneTrainedOn_WarnsNamingBothVersionsAndTakesPart()
    {
        ReviewRun run = await RunReviewAsync((round, a) =>
        {
            if (round == 3)
            {
                a.ModelVersion = 0;
            }
        }, rounds: 3);

        Assert.Null(run.Failure);
        string warning = Assert.Single(run.Logger.Lines, l => l.Level == Microsoft.Extensions.Logging.LogLevel.Warning && l.Message.Contains("base model version", StringComparison.Ordinal)).Message;
        Assert.StartsWith("site-a: round 3 announces base model version 0, below version 1 that this site last downloaded", warning, StringComparison.Ordinal);
        Assert.DoesNotContain(run.Fake.Received, c => c.Call == "DeclineRound");
        Assert.Contains(run.Fake.Received, c => c.Round == 3 && c.Call == "AdvertiseKeys");
    }

    /// <summary>
    /// A version-4 announcement may name any https:// host as a slice endpoint, and the agent connected to it (agent
    /// review of 9e774e0: an aggregator could make it open connections to hosts of the hospital's network). Now a slice
    /// endpoint must be on the aggregator's host (any port: the other ports of the fake here) or on a host the site lists
    /// in SecureFed:AllowedSliceHosts; round 2 names 'localhost' (the same fake, by another name) for its second slice and
    /// is declined naming it, without a connection to it.
    /// </summary>
    [Fact]
    public async Task Announce_SliceEndpointOnAnotherHost_DeclinedNamingTheHostNothingUploaded()
    {
        IReadOnlyList<Uri> hosts = [];
        ReviewRun run = await RunReviewAsync((round, a) => SliceOnLocalhost(round, a, hosts), extraListeners: 2, extraAddresses: a => hosts = a);

        Assert.Null(run.Failure);
        Assert.Contains(run.Reports, r => r.Round == 1 && r.Completed);
        AgentRoundReport round2 = Assert.Single(run.Reports, r => r.Round == 2);
        Assert.Equal($"declined: the endpoint of slice 1 ('https://localhost:{hosts[1].Port}/') is on host 'localhost', which is neither the aggregator's (127.0.0.1) nor listed in this site's SecureFed:AllowedSliceHosts", round2.Outcome);
        Assert.DoesNotContain(run.Fake.Received, c => c.Round == 2 && c.Call is "AdvertiseKeys" or "UploadMaskedInput");
    }

    /// <summary>The same announcement with 'localhost' in SecureFed:AllowedSliceHosts: the site takes part.</summary>
    [Fact]
    public async Task Announce_SliceEndpointOnAnAllowedHost_TakesPart()
    {
        IReadOnlyList<Uri> hosts = [];
        ReviewRun run = await RunReviewAsync((round, a) => SliceOnLocalhost(round, a, hosts), extraListeners: 2, extraAddresses: a => hosts = a,
            configureOptions: options => options.AllowedSliceHosts = "10.0.0.7, LOCALHOST");

        Assert.Null(run.Failure);
        Assert.DoesNotContain(run.Fake.Received, c => c.Call == "DeclineRound");
        Assert.Contains(run.Fake.Received, c => c.Round == 2 && c.Call == "AdvertiseKeys");
        Assert.Contains(run.Fake.Received, c => c.Round == 2 && c.Call == "UploadMaskedInput"); // slice 0, on 127.0.0.1
    }

    /// <summary>Round 2 in two slices: slice 0 on another port of the fake's 127.0.0.1, slice 1 on 'localhost'.</summary>
    private static void SliceOnLocalhost(long round, RoundAnnouncement a, IReadOnlyList<Uri> hosts)
    {
        if (round != 2)
        {
            return;
        }

        a.ProtocolVersion = AgentRunner.SliceUploadVersion;
        a.SliceUploads = new SliceUploads { SliceSize = (a.VectorLength + 1) / 2 };
        a.SliceUploads.Endpoints.Add(hosts[0].ToString());
        a.SliceUploads.Endpoints.Add(new UriBuilder(hosts[1]) { Host = "localhost" }.Uri.ToString());
    }

    private int NoisyCoordinates(ReviewRun run, long round)
    {
        RoundAnnouncement a = run.Announced[round];
        uint[] input = run.Inputs[round];
        int siteFactor = "site-a".Aggregate(0, (h, c) => h + c) % 7 + 1;
        float omega = (float)Math.Min(500, a.WeightCap) / a.WeightCap;
        long modulus = 1L << (int)a.BitWidth;
        int noisy = 0;
        for (int i = 0; i < Parameters; i++)
        {
            float delta = 0.002f * siteFactor * MathF.Sin(i + round) * omega;
            double expected = (double)delta * a.QuantScale;
            long word = input[i];
            long signed = word >= modulus / 2 ? word - modulus : word;
            if (Math.Abs(signed - expected) >= 1.000001)
            {
                noisy++;
            }
        }

        return noisy;
    }

    private async Task<ReviewRun> RunReviewAsync(Action<long, RoundAnnouncement>? tamper, Func<long, float[], float[]>? tamperModel = null,
        ILocalTrainer? trainer = null, Action<AgentState>? prepare = null, Action<string>? started = null, double epsilonBudget = 1000,
        Action<AggregatorClient>? inspectClient = null, Func<long, bool>? progressUnavailable = null, int maxRetries = 1, Func<bool>? awaitRoundAborted = null,
        int rounds = MaliciousAggregatorService.Rounds, int extraListeners = 0, Action<IReadOnlyList<Uri>>? extraAddresses = null,
        Func<Grpc.Core.Status?>? awaitRoundStatus = null, Func<bool>? finishedWhen = null, Action<AgentRunner>? configureRunner = null,
        Func<long, string?>? abortReason = null, Action<AgentOptions>? configureOptions = null)
    {
        ProvisionResult fed = FederationProvisioner.Provision(new ProvisionRequest(Path.Combine(_dir, "fed"), "malicious", Sites, "127.0.0.1"));
        var peerKits = Sites.Skip(1).ToDictionary(s => s, s => PartyKit.Load(fed.SiteKitDirectories[s]));
        using PartyKit aggregatorKit = PartyKit.Load(fed.AggregatorKitDirectory);
        string data = Path.Combine(_dir, "agent");
        var announced = new ConcurrentDictionary<long, RoundAnnouncement>();
        var fake = new MaliciousAggregatorService(aggregatorKit.Manifest, Sites, peerKits, Parameters, AggregatorMisbehaviour.None)
        {
            Tamper = (round, a) =>
            {
                tamper?.Invoke(round, a);
                announced[round] = a.Clone();
            },
            TamperModel = tamperModel,
            ProgressUnavailable = progressUnavailable,
            AwaitRoundAborted = awaitRoundAborted,
            AwaitRoundStatus = awaitRoundStatus,
            FinishedWhen = finishedWhen,
            AbortReason = abortReason,
            RoundCount = rounds,
        };
        WebApplication app = await StartAsync(aggregatorKit, fake, extraListeners);
        started?.Invoke(AggregatorHost.BoundAddress(app).ToString());
        extraAddresses?.Invoke([.. app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a)).Where(a => a != AggregatorHost.BoundAddress(app))]);
        var logger = new CapturingLogger();
        var reports = new ConcurrentQueue<AgentRoundReport>();
        var inputs = new ConcurrentDictionary<long, uint[]>();
        Exception? failure = null;
        try
        {
            var options = new AgentOptions
            {
                Site = Sites[0],
                Aggregator = AggregatorHost.BoundAddress(app).ToString(),
                KitDirectory = fed.SiteKitDirectories[Sites[0]],
                DataDirectory = data,
                CallTimeoutSeconds = 10,
                EpsilonBudget = epsilonBudget,
                SiteEpsilonBudget = 1000,
                MaxRetries = maxRetries,
            };
            configureOptions?.Invoke(options);
            using AgentState state = AgentState.Open(options);
            prepare?.Invoke(state);
            using var client = new AggregatorClient(new Uri(options.Aggregator), state.Kit, TimeSpan.FromSeconds(10), options.MaxRetries);
            var runner = new AgentRunner(options, state.Kit, client, trainer ?? new FakeTrainer(Sites[0], Parameters, 500), state.Ledger, state.Audit, logger)
            {
                InputCaptured = (round, input) => inputs[round] = input,
            };
            configureRunner?.Invoke(runner);
            runner.RoundFinished += (_, r) => reports.Enqueue(r);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await runner.RunAsync(timeout.Token);
            }
            catch (Exception ex) when (!timeout.IsCancellationRequested)
            {
                failure = ex;
            }

            Assert.False(timeout.IsCancellationRequested, "the agent did not finish within 60 s");
            inspectClient?.Invoke(client);
        }
        finally
        {
            fake.Dispose();
            await app.StopAsync();
            await app.DisposeAsync();
            foreach (PartyKit kit in peerKits.Values)
            {
                kit.Dispose();
            }
        }

        return new ReviewRun(reports, fake, failure, data, inputs, announced, logger);
    }

    /// <summary>A trainer whose delta depends on the global model (as the real tagger's does).</summary>
    private sealed class ModelDependentTrainer(int parameters) : ILocalTrainer
    {
        public string ModelSpecSha256 => FakeTrainer.SpecSha;

        public int ParameterCount => parameters;

        public long ExampleCount => 500;

        public long ExpectedSteps(LocalTrainingPlan plan) => plan.Steps;

        public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
            => new([.. globalModel.Select(v => -0.01f * v)], 500, (int)plan.Steps, plan.SampleRate, 0.5, double.NaN);
    }

    /// <summary>A trainer whose update has a NaN at index 7 in round 2 (local training that diverged).</summary>
    private sealed class DivergingTrainer(int parameters) : ILocalTrainer
    {
        private readonly FakeTrainer _inner = new("site-a", parameters, 500);

        public string ModelSpecSha256 => _inner.ModelSpecSha256;

        public int ParameterCount => parameters;

        public long ExampleCount => 500;

        public long ExpectedSteps(LocalTrainingPlan plan) => _inner.ExpectedSteps(plan);

        public LocalUpdate Train(float[] globalModel, LocalTrainingPlan plan, CancellationToken cancellationToken)
        {
            LocalUpdate update = _inner.Train(globalModel, plan, cancellationToken);
            if (plan.Round == 2)
            {
                update.Delta[7] = float.NaN;
            }

            return update;
        }
    }
}
