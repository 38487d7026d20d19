using System.Numerics;
using System.Numerics.Tensors;

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

    /// <summary>With x̂ = (x − μ)·rstd and g = w·dy: dx += rstd·(g − mean(g) − x̂·mean(g·x̂)), dw += Σ_n dy·x̂, db += Σ_n dy.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, ReadOnlySpan<T> weight,
        ReadOnlySpan<T> mean, ReadOnlySpan<T> rstd, Span<T> dInput, Span<T> dWeight, Span<T> dBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [N, C], input [N, C], weight [C], mean [N], rstd [N], dInput [N, C], dWeight [C], dBias [C]
        int c = weight.Length, rows = mean.Length;
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
                dBias[i] += dy[i];
                dWeight[i] += xHat * dy[i];
                dx[i] += (g - gMean - xHat * gxMean) * s;
            }
        }
    }
}
