using SecureFed.Tagger.Internal;
using TorchSharp;
using static TorchSharp.torch;

namespace SecureFed.Tagger.Tests;

public sealed class LinearChainCrfTests
{
    /// <summary>Two types: O, B-A, I-A, B-B, I-B (5 labels), small enough to enumerate every path.</summary>
    private static readonly LabelSet TwoTypes = LabelSet.Create(["A", "B"]);

    [Fact]
    public void LogPartition_RandomScoresWithPadding_EqualsBruteForceOverAllPaths()
    {
        using var crf = RandomCrf(seed: 11);
        int[] lengths = [4, 2, 1];
        float[] emissions = RandomEmissions(lengths.Length, 4, TwoTypes.Count, seed: 12);
        (float[] trans, float[] start, float[] end) = crf.DecodingScores();

        using var scope = torch.NewDisposeScope();
        double[] logZ = ToDoubles(crf.LogPartition(EmissionTensor(emissions, lengths.Length, 4), MaskTensor(lengths, 4)));

        for (int b = 0; b < lengths.Length; b++)
        {
            double expected = LogSumExp(AllPaths(lengths[b], TwoTypes.Count)
                .Select(p => PathScore(p, emissions.AsSpan(b * 4 * TwoTypes.Count), trans, start, end, TwoTypes.Count)));
            Assert.Equal(expected, logZ[b], 3);
        }
    }

    [Fact]
    public void NegativeLogLikelihood_ValidPaths_ProbabilitiesSumToOne()
    {
        using var crf = RandomCrf(seed: 21);
        const int length = 3;
        float[] emissions = RandomEmissions(1, length, TwoTypes.Count, seed: 22);
        var decoder = new ConstrainedDecoder(TwoTypes);
        int[][] valid = [.. AllPaths(length, TwoTypes.Count).Where(p => IsValid(p, decoder))];

        using var scope = torch.NewDisposeScope();
        double total = 0;
        foreach (int[] path in valid)
        {
            Tensor labels = torch.tensor(path.Select(i => (long)i).ToArray(), [1, length]);
            Tensor nll = crf.NegativeLogLikelihood(EmissionTensor(emissions, 1, length), labels, MaskTensor([length], length));
            total += Math.Exp(-nll.item<float>());
        }

        Assert.Equal(1.0, total, 3);
    }

    [Fact]
    public void SummedNegativeLogLikelihood_ValueAndGradients_EqualAutogradForwardAlgorithm()
    {
        using var crf = RandomCrf(seed: 31);
        int[] lengths = [5, 3, 1];
        const int maxLength = 5;
        int n = TwoTypes.Count;
        float[] emissions = RandomEmissions(lengths.Length, maxLength, n, seed: 32);
        var decoder = new ConstrainedDecoder(TwoTypes);
        var rng = new Random(33);
        var labels = new long[lengths.Length * maxLength];
        Array.Fill(labels, -100L);
        for (int b = 0; b < lengths.Length; b++)
        {
            // A random valid IOB2 path.
            int prev = -1;
            for (int t = 0; t < lengths[b]; t++)
            {
                int[] options = [.. Enumerable.Range(0, n).Where(j => prev < 0 ? decoder.AllowedStart(j) : decoder.Allowed(prev, j))];
                prev = options[rng.Next(options.Length)];
                labels[(b * maxLength) + t] = prev;
            }
        }

        using var scope = torch.NewDisposeScope();
        (double referenceLoss, float[][] referenceGrads) = LossAndGrads(crf, emissions, lengths.Length, maxLength, em =>
            crf.NegativeLogLikelihood(em, torch.tensor(labels, [lengths.Length, maxLength]), MaskTensor(lengths, maxLength)).sum());
        (double fastLoss, float[][] fastGrads) = LossAndGrads(crf, emissions, lengths.Length, maxLength, em =>
            crf.SummedNegativeLogLikelihood(em, labels, [.. lengths.Select(l => (long)l)]));

        Assert.Equal(referenceLoss, fastLoss, 3);
        Assert.Equal(referenceGrads.Length, fastGrads.Length);
        for (int i = 0; i < referenceGrads.Length; i++)
        {
            Assert.Equal(referenceGrads[i].Length, fastGrads[i].Length);
            for (int j = 0; j < referenceGrads[i].Length; j++)
            {
                Assert.True(Math.Abs(referenceGrads[i][j] - fastGrads[i][j]) < 1e-4, $"gradient {i}[{j}]: {referenceGrads[i][j]} vs {fastGrads[i][j]}");
            }
        }

        Assert.Contains(fastGrads[1], g => Math.Abs(g) > 1e-3); // transitions really get a gradient
    }

    [Fact]
    public void Decode_WithCrfScores_EqualsBruteForceArgmaxOverValidPaths()
    {
        var decoder = new ConstrainedDecoder(TwoTypes);
        int n = TwoTypes.Count;
        for (int seed = 0; seed < 20; seed++)
        {
            using var crf = RandomCrf(seed);
            (float[] trans, float[] start, float[] end) = crf.DecodingScores();
            int length = 1 + (seed % 4);
            float[] emissions = RandomEmissions(1, length, n, seed + 100);

            int[] decoded = decoder.Decode(emissions, length, trans, start, end);

            int[] best = AllPaths(length, n).Where(p => IsValid(p, decoder))
                .MaxBy(p => PathScore(p, emissions, trans, start, end, n))!;
            Assert.Equal(best, decoded);
            Assert.True(IsValid(decoded, decoder), $"seed {seed}: {string.Join(' ', decoded.Select(i => TwoTypes.Labels[i]))}");
        }
    }

    [Fact]
    public void Decode_TransitionsFavourForbiddenMoves_StillValidIob2()
    {
        // Huge learned scores for O -> I-A and for starting with I-A must not override the constraints.
        var decoder = new ConstrainedDecoder(TwoTypes);
        int n = TwoTypes.Count;
        int iA = TwoTypes.IndexOf("I-A");
        var trans = new float[n * n];
        var start = new float[n];
        trans[(0 * n) + iA] = 1000f;
        start[iA] = 1000f;
        float[] emissions = new float[3 * n];
        emissions[(1 * n) + iA] = 50f;

        int[] decoded = decoder.Decode(emissions, 3, trans, start, new float[n]);

        Assert.True(IsValid(decoded, decoder), string.Join(' ', decoded.Select(i => TwoTypes.Labels[i])));
    }

    /// <summary>Loss value and the gradients of the emissions, transitions, start and end.</summary>
    private static (double Loss, float[][] Grads) LossAndGrads(LinearChainCrf crf, float[] emissions, int batch, int length, Func<Tensor, Tensor> loss)
    {
        foreach (var (_, p) in crf.named_parameters())
        {
            p.grad?.zero_();
        }

        Tensor em = EmissionTensor(emissions, batch, length).requires_grad_(true);
        Tensor value = loss(em);
        value.backward();
        float[][] grads = [em.grad!.data<float>().ToArray(), .. crf.named_parameters().Select(p => p.parameter.grad!.data<float>().ToArray())];
        return (value.item<float>(), grads);
    }

    private static LinearChainCrf RandomCrf(int seed)
    {
        var crf = new LinearChainCrf(TwoTypes);
        var rng = new Random(seed);
        using var noGrad = torch.no_grad();
        foreach (var (_, p) in crf.named_parameters())
        {
            float[] values = [.. Enumerable.Range(0, (int)p.numel()).Select(_ => (float)((rng.NextDouble() * 4) - 2))];
            using Tensor source = torch.tensor(values, p.shape);
            p.copy_(source);
        }

        return crf;
    }

    private static float[] RandomEmissions(int batch, int length, int labels, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, batch * length * labels).Select(_ => (float)((rng.NextDouble() * 6) - 3))];
    }

    private static Tensor EmissionTensor(float[] values, int batch, int length) => torch.tensor(values, [batch, length, TwoTypes.Count]);

    private static Tensor MaskTensor(int[] lengths, int maxLength)
    {
        var mask = new bool[lengths.Length * maxLength];
        for (int b = 0; b < lengths.Length; b++)
        {
            for (int t = 0; t < lengths[b]; t++)
            {
                mask[(b * maxLength) + t] = true;
            }
        }

        return torch.tensor(mask, [lengths.Length, maxLength]);
    }

    private static double[] ToDoubles(Tensor t) => [.. t.to(ScalarType.Float64).data<double>()];

    private static IEnumerable<int[]> AllPaths(int length, int labels)
    {
        int total = (int)Math.Pow(labels, length);
        for (int code = 0; code < total; code++)
        {
            var path = new int[length];
            int c = code;
            for (int t = 0; t < length; t++)
            {
                path[t] = c % labels;
                c /= labels;
            }

            yield return path;
        }
    }

    private static bool IsValid(int[] path, ConstrainedDecoder decoder)
    {
        if (path.Length > 0 && !decoder.AllowedStart(path[0]))
        {
            return false;
        }

        for (int t = 1; t < path.Length; t++)
        {
            if (!decoder.Allowed(path[t - 1], path[t]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>start + emissions + transitions + end along the path (the constrained scores include the forbidden bias).</summary>
    private static double PathScore(int[] path, ReadOnlySpan<float> emissions, float[] trans, float[] start, float[] end, int n)
    {
        double score = start[path[0]] + end[path[^1]];
        for (int t = 0; t < path.Length; t++)
        {
            score += emissions[(t * n) + path[t]];
            if (t > 0)
            {
                score += trans[(path[t - 1] * n) + path[t]];
            }
        }

        return score;
    }

    private static double LogSumExp(IEnumerable<double> values)
    {
        double[] v = [.. values];
        double max = v.Max();
        return max + Math.Log(v.Sum(x => Math.Exp(x - max)));
    }
}
