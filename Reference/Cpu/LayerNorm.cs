using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Llm.Cpu;

// Shapes: N rows (= B*T), C channels.

/// <summary>LayerNorm over the last axis: y = (x − μ)·rstd·w + b, μ and the biased variance σ² per row,
/// rstd = 1/√(σ² + eps). Forward saves μ and rstd, which is all backward needs besides x and w.</summary>
public static class LayerNormKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[n, i] = (input[n, i] − mean[n]) · rstd[n] · weight[i] + bias[i]; writes mean[n] and rstd[n].</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, ReadOnlySpan<T> weight, ReadOnlySpan<T> bias, T eps,
        Span<T> output, Span<T> mean, Span<T> rstd)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [N, C], weight [C], bias [C], output [N, C], mean [N], rstd [N]
        int c = weight.Length, rows = mean.Length;
        T count = T.CreateChecked(c);
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> x = input.Slice(n * c, c);   // [C]
            Span<T> y = output.Slice(n * c, c);          // [C]
            T m = T.Zero;
            for (int i = 0; i < c; i++) m += x[i];
            m /= count;
            T variance = T.Zero;                         // biased: divide by C, not C − 1
            for (int i = 0; i < c; i++) { T d = x[i] - m; variance += d * d; }
            variance /= count;
            T s = T.One / T.Sqrt(variance + eps);
            for (int i = 0; i < c; i++) y[i] = (x[i] - m) * s * weight[i] + bias[i];
            mean[n] = m;
            rstd[n] = s;
        }
    }

    /// <summary>With x̂ = (x − μ)·rstd and g = w·dy: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), dw += Σ_n dy·x̂, db += Σ_n dy.
    /// An empty dWeight or dBias is not wanted (a frozen parameter): its sum is skipped.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, ReadOnlySpan<T> weight,
        ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd, Span<T> dInput, Span<T> dWeight, Span<T> dBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [N, C], input [N, C], weight [C], mean [N], rstd [N], dInput [N, C], dWeight [C], dBias [C]
        int c = weight.Length, rows = mean.Length;
        bool wantWeight = !dWeight.IsEmpty, wantBias = !dBias.IsEmpty;
        T count = T.CreateChecked(c);
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> x = input.Slice(n * c, c);    // [C]
            ReadOnlySpan<T> dy = dOutput.Slice(n * c, c); // [C]
            Span<T> dx = dInput.Slice(n * c, c);          // [C]
            T m = mean[n], s = rstd[n];
            // the two row reductions of the normalization's Jacobian
            T gMean = T.Zero, gxMean = T.Zero;
            for (int i = 0; i < c; i++)
            {
                T xHat = (x[i] - m) * s;
                T g = weight[i] * dy[i];
                gMean += g;
                gxMean += g * xHat;
            }
            gMean /= count;
            gxMean /= count;
            for (int i = 0; i < c; i++)
            {
                T xHat = (x[i] - m) * s;
                T g = weight[i] * dy[i];
                if (wantBias) dBias[i] += dy[i];
                if (wantWeight) dWeight[i] += xHat * dy[i];
                dx[i] += (g - gMean - xHat * gxMean) * s;
            }
        }
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (vectorized sums): rows in parallel,
    /// each row's reductions and normalization vectorized.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> input, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, float eps,
        Span<float> output, Span<float> mean, Span<float> rstd)
    {
        // input [N, C], weight [C], bias [C], output [N, C], mean [N], rstd [N]
        int c = weight.Length, rows = mean.Length;
        if (input.Length != rows * c || output.Length != rows * c || bias.Length != c || rstd.Length != rows)
            throw new ArgumentException("layernorm: span lengths do not match [N, C] / [C] / [N]");
        fixed (float* pIn = input, pW = weight, pB = bias, pOut = output, pMean = mean, pRstd = rstd)
        {
            var inputs = new Pinned<float>(pIn, input.Length);
            var weights = new Pinned<float>(pW, c);
            var biases = new Pinned<float>(pB, c);
            var outputs = new Pinned<float>(pOut, output.Length);
            var means = new Pinned<float>(pMean, rows);
            var rstds = new Pinned<float>(pRstd, rows);
            KernelParallel.For(rows, (long)rows * c, n =>
            {
                ReadOnlySpan<float> x = inputs.Slice(n * c, c); // [C]
                Span<float> y = outputs.Slice(n * c, c);        // [C]
                float m = TensorPrimitives.Sum(x) / c;
                float variance = SumOfSquaredDeviations(x, m) / c;
                float s = 1f / MathF.Sqrt(variance + eps);
                Normalize(x, m, s, weights.Slice(0, c), biases.Slice(0, c), y);
                means.Slice(n, 1)[0] = m;
                rstds.Slice(n, 1)[0] = s;
            });
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: dInput rows in parallel (each row is
    /// independent), then dWeight and dBias summed over rows in row order, vectorized over channels (each skipped when empty).</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd, Span<float> dInput, Span<float> dWeight, Span<float> dBias)
    {
        // dOutput [N, C], input [N, C], weight [C], mean [N], rstd [N], dInput [N, C], dWeight [C], dBias [C]
        int c = weight.Length, rows = mean.Length;
        if (input.Length != rows * c || dOutput.Length != rows * c || dInput.Length != rows * c
            || rstd.Length != rows || dWeight.Length != c && !dWeight.IsEmpty || dBias.Length != c && !dBias.IsEmpty)
            throw new ArgumentException("layernorm backward: span lengths do not match [N, C] / [C] / [N]");
        fixed (float* pDy = dOutput, pIn = input, pW = weight, pDx = dInput)
        {
            var dOutputs = new Pinned<float>(pDy, dOutput.Length);
            var inputs = new Pinned<float>(pIn, input.Length);
            var weights = new Pinned<float>(pW, c);
            var dInputs = new Pinned<float>(pDx, dInput.Length);
            float[] means = mean.ToArray(), rstds = rstd.ToArray(); // [N] each, tiny
            KernelParallel.For(rows, 2L * rows * c, n =>
            {
                ReadOnlySpan<float> x = inputs.Slice(n * c, c);    // [C]
                ReadOnlySpan<float> dy = dOutputs.Slice(n * c, c); // [C]
                RowInputGradient(x, dy, weights.Slice(0, c), means[n], rstds[n], dInputs.Slice(n * c, c));
            });
        }
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<float> x = input.Slice(n * c, c);    // [C]
            ReadOnlySpan<float> dy = dOutput.Slice(n * c, c); // [C]
            if (!dBias.IsEmpty) TensorPrimitives.Add(dBias, dy, dBias);
            if (!dWeight.IsEmpty) AccumulateNormalizedTimes(x, mean[n], rstd[n], dy, dWeight);
        }
    }

    /// <summary>Σ_i (x[i] − m)².</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SumOfSquaredDeviations(ReadOnlySpan<float> x, float m)
    {
        var acc = Vector<float>.Zero;
        var vm = new Vector<float>(m);
        int i = 0;
        for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
        {
            var d = new Vector<float>(x.Slice(i)) - vm;
            acc += d * d;
        }
        float sum = Vector.Sum(acc);
        for (; i < x.Length; i++) { float d = x[i] - m; sum += d * d; }
        return sum;
    }

    /// <summary>y[i] = (x[i] − m)·s·w[i] + b[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Normalize(ReadOnlySpan<float> x, float m, float s, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> y)
    {
        var vm = new Vector<float>(m);
        var vs = new Vector<float>(s);
        int i = 0;
        for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
            ((new Vector<float>(x.Slice(i)) - vm) * vs * new Vector<float>(w.Slice(i)) + new Vector<float>(b.Slice(i))).CopyTo(y.Slice(i));
        for (; i < x.Length; i++) y[i] = (x[i] - m) * s * w[i] + b[i];
    }

    /// <summary>One row of dx += s·(g − mean(g) − x̂·mean(g·x̂)), g = w·dy, x̂ = (x − m)·s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowInputGradient(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, float m, float s, Span<float> dx)
    {
        int c = x.Length, i = 0, width = Vector<float>.Count;
        var vm = new Vector<float>(m);
        var vs = new Vector<float>(s);
        var gAcc = Vector<float>.Zero;
        var gxAcc = Vector<float>.Zero;
        for (; i <= c - width; i += width)
        {
            var g = new Vector<float>(w.Slice(i)) * new Vector<float>(dy.Slice(i));
            var xHat = (new Vector<float>(x.Slice(i)) - vm) * vs;
            gAcc += g;
            gxAcc += g * xHat;
        }
        float gSum = Vector.Sum(gAcc), gxSum = Vector.Sum(gxAcc);
        for (; i < c; i++)
        {
            float g = w[i] * dy[i];
            gSum += g;
            gxSum += g * ((x[i] - m) * s);
        }
        float gMean = gSum / c, gxMean = gxSum / c;
        var vgMean = new Vector<float>(gMean);
        var vgxMean = new Vector<float>(gxMean);
        for (i = 0; i <= c - width; i += width)
        {
            var g = new Vector<float>(w.Slice(i)) * new Vector<float>(dy.Slice(i));
            var xHat = (new Vector<float>(x.Slice(i)) - vm) * vs;
            (new Vector<float>(dx.Slice(i)) + (g - vgMean - xHat * vgxMean) * vs).CopyTo(dx.Slice(i));
        }
        for (; i < c; i++)
        {
            float xHat = (x[i] - m) * s;
            dx[i] += (w[i] * dy[i] - gMean - xHat * gxMean) * s;
        }
    }

    /// <summary>dWeight[i] += (x[i] − m)·s·dy[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateNormalizedTimes(ReadOnlySpan<float> x, float m, float s, ReadOnlySpan<float> dy, Span<float> dWeight)
    {
        int i = 0, width = Vector<float>.Count;
        var vm = new Vector<float>(m);
        var vs = new Vector<float>(s);
        for (; i <= x.Length - width; i += width)
            (new Vector<float>(dWeight.Slice(i)) + (new Vector<float>(x.Slice(i)) - vm) * vs * new Vector<float>(dy.Slice(i))).CopyTo(dWeight.Slice(i));
        for (; i < x.Length; i++) dWeight[i] += (x[i] - m) * s * dy[i];
    }
}
