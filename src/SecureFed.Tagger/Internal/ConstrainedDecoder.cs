namespace SecureFed.Tagger.Internal;

/// <summary>
/// Viterbi decoding under IOB2 constraints (a sentence cannot start with I-X, and I-X may only follow B-X or I-X).
/// Without CRF scores it decodes per-token log-probabilities of the softmax head; with them it finds the best path
/// of a linear-chain CRF (emissions plus transition, start and end scores).
/// </summary>
internal sealed class ConstrainedDecoder
{
    private readonly bool[,] _allowed;
    private readonly bool[] _allowedStart;
    private readonly int _n;

    public ConstrainedDecoder(LabelSet labels)
    {
        _n = labels.Count;
        _allowed = new bool[_n, _n];
        _allowedStart = new bool[_n];
        for (int to = 0; to < _n; to++)
        {
            (char toPrefix, string toType) = Iob.Parse(labels.Labels[to]);
            _allowedStart[to] = toPrefix != 'I';
            for (int from = 0; from < _n; from++)
            {
                (char fromPrefix, string fromType) = Iob.Parse(labels.Labels[from]);
                _allowed[from, to] = toPrefix != 'I' || (fromPrefix != 'O' && string.Equals(fromType, toType, StringComparison.Ordinal));
            }
        }
    }

    /// <summary>Whether label <paramref name="to"/> may follow label <paramref name="from"/>.</summary>
    public bool Allowed(int from, int to) => _allowed[from, to];

    /// <summary>Whether a sentence may start with label <paramref name="label"/>.</summary>
    public bool AllowedStart(int label) => _allowedStart[label];

    /// <summary>Best label ids for one sentence; <paramref name="logProbs"/> is [length * labels] row-major.</summary>
    public int[] Decode(ReadOnlySpan<float> logProbs, int length) => Decode(logProbs, length, null, null, null);

    /// <summary>
    /// Best label ids for one sentence. <paramref name="scores"/> is [length * labels] row-major; the optional CRF
    /// <paramref name="transitions"/> ([from * labels + to]), <paramref name="start"/> and <paramref name="end"/>
    /// scores are added along the path. Forbidden moves are excluded whatever their scores.
    /// </summary>
    public int[] Decode(ReadOnlySpan<float> scores, int length, float[]? transitions, float[]? start, float[]? end)
    {
        var result = new int[length];
        if (length == 0)
        {
            return result;
        }

        var score = new double[_n];
        var next = new double[_n];
        var back = new int[length, _n];
        for (int j = 0; j < _n; j++)
        {
            score[j] = _allowedStart[j] ? scores[j] + (start?[j] ?? 0) : double.NegativeInfinity;
        }

        for (int t = 1; t < length; t++)
        {
            for (int to = 0; to < _n; to++)
            {
                double best = double.NegativeInfinity;
                int arg = 0;
                for (int from = 0; from < _n; from++)
                {
                    if (!_allowed[from, to])
                    {
                        continue;
                    }

                    double candidate = score[from] + (transitions?[(from * _n) + to] ?? 0);
                    if (candidate > best)
                    {
                        best = candidate;
                        arg = from;
                    }
                }

                next[to] = best + scores[(t * _n) + to];
                back[t, to] = arg;
            }

            (score, next) = (next, score);
        }

        int last = 0;
        double lastScore = double.NegativeInfinity;
        for (int j = 0; j < _n; j++)
        {
            double final = score[j] + (end?[j] ?? 0);
            if (final > lastScore)
            {
                lastScore = final;
                last = j;
            }
        }

        for (int t = length - 1; t >= 0; t--)
        {
            result[t] = last;
            last = back[t, last];
        }

        return result;
    }
}
