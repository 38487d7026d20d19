using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: N rows, E classes (a router's experts); logits, probs, dProbs, dLogits [N, E]; logSumExp, dLogSumExp [N].

/// <summary>
/// Softmax over the last axis that also returns the log-sum-exp (the router of a mixture of experts: probs route the
/// tokens, lse² is ST-MoE's z-loss). probs = exp(x − max)/Σ exp(x − max), lse = max + log Σ exp(x − max).
/// </summary>
public static class SoftmaxKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>probs[n, e] = exp(x[n, e] − m)/Σ_u exp(x[n, u] − m), m = max_u x[n, u]; logSumExp[n] = m + log Σ_u exp(x[n, u] − m).</summary>
    public static void Forward<T>(ReadOnlySpan<T> logits, Span<T> probs, Span<T> logSumExp)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // logits [N, E], probs [N, E], logSumExp [N]
        int rows = logSumExp.Length, width = logits.Length / rows;
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> x = logits.Slice(n * width, width); // [E]
            Span<T> p = probs.Slice(n * width, width);          // [E]
            T max = T.NegativeInfinity;
            for (int e = 0; e < width; e++) max = T.Max(max, x[e]);
            T sum = T.Zero;
            for (int e = 0; e < width; e++) { p[e] = T.Exp(x[e] - max); sum += p[e]; }
            T inverse = T.One / sum;
            for (int e = 0; e < width; e++) p[e] *= inverse;
            logSumExp[n] = max + T.Log(sum);
        }
    }

    /// <summary>dLogits[n] += p ⊙ (dProbs[n] − Σ_e dProbs[n, e]·p[e]) + dLogSumExp[n]·p, p = probs[n] (∂lse/∂x = p);
    /// an empty dProbs or dLogSumExp (a null gradient) contributes nothing. width = E.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dProbs, ReadOnlySpan<T> dLogSumExp, ReadOnlySpan<T> probs, int width, Span<T> dLogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dProbs [N, E] or empty, dLogSumExp [N] or empty, probs [N, E], dLogits [N, E]
        int rows = width == 0 ? 0 : probs.Length / width;
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> p = probs.Slice(n * width, width); // [E]
            Span<T> dx = dLogits.Slice(n * width, width);      // [E]
            T dot = T.Zero;
            if (!dProbs.IsEmpty) for (int e = 0; e < width; e++) dot += dProbs[n * width + e] * p[e];
            T dLse = dLogSumExp.IsEmpty ? T.Zero : dLogSumExp[n];
            for (int e = 0; e < width; e++)
            {
                T dp = dProbs.IsEmpty ? T.Zero : dProbs[n * width + e];
                dx[e] += p[e] * (dp - dot) + dLse * p[e];
            }
        }
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>One row, vectorized: p = e^(x − max x) / Σ e^(x − max x); returns (max, Σ) for the row's log-sum-exp
    /// max + ln Σ. Cross-entropy's fast path shares it.</summary>
    internal static (float Max, float Sum) Row(ReadOnlySpan<float> x, Span<float> p)
    {
        float max = TensorPrimitives.Max(x);
        TensorPrimitives.Subtract(x, max, p);
        TensorPrimitives.Exp(p, p);
        float sum = TensorPrimitives.Sum(p);
        TensorPrimitives.Multiply(p, 1f / sum, p);
        return (max, sum);
    }

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (vectorized exp and sum): rows in parallel.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> logits, Span<float> probs, Span<float> logSumExp)
    {
        // logits [N, E], probs [N, E], logSumExp [N]
        int rows = logSumExp.Length, width = logits.Length / rows;
        if (probs.Length != logits.Length || logits.Length != rows * width)
            throw new ArgumentException("softmax: span lengths do not match [N, E] / [N]");
        fixed (float* pLogits = logits, pProbs = probs, pLse = logSumExp)
        {
            var logitss = new Pinned<float>(pLogits, logits.Length);
            var probss = new Pinned<float>(pProbs, probs.Length);
            var lses = new Pinned<float>(pLse, rows);
            KernelParallel.For(rows, 4L * rows * width, n =>
            {
                var (max, sum) = Row(logitss.Slice(n * width, width), probss.Slice(n * width, width));   // [E] → [E]
                lses.Slice(n, 1)[0] = max + MathF.Log(sum);
            });
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: rows in parallel, the dot vectorized,
    /// then dx += p·(dp − dot + dLse).</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dProbs, ReadOnlySpan<float> dLogSumExp, ReadOnlySpan<float> probs, int width, Span<float> dLogits)
    {
        // dProbs [N, E] or empty, dLogSumExp [N] or empty, probs [N, E], dLogits [N, E]
        int rows = width == 0 ? 0 : probs.Length / width;
        if (dLogits.Length != probs.Length || !dProbs.IsEmpty && dProbs.Length != probs.Length || !dLogSumExp.IsEmpty && dLogSumExp.Length != rows)
            throw new ArgumentException("softmax backward: span lengths do not match [N, E] / [N]");
        bool hasDp = !dProbs.IsEmpty, hasDl = !dLogSumExp.IsEmpty;
        fixed (float* pDp = dProbs, pDl = dLogSumExp, pP = probs, pDx = dLogits)
        {
            var dps = new Pinned<float>(pDp, dProbs.Length);
            var dls = new Pinned<float>(pDl, dLogSumExp.Length);
            var ps = new Pinned<float>(pP, probs.Length);
            var dxs = new Pinned<float>(pDx, dLogits.Length);
            KernelParallel.For(rows, 4L * rows * width, n =>
            {
                ReadOnlySpan<float> p = ps.Slice(n * width, width); // [E]
                Span<float> dx = dxs.Slice(n * width, width);       // [E]
                ReadOnlySpan<float> dp = hasDp ? dps.Slice(n * width, width) : default;
                float dot = hasDp ? TensorPrimitives.Dot(dp, p) : 0f;
                float dLse = hasDl ? dls.Slice(n, 1)[0] : 0f;
                for (int e = 0; e < width; e++) dx[e] += p[e] * ((hasDp ? dp[e] : 0f) - dot) + dLse * p[e];
            });
        }
    }
}
