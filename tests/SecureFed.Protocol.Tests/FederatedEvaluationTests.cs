using System.Globalization;
using SecureFed.Crypto;
using SecureFed.Protocol;
using SecureFed.Testing;

namespace SecureFed.Protocol.Tests;

/// <summary>
/// Federated evaluation (docs/PROTOCOL.md, "Federated evaluation"): sites' TP/FP/FN counts ride in exact integer slots
/// of the secure-aggregation input, so the aggregator decodes only their sum.
/// </summary>
public sealed class FederatedEvaluationTests
{
    private static readonly string[] Types = ["Drug", "Disease"];

    [Fact]
    public void Create_TypesUnsortedAndRepeated_SortsAndDeduplicatesSlots()
    {
        EvaluationLayout layout = EvaluationLayout.Create(["Drug", "Disease", "Drug"], 100);

        Assert.Equal(["Disease", "Drug"], layout.EntityTypes);
        Assert.Equal(4 + 6, layout.SlotCount);
    }

    [Fact]
    public void Encode_CountsAboveCap_AreClampedToCap()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 50);
        var slots = new uint[layout.SlotCount];

        layout.Encode(Counts((70, 3, 900), ("Disease", (60, 1, -5))), slots);

        Assert.Equal([1u, 50, 3, 50, 50, 1, 0, 0, 0, 0], slots);
    }

    [Fact]
    public void Encode_NoCounts_WritesZerosIncludingTheFlag()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 50);
        uint[] slots = [.. Enumerable.Repeat(7u, layout.SlotCount)];

        layout.Encode(null, slots);

        Assert.All(slots, s => Assert.Equal(0u, s));
    }

    [Theory]
    [InlineData(5, 0)]
    [InlineData(5, 1)]
    [InlineData(7, 2)]
    public void SecureSum_WithDropouts_EqualsSumOfSurvivorsOwnCounts(int n, int seed)
    {
        var rng = new Random(seed);
        EvaluationLayout layout = EvaluationLayout.Create(Types, 1000);
        const int d = 16;
        UpdateCodec codec = UpdateCodec.Plan(d, 1.0, n, 0, 100, evaluation: layout);
        EvaluationCounts[] own = [.. Enumerable.Range(0, n).Select(_ => RandomCounts(rng, 300))];
        using var random = new DeterministicRandomSource(seed);
        var inputs = new uint[n][];
        for (int i = 0; i < n; i++)
        {
            float[] delta = [.. Enumerable.Range(0, d).Select(_ => (float)((rng.NextDouble() * 0.2) - 0.1))];
            inputs[i] = new uint[codec.VectorLength];
            FederatedAveraging.PrivatizeUpdate(delta, 10 + i, own[i], codec, 1.0, 0, random, inputs[i]);
        }

        Ed25519PrivateKey[] identities = [.. Enumerable.Range(0, n).Select(_ => Ed25519PrivateKey.Generate(random))];
        try
        {
            var participants = identities.Select((k, i) => new Participant(i + 1, "site-" + (i + 1).ToString(CultureInfo.InvariantCulture), k.PublicKey)).ToArray();
            var parameters = new RoundParameters("eval-federation", 3, "session", participants, (n / 2) + 1, n - 1, codec.VectorLength, codec.BitWidth, layout);
            // Site 2 drops before sending its masked input (not in the sum); site n after (in the sum).
            SimulatedDropout[] dropouts = [new(2, ProtocolStage.MaskedInputCollection), new(n, ProtocolStage.Unmasking)];

            SimulationResult result = SecAggSimulation.Run(parameters, identities, inputs, dropouts, random);

            IReadOnlyList<int> contributors = result.Aggregation.Contributors;
            Assert.DoesNotContain(2, contributors);
            Assert.Contains(n, contributors);
            FederatedEvaluation? federated = FederatedAveraging.Evaluate(codec, result.Aggregation.Sum, [.. contributors.Select(u => new ScoringDeclaration(participants[u - 1].Name, true))], parameters.Threshold, out string? rejection);
            Assert.Null(rejection);
            Assert.NotNull(federated);
            Assert.Equal(contributors.Count, federated.Evaluators);
            Assert.Equal(contributors.Select(u => own[u - 1].Overall).Aggregate((a, b) => a + b), federated.Overall);
            foreach (string type in Types)
            {
                Assert.Equal(contributors.Select(u => own[u - 1].PerType[type]).Aggregate((a, b) => a + b), federated.PerType[type]);
            }
        }
        finally
        {
            foreach (Ed25519PrivateKey key in identities)
            {
                key.Dispose();
            }
        }
    }

    [Fact]
    public void Evaluate_SiteWroteMoreThanCapIntoSlot_RejectsEvaluationNamingTheCap()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), Counts((20, 1, 1)), Counts((5, 0, 0)));
        // A hostile site bypassed the encoder and put 1 000 000 true positives into its overall slot.
        sum[codec.EvaluationOffset + 1] += 1_000_000;

        FederatedEvaluation? result = FederatedAveraging.Evaluate(codec, sum, Declared(true, true, true), 2, out string? rejection);

        Assert.Null(result);
        Assert.Contains("outside [0, 3 evaluators × count cap 100 = 300]", rejection, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    public void Evaluate_HostilePushesOneSlotPastTheCapWithALoneScorer_RejectionStatesNoSummedCount(int typeIndex)
    {
        // Hostile-site review, session 57: site-a alone scored (37, 5, 11), overall and for its one type; the other two
        // opted out, and one of them put 1 000 000 into one slot. The rejection ("withheld" in the round outcome and the
        // audit log) named the summed triple, so that site subtracted its own value and read site-a's exact counts.
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((37, 5, 11), (layout.EntityTypes[0], (37, 5, 11))), null, null);
        int slot = typeIndex < 0 ? codec.EvaluationOffset + 3 : codec.EvaluationOffset + 4 + (3 * typeIndex);
        sum[slot] += 1_000_000;

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, false, false), 1, out string? rejection));

        Assert.Contains("outside [0, 1 evaluators × count cap 100 = 100]", rejection, StringComparison.Ordinal);
        foreach (string leaked in new[] { "37", "1000011", "1000037", "1000005" })
        {
            Assert.DoesNotContain(leaked, rejection, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Evaluate_NegativeCountWrappedIntoSlot_RejectsEvaluation()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), Counts((20, 1, 1)), Counts((5, 0, 0)));
        sum[codec.EvaluationOffset + 3] -= 1000; // −1000 false negatives: wraps to a huge word

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, true, true), 2, out string? rejection));
        Assert.Contains("overall", rejection, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_FlagSumAboveContributors_RejectsEvaluation()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), Counts((20, 1, 1)), Counts((5, 0, 0)));
        sum[codec.EvaluationOffset] += 5;

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, true, true), 2, out string? rejection));
        Assert.Contains("evaluation flag is 8", rejection, StringComparison.Ordinal);
    }

    [Fact]
    public void Evaluate_PerTypeAboveOverall_RejectsEvaluation()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 2, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3), ("Drug", (50, 0, 0))), Counts((20, 1, 1)));

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, true), 2, out string? rejection));
        Assert.Equal("the per-type counts exceed the overall counts (true positives): some site put inconsistent counts into its evaluation slots", rejection);
    }

    [Fact]
    public void Evaluate_FewerEvaluatorsThanMinimum_PublishesNothing()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        // Two sites have no dev data (or opted out): the sum would be the third site's own score.
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), null, null);

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, false, false), 2, out string? rejection));
        Assert.Equal("only 1 of 3 contributors scored the model; at least 2 are needed before the federation's score is published", rejection);
    }

    /// <summary>
    /// Threat model C20: sites 2 and 3 opted out, site 1 scored, and hostile site 4 wrote flag t − 1 = 2 with zero counts.
    /// The summed flag reaches t = 3, but the published "federation" counts would be site 1's own: withheld, whatever site 4
    /// declares, because the sites that declared "scored" are fewer than the flag.
    /// </summary>
    [Theory]
    [InlineData(false, "withheld: the summed evaluation flag is 3 but 1 of 4 contributors declared they scored the model; ")]
    [InlineData(true, "withheld: the summed evaluation flag is 3 but 2 of 4 contributors declared they scored the model; ")]
    [InlineData(null, "withheld: the summed evaluation flag is 3 but 1 of 4 contributors declared they scored the model (1 sent no declaration and count as not scored: site-4); ")]
    public void Evaluate_FlagRaisedToThresholdByOneSite_WithheldNamingTheMismatch(bool? hostileDeclares, string reason)
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 4, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((37, 5, 11)), null, null, null);
        sum[codec.EvaluationOffset] += 2;

        FederatedEvaluation? result = FederatedAveraging.Evaluate(codec, sum, Declared(true, false, false, hostileDeclares), 3, out string? rejection);

        Assert.Null(result);
        Assert.StartsWith(reason, rejection, StringComparison.Ordinal);
    }

    /// <summary>
    /// The hostile site declares "scored" to match its flag 1 and zero counts: the flag is then 2, below t = 3, so still
    /// nothing is published; one site raises the flag by at most 1 without being caught.
    /// </summary>
    [Fact]
    public void Evaluate_ZeroCountsWithDeclaredFlagOne_RaisesEvaluatorsByOneOnly()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 4, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((37, 5, 11)), null, null, null);
        sum[codec.EvaluationOffset] += 1;

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, false, false, true), 3, out string? rejection));
        Assert.StartsWith("only 2 of 4 contributors scored the model", rejection, StringComparison.Ordinal);
    }

    /// <summary>A site that scored but sent no declaration (an older agent) makes the flag disagree: withheld, naming it.</summary>
    [Fact]
    public void Evaluate_ScoringSiteSentNoDeclaration_Withheld()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), Counts((20, 1, 1)), Counts((5, 0, 0)));

        Assert.Null(FederatedAveraging.Evaluate(codec, sum, Declared(true, true, null), 2, out string? rejection));
        Assert.Contains("1 sent no declaration and count as not scored: site-3", rejection, StringComparison.Ordinal);
    }

    /// <summary>Sites that did not score may send no declaration: the flag agrees with the declared scorers, so the sum is published.</summary>
    [Fact]
    public void Evaluate_NonScoringSiteSentNoDeclaration_Published()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), Counts((20, 1, 1)), null);

        FederatedEvaluation? result = FederatedAveraging.Evaluate(codec, sum, Declared(true, true, null), 2, out string? rejection);

        Assert.Null(rejection);
        Assert.Equal((2, new EntityCounts(30, 3, 4)), (result!.Evaluators, result.Overall));
    }

    /// <summary>
    /// The residual (PROTOCOL.md "Federated evaluation", threat model C20): a site that declares and flags "scored" can put a
    /// wrapped negative word into a count slot and subtract honest sites' counts while the sum stays in [0, E·cap]. Nothing
    /// per site is range-checked, so this is published, biased; only the sum's range is checked.
    /// </summary>
    [Fact]
    public void Evaluate_DeclaredScorerWritesWrappedNegativeWithinRange_PublishedBiased()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, 100);
        UpdateCodec codec = UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout);
        uint[] sum = SumOf(codec, Counts((10, 2, 3)), Counts((20, 1, 1)), Counts((0, 0, 0)));
        sum[codec.EvaluationOffset + 1] -= 25; // site 3's true positives: −25, beyond its own cap's range [0, 100]

        FederatedEvaluation? result = FederatedAveraging.Evaluate(codec, sum, Declared(true, true, true), 2, out string? rejection);

        Assert.Null(rejection);
        Assert.Equal(new EntityCounts(5, 3, 4), result!.Overall);
    }

    [Fact]
    public void Plan_CohortTimesCountCapDoesNotFit_Throws()
    {
        EvaluationLayout layout = EvaluationLayout.Create(Types, int.MaxValue / 2);

        InvalidOperationException ex = Assert.Throws<InvalidOperationException>(() => UpdateCodec.Plan(4, 1.0, 3, 0, 10, evaluation: layout));
        Assert.Contains("evaluation count cap", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Digest_DifferentCountCapOrTypes_DiffersSoSitesShownDifferentLayoutsFailTheRound()
    {
        using var random = new DeterministicRandomSource(1);
        using Ed25519PrivateKey a = Ed25519PrivateKey.Generate(random);
        using Ed25519PrivateKey b = Ed25519PrivateKey.Generate(random);
        Participant[] cohort = [new(1, "a", a.PublicKey), new(2, "b", b.PublicKey)];
        RoundParameters P(EvaluationLayout? e) => new("f", 1, "s", cohort, 2, 1, 20, 32, e);

        string none = P(null).Context;
        string cap100 = P(EvaluationLayout.Create(Types, 100)).Context;
        string cap1 = P(EvaluationLayout.Create(Types, 1)).Context;
        string otherTypes = P(EvaluationLayout.Create(["Drug"], 100)).Context;

        Assert.Equal(4, new[] { none, cap100, cap1, otherTypes }.Distinct().Count());
        Assert.Equal(cap100, P(EvaluationLayout.Create(["Disease", "Drug"], 100)).Context);
    }

    [Fact]
    public void F1_FromSummedCounts_IsConllevalMicroF1()
    {
        var counts = new EntityCounts(30, 10, 20);

        Assert.Equal(0.75, counts.Precision, 12);
        Assert.Equal(0.6, counts.Recall, 12);
        Assert.Equal(2 * 0.75 * 0.6 / 1.35, counts.F1, 12);
        Assert.Equal(0, default(EntityCounts).F1);
    }

    private static ScoringDeclaration[] Declared(params bool?[] scored) =>
        [.. scored.Select((s, i) => new ScoringDeclaration("site-" + (i + 1).ToString(CultureInfo.InvariantCulture), s))];

    private static uint[] SumOf(UpdateCodec codec, params EvaluationCounts?[] sites)
    {
        var sum = new uint[codec.VectorLength];
        using var random = new DeterministicRandomSource(9);
        foreach (EvaluationCounts? site in sites)
        {
            var input = new uint[codec.VectorLength];
            FederatedAveraging.PrivatizeUpdate(new float[codec.ParameterCount], 5, site, codec, 1.0, 0, random, input);
            ModularVector.Add(sum, input, codec.BitWidth);
        }

        return sum;
    }

    private static EvaluationCounts Counts((long Tp, long Fp, long Fn) overall, params (string Type, (long Tp, long Fp, long Fn) Counts)[] perType) =>
        new(new EntityCounts(overall.Tp, overall.Fp, overall.Fn), perType.ToDictionary(t => t.Type, t => new EntityCounts(t.Counts.Tp, t.Counts.Fp, t.Counts.Fn), StringComparer.Ordinal));

    private static EvaluationCounts RandomCounts(Random rng, int max)
    {
        var perType = Types.ToDictionary(t => t, _ => new EntityCounts(rng.Next(max / 4), rng.Next(max / 4), rng.Next(max / 4)), StringComparer.Ordinal);
        EntityCounts typed = perType.Values.Aggregate((x, y) => x + y);
        // Chunks of types outside the layout count only overall.
        return new EvaluationCounts(typed + new EntityCounts(rng.Next(20), rng.Next(20), rng.Next(20)), perType);
    }
}
