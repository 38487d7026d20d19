using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Cpu;

// Shapes: query/output [B, Tq, NH, hs], key/value [B, Tk, NKV, hs], scoreBias [NH, Tq, Tk], rowMax/rowSum [B, NH, Tq].

/// <summary>The mask of one call with its index tensors in host arrays, for the kernels (and the pool's lambdas).</summary>
public sealed class HostMask(AttentionMask mask, int[]? prefixLengths, int[]? querySegments, int[]? keySegments, int queries, int keys)
{
    public AttentionMask Mask { get; } = mask;
    public bool Dense => Mask.Dense;

    public bool Visible(int b, int i, int k) =>
        Mask.Visible(Mask.QueryOffset + i, k, prefixLengths?[b] ?? 0)
        && (querySegments is null || querySegments[b * queries + i] == keySegments![b * keys + k]);

    /// <summary>Whether the mask drops any probability: p = 0 runs the undropped kernels unchanged.</summary>
    public bool Dropping => Mask.Dropout > 0f;

    private readonly uint threshold = mask.Dropout > 0f ? DropoutKernel.Threshold("attention", mask.Dropout, mask.DropoutOffset) : 0;

    /// <summary>keep(b, h, i, k)/(1 − p) with keep from the counter DropoutOffset + Row(b, h, i)·Tk + k: the factor on att[k].</summary>
    public T KeepScale<T>(AttentionShape n, int b, int h, int i, int k, T scale) where T : INumberBase<T> =>
        Philox.Hash(Mask.DropoutSeed, (ulong)Mask.DropoutOffset + (ulong)((long)n.Row(b, h, i) * n.Tk + k)) >> 8 >= threshold ? scale : T.Zero;

    /// <summary>[First, Last] bounds the visible keys of query i of sequence b; empty when First &gt; Last.</summary>
    public (int First, int Last) Range(int b, int i) => Mask.Range(Mask.QueryOffset + i, keys, prefixLengths?[b] ?? 0);
}

/// <summary>
/// Scaled dot-product attention under any <see cref="AttentionMask"/>, with grouped-query heads and an additive score
/// bias: s[k] = scale·q·k_k − m_h·(p − k) + bias[h, i, k] over the visible keys, att = softmax(s), out = Σ_k att[k]·v_k.
/// Forward saves only the row statistics rowMax = max_k s[k] and rowSum = Σ_k e^(s[k] − rowMax) (log-sum-exp =
/// rowMax + ln rowSum, kept in its two parts so that backward recomputes exactly the forward's probabilities);
/// backward recomputes the scores from q and k. With mask dropout p, out = Σ_k att[k]·keep[k]/(1 − p)·v_k, the statistics
/// still those of the undropped softmax, and backward recomputes keep from the counter. No T×T tensor is stored: memory is O(B·NH·T), as FlashAttention.
/// </summary>
public static class AttentionKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>For every (b, i, h): the scores of the visible keys, their softmax, and output = Σ att·v;
    /// a query that sees no key gets output 0, rowMax −∞ and rowSum 0.</summary>
    public static void Forward<T>(ReadOnlySpan<T> query, ReadOnlySpan<T> key, ReadOnlySpan<T> value, ReadOnlySpan<T> scoreBias,
        ReadOnlySpan<T> slopes, HostMask mask, AttentionShape n, T scale, Span<T> output, Span<T> rowMax, Span<T> rowSum)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var scores = new T[n.Tk]; // [Tk] one row
        T dropScale = T.CreateChecked(DropoutKernel.Scale(mask.Mask.Dropout));
        for (int b = 0; b < n.B; b++)
            for (int i = 0; i < n.Tq; i++)
                for (int h = 0; h < n.NH; h++)
                {
                    int g = h / n.Group;
                    ReadOnlySpan<T> q = query.Slice(n.Q(b, i, h), n.HS);
                    // scores and their maximum
                    T max = T.NegativeInfinity;
                    bool any = false;
                    for (int k = 0; k < n.Tk; k++)
                    {
                        if (!mask.Visible(b, i, k)) continue;
                        scores[k] = Score(q, key.Slice(n.K(b, k, g), n.HS), scoreBias, slopes, mask, n, scale, h, i, k);
                        max = T.Max(max, scores[k]);   // NaN propagates
                        any = true;
                    }
                    // e^(s − max): the largest term is 1, nothing overflows
                    T sum = T.Zero;
                    for (int k = 0; k < n.Tk; k++)
                        if (mask.Visible(b, i, k)) sum += scores[k] = T.Exp(scores[k] - max);
                    rowMax[n.Row(b, h, i)] = max;
                    rowSum[n.Row(b, h, i)] = sum;
                    // out = Σ att[k]·v_k, att = e/sum
                    Span<T> o = output.Slice(n.Q(b, i, h), n.HS);
                    o.Clear();
                    if (!any) continue;
                    for (int k = 0; k < n.Tk; k++)
                    {
                        if (!mask.Visible(b, i, k)) continue;
                        T att = scores[k] / sum;
                        if (mask.Dropping) att *= mask.KeepScale(n, b, h, i, k, dropScale);
                        ReadOnlySpan<T> v = value.Slice(n.K(b, k, g), n.HS);
                        for (int d = 0; d < n.HS; d++) o[d] += att * v[d];
                    }
                }
    }

    /// <summary>Recomputes att from the saved statistics, then back through out = Σ att·v (dAtt, dV), the softmax
    /// (∂att[k]/∂s[r] = att[k]([k = r] − att[r]), so dS[r] = att[r]·(dAtt[r] − Σ_k att[k]·dAtt[k])), and
    /// s = scale·q·k + bias (dQ, dK, dScoreBias). With dropout dAtt[k] = keep[k]/(1 − p)·v_k·dO and dV += keep[k]/(1 − p)·att[k]·dO.
    /// Accumulates into every gradient; dScoreBias may be empty.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> query, ReadOnlySpan<T> key, ReadOnlySpan<T> value,
        ReadOnlySpan<T> scoreBias, ReadOnlySpan<T> slopes, HostMask mask, AttentionShape n, T scale, ReadOnlySpan<T> rowMax, ReadOnlySpan<T> rowSum,
        Span<T> dQuery, Span<T> dKey, Span<T> dValue, Span<T> dScoreBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var att = new T[n.Tk];  // [Tk] one row of probabilities
        var dAtt = new T[n.Tk]; // [Tk] ∂L/∂att for that row
        T dropScale = T.CreateChecked(DropoutKernel.Scale(mask.Mask.Dropout));
        for (int b = 0; b < n.B; b++)
            for (int i = 0; i < n.Tq; i++)
                for (int h = 0; h < n.NH; h++)
                {
                    int g = h / n.Group;
                    T max = rowMax[n.Row(b, h, i)], sum = rowSum[n.Row(b, h, i)];
                    if (sum == T.Zero) continue;   // a query that saw no key: its output was the constant 0
                    ReadOnlySpan<T> q = query.Slice(n.Q(b, i, h), n.HS), dO = dOutput.Slice(n.Q(b, i, h), n.HS);
                    T weighted = T.Zero;   // Σ_k att[k]·dAtt[k]
                    for (int k = 0; k < n.Tk; k++)
                    {
                        if (!mask.Visible(b, i, k)) continue;
                        att[k] = T.Exp(Score(q, key.Slice(n.K(b, k, g), n.HS), scoreBias, slopes, mask, n, scale, h, i, k) - max) / sum;
                        ReadOnlySpan<T> v = value.Slice(n.K(b, k, g), n.HS);
                        Span<T> dV = dValue.Slice(n.K(b, k, g), n.HS);
                        dAtt[k] = T.Zero;
                        if (mask.Dropping)
                        {
                            T keep = mask.KeepScale(n, b, h, i, k, dropScale), dropped = att[k] * keep;
                            for (int d = 0; d < n.HS; d++)
                            {
                                dAtt[k] += v[d] * dO[d];
                                dV[d] += dropped * dO[d];
                            }
                            dAtt[k] *= keep;
                        }
                        else
                            for (int d = 0; d < n.HS; d++)
                            {
                                dAtt[k] += v[d] * dO[d];
                                dV[d] += att[k] * dO[d];
                            }
                        weighted += att[k] * dAtt[k];
                    }
                    Span<T> dQ = dQuery.Slice(n.Q(b, i, h), n.HS);
                    for (int k = 0; k < n.Tk; k++)
                    {
                        if (!mask.Visible(b, i, k)) continue;
                        T dS = att[k] * (dAtt[k] - weighted);
                        if (!dScoreBias.IsEmpty) dScoreBias[(h * n.Tq + i) * n.Tk + k] += dS;
                        ReadOnlySpan<T> kk = key.Slice(n.K(b, k, g), n.HS);
                        Span<T> dK = dKey.Slice(n.K(b, k, g), n.HS);
                        for (int d = 0; d < n.HS; d++)
                        {
                            dQ[d] += dS * scale * kk[d];
                            dK[d] += dS * scale * q[d];
                        }
                    }
                }
    }

    /// <summary>s = scale·q·k − m_h·(p − k) + bias[h, i, k], the ALiBi and bias terms only when given.</summary>
    private static T Score<T>(ReadOnlySpan<T> q, ReadOnlySpan<T> k, ReadOnlySpan<T> scoreBias, ReadOnlySpan<T> slopes, HostMask mask,
        AttentionShape n, T scale, int h, int i, int j)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T dot = T.Zero;
        for (int d = 0; d < q.Length; d++) dot += q[d] * k[d];
        T s = dot * scale;
        if (!slopes.IsEmpty) s -= slopes[h] * T.CreateChecked(mask.Mask.QueryOffset + i - j);
        if (!scoreBias.IsEmpty) s += scoreBias[(h * n.Tq + i) * n.Tk + j];
        return s;
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Keys per tile of the fast path: a row of up to this many visible keys is one tile, scored, exponentiated
    /// and summed in two passes (GPT-2's context of 1024 is one tile, so its results are those of the untiled kernel
    /// bit for bit); longer rows go tile by tile with FlashAttention's online softmax, holding one tile of scores.</summary>
    public const int DefaultKeyTile = 1024;

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding: the (batch, kv head) groups in parallel
    /// (each writes only its own heads' output rows and statistics), one row of queries at a time over the key range the
    /// mask allows, in tiles of <paramref name="keyTile"/> keys; dot products, exp and axpy vectorized.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> query, ReadOnlySpan<float> key, ReadOnlySpan<float> value, ReadOnlySpan<float> scoreBias,
        float[]? slopes, HostMask mask, AttentionShape n, float scale, Span<float> output, Span<float> rowMax, Span<float> rowSum,
        int keyTile = DefaultKeyTile)
    {
        if (keyTile < 1) throw new ArgumentOutOfRangeException(nameof(keyTile), keyTile, "a key tile holds at least one key");
        fixed (float* pq = query, pk = key, pv = value, pBias = scoreBias, pOut = output, pMax = rowMax, pSum = rowSum)
        {
            var s = new Spans(new(pq, query.Length), new(pk, key.Length), new(pv, value.Length), new(pBias, scoreBias.Length), scoreBias.Length > 0);
            var outs = new Pinned<float>(pOut, output.Length);
            var maxs = new Pinned<float>(pMax, rowMax.Length);
            var sums = new Pinned<float>(pSum, rowSum.Length);
            KernelParallel.For(n.B * n.NKV, (long)n.B * n.NH * n.Tq * n.Tk * n.HS, item =>
            {
                var scores = new float[Math.Min(keyTile, n.Tk)]; // [tile] one tile of one row
                int b = item / n.NKV, g = item % n.NKV;
                for (int h = g * n.Group; h < (g + 1) * n.Group; h++)
                    for (int i = 0; i < n.Tq; i++)
                        ForwardRow(s, slopes, mask, n, scale, b, h, i, scores, keyTile, outs, maxs, sums);
            });
        }
    }

    /// <summary>The inputs of one call, pinned for the pool's lambdas.</summary>
    private readonly record struct Spans(Pinned<float> Query, Pinned<float> Key, Pinned<float> Value, Pinned<float> ScoreBias, bool HasBias);

    /// <summary>Row (b, h, i) of <see cref="ForwardFast"/>. One tile: scores over [first, last], max, exp, normalize,
    /// out = Σ att·v. Several: per tile m' = max(m, max s), out and l rescaled by e^(m − m'), l += Σ e^(s − m'),
    /// out += Σ e^(s − m')·v; out /= l at the end. Hidden keys inside the range (sparse patterns, segments) score −∞, so
    /// e^(s − max) = 0, and are skipped in the sum over v.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the unoptimized first JIT tier
    private static void ForwardRow(Spans s, float[]? slopes, HostMask mask, AttentionShape n, float scale, int b, int h, int i,
        float[] scoreRow, int keyTile, Pinned<float> output, Pinned<float> rowMax, Pinned<float> rowSum)
    {
        int row = n.Row(b, h, i);
        Span<float> o = output.Slice(n.Q(b, i, h), n.HS);   // [hs]
        o.Clear();
        var (first, last) = mask.Range(b, i);
        float max = float.NegativeInfinity, sum = 0f;
        if (last - first + 1 <= keyTile)
        {
            Span<float> scores = Scores(s, slopes, mask, n, scale, b, h, i, first, last, scoreRow);
            max = scores.IsEmpty ? float.NegativeInfinity : TensorPrimitives.Max(scores);
            if (max != float.NegativeInfinity)   // else no visible key (a NaN max goes on, and spreads as the definition's)
            {
                TensorPrimitives.Subtract(scores, max, scores);
                TensorPrimitives.Exp(scores, scores);
                sum = TensorPrimitives.Sum(scores);
                TensorPrimitives.Multiply(scores, 1f / sum, scores);
                AddWeightedValues(s, mask, n, b, h, i, first, last, scores, o);
            }
        }
        else
            for (int t0 = first; t0 <= last; t0 += keyTile)
            {
                int t1 = Math.Min(last, t0 + keyTile - 1);
                Span<float> scores = Scores(s, slopes, mask, n, scale, b, h, i, t0, t1, scoreRow);
                float tileMax = TensorPrimitives.Max(scores);
                if (tileMax == float.NegativeInfinity) continue;   // every key of the tile hidden
                float next = MathF.Max(max, tileMax);              // NaN propagates
                if (max != float.NegativeInfinity && next != max)
                {
                    float rescale = MathF.Exp(max - next);
                    TensorPrimitives.Multiply(o, rescale, o);
                    sum *= rescale;
                }
                max = next;
                TensorPrimitives.Subtract(scores, max, scores);
                TensorPrimitives.Exp(scores, scores);
                sum += TensorPrimitives.Sum(scores);
                AddWeightedValues(s, mask, n, b, h, i, t0, t1, scores, o);
            }
        if (max == float.NegativeInfinity) { o.Clear(); sum = 0f; }
        else if (last - first + 1 > keyTile) TensorPrimitives.Multiply(o, 1f / sum, o);
        rowMax.Slice(row, 1)[0] = max;
        rowSum.Slice(row, 1)[0] = sum;
    }

    /// <summary>o += Σ_k w[k − first]·keep[k]/(1 − p)·v_k over the visible keys of [first, last].</summary>
    private static void AddWeightedValues(Spans s, HostMask mask, AttentionShape n, int b, int h, int i, int first, int last,
        ReadOnlySpan<float> weights, Span<float> o)
    {
        int g = h / n.Group;
        float dropScale = mask.Dropping ? (float)DropoutKernel.Scale(mask.Mask.Dropout) : 1f;
        for (int k = first; k <= last; k++)
            if (mask.Dense || mask.Visible(b, i, k))
                TensorPrimitives.MultiplyAdd(s.Value.Slice(n.K(b, k, g), n.HS),
                    mask.Dropping ? weights[k - first] * mask.KeepScale(n, b, h, i, k, dropScale) : weights[k - first], o, o);
    }

    /// <summary>scores[k − first] = scale·q·k_k (+ ALiBi, + bias) for k in [first, last], −∞ for hidden keys inside.</summary>
    private static Span<float> Scores(Spans s, float[]? slopes, HostMask mask, AttentionShape n, float scale, int b, int h, int i,
        int first, int last, float[] scoreRow)
    {
        if (first > last) return [];
        int g = h / n.Group;
        ReadOnlySpan<float> q = s.Query.Slice(n.Q(b, i, h), n.HS);
        Span<float> scores = scoreRow.AsSpan(0, last - first + 1);
        for (int k = first; k <= last; k++)
        {
            float score = TensorPrimitives.Dot(q, s.Key.Slice(n.K(b, k, g), n.HS)) * scale;
            if (slopes is not null) score -= slopes[h] * (mask.Mask.QueryOffset + i - k);
            if (s.HasBias) score += s.ScoreBias.Slice((h * n.Tq + i) * n.Tk + k, 1)[0];
            scores[k - first] = mask.Dense || mask.Visible(b, i, k) ? score : float.NegativeInfinity;
        }
        return scores;
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: the (batch, kv head) groups in parallel, each
    /// accumulating only into its own dK, dV rows and its heads' dQ rows; with a dScoreBias (shared by the batch) the kv
    /// heads alone in parallel, batches in order. Each tile's probabilities are recomputed bit for bit as the forward's;
    /// a row of several tiles takes the softmax's Σ att·dAtt as dO·O (FlashAttention's D), so its tiles stand alone.</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> query, ReadOnlySpan<float> key, ReadOnlySpan<float> value,
        ReadOnlySpan<float> scoreBias, float[]? slopes, HostMask mask, AttentionShape n, float scale, ReadOnlySpan<float> output,
        ReadOnlySpan<float> rowMax, ReadOnlySpan<float> rowSum, Span<float> dQuery, Span<float> dKey, Span<float> dValue, Span<float> dScoreBias,
        int keyTile = DefaultKeyTile)
    {
        if (keyTile < 1) throw new ArgumentOutOfRangeException(nameof(keyTile), keyTile, "a key tile holds at least one key");
        fixed (float* pdO = dOutput, pq = query, pk = key, pv = value, pBias = scoreBias, pOut = output, pMax = rowMax, pSum = rowSum,
               pdQ = dQuery, pdK = dKey, pdV = dValue, pdBias = dScoreBias)
        {
            var s = new Spans(new(pq, query.Length), new(pk, key.Length), new(pv, value.Length), new(pBias, scoreBias.Length), scoreBias.Length > 0);
            var g = new Grads(new(pdO, dOutput.Length), new(pOut, output.Length), new(pMax, rowMax.Length), new(pSum, rowSum.Length),
                new(pdQ, dQuery.Length), new(pdK, dKey.Length), new(pdV, dValue.Length), new(pdBias, dScoreBias.Length), dScoreBias.Length > 0);
            bool shared = g.HasBiasGrad;
            KernelParallel.For(shared ? n.NKV : n.B * n.NKV, 2L * n.B * n.NH * n.Tq * n.Tk * n.HS, item =>
            {
                int tile = Math.Min(keyTile, n.Tk);
                var rows = new float[3 * tile];   // [3, tile] att, dAtt, dS of one tile of one row
                for (int b = shared ? 0 : item / n.NKV; b < (shared ? n.B : item / n.NKV + 1); b++)
                {
                    int kv = shared ? item : item % n.NKV;
                    for (int h = kv * n.Group; h < (kv + 1) * n.Group; h++)
                        for (int i = 0; i < n.Tq; i++)
                            BackwardRow(s, g, slopes, mask, n, scale, b, h, i, rows, keyTile);
                }
            });
        }
    }

    /// <summary>The gradients and saved statistics of one backward call, pinned for the pool's lambdas.</summary>
    private readonly record struct Grads(Pinned<float> DOutput, Pinned<float> Output, Pinned<float> RowMax, Pinned<float> RowSum,
        Pinned<float> DQuery, Pinned<float> DKey, Pinned<float> DValue, Pinned<float> DScoreBias, bool HasBiasGrad);

    /// <summary>Row (b, h, i) of <see cref="BackwardFast"/>, tile by tile.</summary>
    private static void BackwardRow(Spans s, Grads gr, float[]? slopes, HostMask mask, AttentionShape n, float scale, int b, int h, int i,
        float[] rows, int keyTile)
    {
        int row = n.Row(b, h, i);
        float max = gr.RowMax.Slice(row, 1)[0], sum = gr.RowSum.Slice(row, 1)[0];
        if (sum == 0f) return;   // no visible key
        var (first, last) = mask.Range(b, i);
        float? weighted = last - first + 1 <= keyTile ? null
            : TensorPrimitives.Dot(gr.DOutput.Slice(n.Q(b, i, h), n.HS), gr.Output.Slice(n.Q(b, i, h), n.HS));   // Σ att·dAtt = dO·O
        for (int t0 = first; t0 <= last; t0 += keyTile)
            BackwardTile(s, gr, slopes, mask, n, scale, b, h, i, t0, Math.Min(last, t0 + keyTile - 1), max, sum, weighted, rows);
    }

    /// <summary>Keys [first, last] of row (b, h, i): the softmax Jacobian in O(keys), with Σ att·dAtt from the tile
    /// itself when it is the whole row, else the row's <paramref name="weighted"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardTile(Spans s, Grads gr, float[]? slopes, HostMask mask, AttentionShape n, float scale, int b, int h, int i,
        int first, int last, float max, float sum, float? weighted, float[] rows)
    {
        int g = h / n.Group, tile = rows.Length / 3;
        Span<float> att = Scores(s, slopes, mask, n, scale, b, h, i, first, last, rows);   // [last − first + 1]
        TensorPrimitives.Subtract(att, max, att);
        TensorPrimitives.Exp(att, att);
        TensorPrimitives.Multiply(att, 1f / sum, att);   // the forward's probabilities, bit for bit

        ReadOnlySpan<float> dO = gr.DOutput.Slice(n.Q(b, i, h), n.HS), q = s.Query.Slice(n.Q(b, i, h), n.HS);
        Span<float> dQ = gr.DQuery.Slice(n.Q(b, i, h), n.HS);
        Span<float> dAtt = rows.AsSpan(tile, att.Length), dS = rows.AsSpan(2 * tile, att.Length);
        // through out = Σ att[k]·keep[k]/(1 − p)·v_k (a hidden key has att 0 and is skipped, as in the forward)
        float dropScale = (float)DropoutKernel.Scale(mask.Mask.Dropout);
        for (int k = first; k <= last; k++)
        {
            if (!mask.Dense && !mask.Visible(b, i, k)) { dAtt[k - first] = 0f; continue; }
            dAtt[k - first] = TensorPrimitives.Dot(s.Value.Slice(n.K(b, k, g), n.HS), dO);
            Span<float> dV = gr.DValue.Slice(n.K(b, k, g), n.HS);
            if (mask.Dropping)
            {
                float keep = mask.KeepScale(n, b, h, i, k, dropScale);
                TensorPrimitives.MultiplyAdd(dO, att[k - first] * keep, dV, dV);
                dAtt[k - first] *= keep;
            }
            else TensorPrimitives.MultiplyAdd(dO, att[k - first], dV, dV);
        }
        // through the softmax: dS = att ⊙ (dAtt − Σ att·dAtt); the bias gets dS, the scores' dot product dS·scale
        TensorPrimitives.Subtract(dAtt, weighted ?? TensorPrimitives.Dot(att, dAtt), dS);
        TensorPrimitives.Multiply(dS, att, dS);
        if (gr.HasBiasGrad)
        {
            Span<float> dBias = gr.DScoreBias.Slice((h * n.Tq + i) * n.Tk + first, att.Length);
            TensorPrimitives.Add(dBias, dS, dBias);
        }
        TensorPrimitives.Multiply(dS, scale, dS);
        // through s = q·k_k
        for (int k = first; k <= last; k++)
        {
            if (!mask.Dense && !mask.Visible(b, i, k)) continue;
            ReadOnlySpan<float> kk = s.Key.Slice(n.K(b, k, g), n.HS);
            Span<float> dK = gr.DKey.Slice(n.K(b, k, g), n.HS);
            TensorPrimitives.MultiplyAdd(kk, dS[k - first], dQ, dQ);
            TensorPrimitives.MultiplyAdd(q, dS[k - first], dK, dK);
        }
    }
}
