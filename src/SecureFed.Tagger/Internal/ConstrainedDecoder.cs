namespace SecureFed.Tagger.Internal;

/// <summary>
/// Viterbi decoding of per-token log-probabilities under IOB2 constraints (a sentence cannot start with I-X, and
/// I-X may only follow B-X or I-X). Gives well-formed chunks without training a CRF.
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

    /// <summary>Best label ids for one sentence; <paramref name="logProbs"/> is [length * labels] row-major.</summary>
    public int[] Decode(ReadOnlySpan<float> logProbs, int length)
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
            score[j] = _allowedStart[j] ? logProbs[j] : double.NegativeInfinity;
        }

        for (int t = 1; t < length; t++)
        {
            for (int to = 0; to < _n; to++)
            {
                double best = double.NegativeInfinity;
                int arg = 0;
                for (int from = 0; from < _n; from++)
                {
                    if (_allowed[from, to] && score[from] > best)
                    {
                        best = score[from];
                        arg = from;
                    }
                }

                next[to] = best + logProbs[(t * _n) + to];
                back[t, to] = arg;
            }

            (score, next) = (next, score);
        }

        int last = 0;
        for (int j = 1; j < _n; j++)
        {
            if (score[j] > score[last])
            {
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
