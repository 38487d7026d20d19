using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: N rows (= B*T), V vocabulary.

/// <summary>
/// Softmax over the vocabulary fused with the negative log-likelihood of the target:
/// probs[n] = softmax(logits[n]) (row maximum subtracted), losses[n] = −log probs[n, targets[n]].
/// Rows whose target is ignoreIndex get loss 0 and no gradient; their probs are still written (a valid softmax).
/// </summary>
public static class CrossEntropyKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>probs[n, v] = exp(logits[n, v] − max) / Σ_u exp(logits[n, u] − max);
    /// losses[n] = log Σ_u exp(logits[n, u] − max) − (logits[n, target] − max) = −log probs[n, target], or 0 when ignored.</summary>
    public static void Forward<T>(ReadOnlySpan<T> logits, ReadOnlySpan<int> targets, int ignoreIndex, Span<T> probs, Span<T> losses)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // logits [N, V], targets [N], probs [N, V], losses [N]
        int rows = losses.Length, vocab = logits.Length / rows;
        CheckTargets(targets, vocab, ignoreIndex);
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> x = logits.Slice(n * vocab, vocab); // [V]
            Span<T> p = probs.Slice(n * vocab, vocab);          // [V]
            T max = T.NegativeInfinity;
            for (int v = 0; v < vocab; v++) max = T.Max(max, x[v]); // NaN propagates, as TensorPrimitives.Max in the fast path
            T sum = T.Zero;
            for (int v = 0; v < vocab; v++) { p[v] = T.Exp(x[v] - max); sum += p[v]; }
            T inverse = T.One / sum;
            for (int v = 0; v < vocab; v++) p[v] *= inverse;
            // log-sum-exp form: stays finite even when probs[target] underflows to 0
            losses[n] = targets[n] == ignoreIndex ? T.Zero : T.Log(sum) - (x[targets[n]] - max);
        }
    }

    /// <summary>dLogits[n, v] += dLosses[n] · (probs[n, v] − [v = targets[n]]); ignored rows are left untouched.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dLosses, ReadOnlySpan<T> probs, ReadOnlySpan<int> targets, int ignoreIndex, Span<T> dLogits)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dLosses [N], probs [N, V], targets [N], dLogits [N, V]
        int rows = dLosses.Length, vocab = probs.Length / rows;
        CheckTargets(targets, vocab, ignoreIndex);
        for (int n = 0; n < rows; n++)
        {
            if (targets[n] == ignoreIndex) continue;
            ReadOnlySpan<T> p = probs.Slice(n * vocab, vocab); // [V]
            Span<T> dx = dLogits.Slice(n * vocab, vocab);      // [V]
            for (int v = 0; v < vocab; v++)
            {
                T indicator = v == targets[n] ? T.One : T.Zero;
                dx[v] += dLosses[n] * (p[v] - indicator);
            }
        }
    }

    /// <summary>Throws naming the first row whose target is neither in [0, V) nor ignoreIndex.</summary>
    public static void CheckTargets(ReadOnlySpan<int> targets, int vocab, int ignoreIndex, string what = "targets")
    {
        for (int n = 0; n < targets.Length; n++)
            if (targets[n] != ignoreIndex && (uint)targets[n] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(targets),
                    $"{what}: row {n} has target {targets[n]}, outside [0, {vocab}) and not the ignore index {ignoreIndex}");
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (vectorized exp and sums): rows in
    /// parallel; per row max, subtract, TensorPrimitives.Exp, sum, scale. Ignored rows' probs are written too.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int ignoreIndex, Span<float> probs, Span<float> losses)
    {
        // logits [N, V], targets [N], probs [N, V], losses [N]
        int rows = losses.Length, vocab = logits.Length / rows;
        if (probs.Length != logits.Length || targets.Length != rows || logits.Length != rows * vocab)
            throw new ArgumentException("cross-entropy: span lengths do not match [N, V] / [N]");
        CheckTargets(targets, vocab, ignoreIndex);
        int[] target = targets.ToArray(); // [N]
        fixed (float* pLogits = logits, pProbs = probs, pLosses = losses)
        {
            var logitss = new Pinned<float>(pLogits, logits.Length);
            var probss = new Pinned<float>(pProbs, probs.Length);
            var lossess = new Pinned<float>(pLosses, rows);
            KernelParallel.For(rows, 4L * rows * vocab, n =>
            {
                ReadOnlySpan<float> x = logitss.Slice(n * vocab, vocab); // [V]
                var (max, sum) = SoftmaxKernel.Row(x, probss.Slice(n * vocab, vocab));
                lossess.Slice(n, 1)[0] = target[n] == ignoreIndex ? 0f : MathF.Log(sum) - (x[target[n]] - max);
            });
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: rows in parallel,
    /// dLogits += dLoss·probs vectorized, then the target entry gets its −dLoss.</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dLosses, ReadOnlySpan<float> probs, ReadOnlySpan<int> targets, int ignoreIndex, Span<float> dLogits)
    {
        // dLosses [N], probs [N, V], targets [N], dLogits [N, V]
        int rows = dLosses.Length, vocab = probs.Length / rows;
        if (dLogits.Length != probs.Length || targets.Length != rows || probs.Length != rows * vocab)
            throw new ArgumentException("cross-entropy backward: span lengths do not match [N, V] / [N]");
        CheckTargets(targets, vocab, ignoreIndex);
        int[] target = targets.ToArray(); // [N]
        float[] dLoss = dLosses.ToArray(); // [N]
        fixed (float* pProbs = probs, pDLogits = dLogits)
        {
            var probss = new Pinned<float>(pProbs, probs.Length);
            var dLogitss = new Pinned<float>(pDLogits, dLogits.Length);
            KernelParallel.For(rows, 3L * rows * vocab, n =>
            {
                if (target[n] == ignoreIndex) return;
                ReadOnlySpan<float> p = probss.Slice(n * vocab, vocab); // [V]
                Span<float> dx = dLogitss.Slice(n * vocab, vocab);      // [V]
                float before = dx[target[n]];
                TensorPrimitives.MultiplyAdd(p, dLoss[n], dx, dx);
                dx[target[n]] = before + dLoss[n] * (p[target[n]] - 1f); // the one entry where the indicator is 1
            });
        }
    }
}
