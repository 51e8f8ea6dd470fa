using System.Globalization;
using SecureFed.Crypto;

namespace SecureFed.Protocol;

/// <summary>
/// The federated-evaluation slots of a secure-aggregation input vector (docs/PROTOCOL.md, "Federated evaluation").
/// They follow the weight slot and hold exact integers, never the clipped, scaled, noised float path: slot 0 is 1 when
/// the site scored the model (0 when it has no dev data or opted out), slots 1–3 its overall true-positive,
/// false-positive and false-negative counts, then one such triple per announced entity type. Every count is clamped to
/// [0, <see cref="CountCap"/>], the announced per-site maximum, so that the sum of n inputs cannot wrap in b bits; a
/// summed count outside [0, E × cap] (E the summed flag) shows that some site wrote past the cap. A rejection never
/// states the summed counts: when the sum is refused (or E is below the publication minimum) they are not published,
/// and a site that pushed one slot out of range would otherwise read the honest scorers' exact counts from the text
/// (hostile-site review, session 57).
/// </summary>
public sealed class EvaluationLayout
{
    /// <summary>Slots before the per-type triples: the evaluated flag and the overall triple.</summary>
    private const int HeaderSlots = 4;

    private EvaluationLayout(IReadOnlyList<string> entityTypes, int countCap)
    {
        EntityTypes = entityTypes;
        CountCap = countCap;
    }

    /// <summary>The entity types with a slot triple of their own, in slot order (distinct, sorted by ordinal).</summary>
    public IReadOnlyList<string> EntityTypes { get; }

    /// <summary>The announced per-site maximum of every count (and so the most one site can add to a summed count).</summary>
    public int CountCap { get; }

    /// <summary>Words the layout adds to the input vector: 4 + 3 per entity type.</summary>
    public int SlotCount => HeaderSlots + (3 * EntityTypes.Count);

    /// <summary>Creates a layout; the types are made distinct and sorted by ordinal so every party derives the same slots.</summary>
    /// <exception cref="ArgumentException">A type is empty.</exception>
    public static EvaluationLayout Create(IEnumerable<string> entityTypes, int countCap)
    {
        ArgumentNullException.ThrowIfNull(entityTypes);
        ArgumentOutOfRangeException.ThrowIfLessThan(countCap, 1);
        string[] types = [.. entityTypes.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
        if (types.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("An entity type of the evaluation layout is empty.", nameof(entityTypes));
        }

        return new EvaluationLayout(types, countCap);
    }

    /// <summary>
    /// Checks that the sum of <paramref name="cohortSize"/> inputs cannot wrap: n·cap ≤ 2^(b−1) − 1. Returns why not, or null.
    /// </summary>
    public string? CheckFits(int cohortSize, int bitWidth)
    {
        double budget = Math.Pow(2, bitWidth - 1) - 1;
        return (double)cohortSize * CountCap > budget
            ? $"{cohortSize} sites × evaluation count cap {CountCap} does not fit in {bitWidth}-bit words"
            : null;
    }

    /// <summary>The fields bound into the round digest (docs/PROTOCOL.md): a label, the cap, the number of types, the types.</summary>
    internal IEnumerable<string> DigestFields()
    {
        yield return "federated-evaluation";
        yield return CountCap.ToString(CultureInfo.InvariantCulture);
        yield return EntityTypes.Count.ToString(CultureInfo.InvariantCulture);
        foreach (string type in EntityTypes)
        {
            yield return type;
        }
    }

    /// <summary>
    /// Writes a site's counts into <paramref name="slots"/> (exactly <see cref="SlotCount"/> words): each count clamped
    /// to [0, cap]; null (no dev data, or the site opted out) writes zeros, flag included. Types of
    /// <paramref name="counts"/> that the layout does not name are only in the overall triple.
    /// </summary>
    public void Encode(EvaluationCounts? counts, Span<uint> slots)
    {
        if (slots.Length != SlotCount)
        {
            throw new ArgumentException($"Expected {SlotCount} evaluation slots; got {slots.Length}.", nameof(slots));
        }

        slots.Clear();
        if (counts is null)
        {
            return;
        }

        slots[0] = 1;
        Write(counts.Overall, slots[1..4]);
        for (int k = 0; k < EntityTypes.Count; k++)
        {
            if (counts.PerType.TryGetValue(EntityTypes[k], out EntityCounts typed))
            {
                Write(typed, slots.Slice(HeaderSlots + (3 * k), 3));
            }
        }
    }

    /// <summary>The count a site puts into a slot: <paramref name="count"/> clamped to [0, cap].</summary>
    public long Clamp(long count) => Math.Clamp(count, 0, CountCap);

    /// <summary>
    /// Decodes the summed slots of <paramref name="contributors"/> inputs and checks that they are possible: the number
    /// of evaluators E in [0, contributors], every summed count in [0, E·cap], and no per-type count above the overall
    /// one. Returns the federation's evaluation, or null with the reason when the sum is impossible (some site put
    /// more than the cap, or inconsistent counts, into its slots; one hostile site within the cap is not detected).
    /// </summary>
    public FederatedEvaluation? Decode(ReadOnlySpan<uint> slots, int contributors, int bitWidth, out string? rejection)
    {
        if (slots.Length != SlotCount)
        {
            throw new ArgumentException($"Expected {SlotCount} evaluation slots; got {slots.Length}.", nameof(slots));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(contributors);
        long evaluators = ModularVector.ToSigned(slots[0], bitWidth);
        if (evaluators < 0 || evaluators > contributors)
        {
            rejection = $"the summed evaluation flag is {evaluators}, outside [0, {contributors} contributors]";
            return null;
        }

        long limit = evaluators * CountCap;
        EntityCounts? Read(ReadOnlySpan<uint> triple, string what, out string? why)
        {
            long[] values = [ModularVector.ToSigned(triple[0], bitWidth), ModularVector.ToSigned(triple[1], bitWidth), ModularVector.ToSigned(triple[2], bitWidth)];
            if (values.Any(v => v < 0 || v > limit))
            {
                // The values are not stated: minus a hostile site's own, they are the honest scorers' counts.
                why = $"the summed {what} counts are outside [0, {evaluators} evaluators × count cap {CountCap} = {limit}]: some site put more than the cap into its evaluation slots";
                return null;
            }

            why = null;
            return new EntityCounts(values[0], values[1], values[2]);
        }

        EntityCounts? overall = Read(slots[1..4], "overall", out rejection);
        if (overall is not EntityCounts total)
        {
            return null;
        }

        var perType = new Dictionary<string, EntityCounts>(StringComparer.Ordinal);
        EntityCounts typedSum = default;
        for (int k = 0; k < EntityTypes.Count; k++)
        {
            EntityCounts? typed = Read(slots.Slice(HeaderSlots + (3 * k), 3), $"'{EntityTypes[k]}'", out rejection);
            if (typed is not EntityCounts value)
            {
                return null;
            }

            perType[EntityTypes[k]] = value;
            typedSum += value;
        }

        if (typedSum.TruePositives > total.TruePositives || typedSum.FalsePositives > total.FalsePositives || typedSum.FalseNegatives > total.FalseNegatives)
        {
            string[] exceeded =
            [
                .. typedSum.TruePositives > total.TruePositives ? ["true positives"] : Array.Empty<string>(),
                .. typedSum.FalsePositives > total.FalsePositives ? ["false positives"] : Array.Empty<string>(),
                .. typedSum.FalseNegatives > total.FalseNegatives ? ["false negatives"] : Array.Empty<string>(),
            ];
            rejection = $"the per-type counts exceed the overall counts ({string.Join(", ", exceeded)}): some site put inconsistent counts into its evaluation slots";
            return null;
        }

        rejection = null;
        return new FederatedEvaluation((int)evaluators, total, perType);
    }

    private void Write(EntityCounts counts, Span<uint> triple)
    {
        triple[0] = (uint)Clamp(counts.TruePositives);
        triple[1] = (uint)Clamp(counts.FalsePositives);
        triple[2] = (uint)Clamp(counts.FalseNegatives);
    }
}
