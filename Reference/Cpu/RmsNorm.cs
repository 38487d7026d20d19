using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Llm.Cpu;

// Shapes: N rows (= B*T), C channels.

/// <summary>RMSNorm over the last axis (LLaMA's; Zhang &amp; Sennrich 2019): y = x·rstd·w, rstd = 1/√(mean(x²) + eps),
/// no mean subtracted and no bias. Forward saves rstd, which is all backward needs besides x and w.</summary>
public static class RmsNormKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[n, i] = input[n, i] · rstd[n] · weight[i], rstd[n] = 1/√(Σ_i input[n, i]²/C + eps); writes rstd[n].</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, ReadOnlySpan<T> weight, T eps, Span<T> output, Span<T> rstd)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [N, C], weight [C], output [N, C], rstd [N]
        int c = weight.Length, rows = rstd.Length;
        T count = T.CreateChecked(c);
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> x = input.Slice(n * c, c);   // [C]
            Span<T> y = output.Slice(n * c, c);          // [C]
            T squares = T.Zero;
            for (int i = 0; i < c; i++) squares += x[i] * x[i];
            T s = T.One / T.Sqrt(squares / count + eps);
            // normalize, then scale by the weight, in Hugging Face's LlamaRMSNorm order
            for (int i = 0; i < c; i++) y[i] = x[i] * s * weight[i];
            rstd[n] = s;
        }
    }

    /// <summary>With x̂ = x·rstd and g = w·dy: dx += rstd·(g − x̂·mean(g·x̂)), dw += Σ_n dy·x̂; an empty dWeight (a frozen
    /// gain) is not wanted and its sum is skipped.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, ReadOnlySpan<T> weight,
        ReadOnlySpan<T> rstd, Span<T> dInput, Span<T> dWeight)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [N, C], input [N, C], weight [C], rstd [N], dInput [N, C], dWeight [C]
        int c = weight.Length, rows = rstd.Length;
        bool wantWeight = !dWeight.IsEmpty;
        T count = T.CreateChecked(c);
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> x = input.Slice(n * c, c);    // [C]
            ReadOnlySpan<T> dy = dOutput.Slice(n * c, c); // [C]
            Span<T> dx = dInput.Slice(n * c, c);          // [C]
            T s = rstd[n];
            // the one row reduction of the normalization's Jacobian (no mean was subtracted, so no mean(g) term)
            T gxMean = T.Zero;
            for (int i = 0; i < c; i++) gxMean += weight[i] * dy[i] * (x[i] * s);
            gxMean /= count;
            for (int i = 0; i < c; i++)
            {
                T xHat = x[i] * s;
                if (wantWeight) dWeight[i] += xHat * dy[i];
                dx[i] += (weight[i] * dy[i] - xHat * gxMean) * s;
            }
        }
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (vectorized sums): rows in parallel,
    /// each row's sum of squares and scaling vectorized.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> input, ReadOnlySpan<float> weight, float eps,
        Span<float> output, Span<float> rstd)
    {
        // input [N, C], weight [C], output [N, C], rstd [N]
        int c = weight.Length, rows = rstd.Length;
        if (input.Length != rows * c || output.Length != rows * c)
            throw new ArgumentException("rmsnorm: span lengths do not match [N, C] / [C] / [N]");
        fixed (float* pIn = input, pW = weight, pOut = output, pRstd = rstd)
        {
            var inputs = new Pinned<float>(pIn, input.Length);
            var weights = new Pinned<float>(pW, c);
            var outputs = new Pinned<float>(pOut, output.Length);
            var rstds = new Pinned<float>(pRstd, rows);
            KernelParallel.For(rows, (long)rows * c, n =>
            {
                ReadOnlySpan<float> x = inputs.Slice(n * c, c); // [C]
                float s = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(x) / c + eps);
                Normalize(x, s, weights.Slice(0, c), outputs.Slice(n * c, c));
                rstds.Slice(n, 1)[0] = s;
            });
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: dInput rows in parallel (each row is
    /// independent), then dWeight summed over rows in row order, vectorized over channels (skipped when empty).</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> rstd, Span<float> dInput, Span<float> dWeight)
    {
        // dOutput [N, C], input [N, C], weight [C], rstd [N], dInput [N, C], dWeight [C]
        int c = weight.Length, rows = rstd.Length;
        if (input.Length != rows * c || dOutput.Length != rows * c || dInput.Length != rows * c || dWeight.Length != c && !dWeight.IsEmpty)
            throw new ArgumentException("rmsnorm backward: span lengths do not match [N, C] / [C] / [N]");
        fixed (float* pDy = dOutput, pIn = input, pW = weight, pDx = dInput)
        {
            var dOutputs = new Pinned<float>(pDy, dOutput.Length);
            var inputs = new Pinned<float>(pIn, input.Length);
            var weights = new Pinned<float>(pW, c);
            var dInputs = new Pinned<float>(pDx, dInput.Length);
            float[] rstds = rstd.ToArray(); // [N], tiny
            KernelParallel.For(rows, 2L * rows * c, n =>
            {
                ReadOnlySpan<float> x = inputs.Slice(n * c, c);    // [C]
                ReadOnlySpan<float> dy = dOutputs.Slice(n * c, c); // [C]
                RowInputGradient(x, dy, weights.Slice(0, c), rstds[n], dInputs.Slice(n * c, c));
            });
        }
        if (dWeight.IsEmpty) return;
        for (int n = 0; n < rows; n++)
            AccumulateNormalizedTimes(input.Slice(n * c, c), rstd[n], dOutput.Slice(n * c, c), dWeight);
    }

    /// <summary>y[i] = x[i]·s·w[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Normalize(ReadOnlySpan<float> x, float s, ReadOnlySpan<float> w, Span<float> y)
    {
        var vs = new Vector<float>(s);
        int i = 0;
        for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            (new Vector<float>(x.Slice(i)) * vs * new Vector<float>(w.Slice(i))).CopyTo(y.Slice(i));
        for (; i < x.Length; i++) y[i] = x[i] * s * w[i];
    }

    /// <summary>One row of dx += s·(g − x̂·mean(g·x̂)), g = w·dy, x̂ = x·s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowInputGradient(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, float s, Span<float> dx)
    {
        int c = x.Length, i = 0, width = Vector<float>.Count;
        var vs = new Vector<float>(s);
        var gxAcc = Vector<float>.Zero;
        for (; i <= c - width; i += width)
            gxAcc += new Vector<float>(w.Slice(i)) * new Vector<float>(dy.Slice(i)) * (new Vector<float>(x.Slice(i)) * vs);
        float gxSum = Vector.Sum(gxAcc);
        for (; i < c; i++) gxSum += w[i] * dy[i] * (x[i] * s);
        float gxMean = gxSum / c;
        var vgxMean = new Vector<float>(gxMean);
        for (i = 0; i <= c - width; i += width)
        {
            var g = new Vector<float>(w.Slice(i)) * new Vector<float>(dy.Slice(i));
            var xHat = new Vector<float>(x.Slice(i)) * vs;
            (new Vector<float>(dx.Slice(i)) + (g - xHat * vgxMean) * vs).CopyTo(dx.Slice(i));
        }
        for (; i < c; i++) dx[i] += (w[i] * dy[i] - x[i] * s * gxMean) * s;
    }

    /// <summary>dWeight[i] += x[i]·s·dy[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateNormalizedTimes(ReadOnlySpan<float> x, float s, ReadOnlySpan<float> dy, Span<float> dWeight)
    {
        int i = 0, width = Vector<float>.Count;
        var vs = new Vector<float>(s);
        for (; i <= x.Length - width; i += width)
            (new Vector<float>(dWeight.Slice(i)) + new Vector<float>(x.Slice(i)) * vs * new Vector<float>(dy.Slice(i))).CopyTo(dWeight.Slice(i));
        for (; i < x.Length; i++) dWeight[i] += x[i] * s * dy[i];
    }
}
