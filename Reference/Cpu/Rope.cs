using System.Numerics;
using System.Runtime.CompilerServices;

namespace Llm.Cpu;

// Shapes: N = B·T tokens, H heads, hs head size, d = rotaryDims (even, ≤ hs) rotated dims of each head; x [N, H, hs], positions [N].

/// <summary>Rotary position embedding (Su et al. 2021, RoFormer) with Hugging Face's rotate-half pairing and GPT-NeoX's
/// partial rotary: in each head, pair (i, i + d/2) for i &lt; d/2 turns by pos·θ^(−2i/d); dims d.. pass through.</summary>
public static class RopeKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>y_i = x_i cos a − x_{i+d/2} sin a, y_{i+d/2} = x_{i+d/2} cos a + x_i sin a, a = pos·θ^(−2i/d); y_j = x_j for j ≥ d.</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, ReadOnlySpan<int> positions, int heads, int headSize, int rotaryDims, T theta, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [N, H, hs], positions [N], output [N, H, hs]
        int half = rotaryDims / 2;
        for (int n = 0; n < positions.Length; n++)
            for (int h = 0; h < heads; h++)
            {
                int row = (n * heads + h) * headSize;
                ReadOnlySpan<T> x = input.Slice(row, headSize); // [hs]
                Span<T> y = output.Slice(row, headSize);        // [hs]
                for (int i = 0; i < half; i++)
                {
                    var (sin, cos) = T.SinCos(Angle(positions[n], i, rotaryDims, theta));
                    y[i] = x[i] * cos - x[i + half] * sin;
                    y[i + half] = x[i + half] * cos + x[i] * sin;
                }
                x[rotaryDims..].CopyTo(y[rotaryDims..]);
            }
    }

    /// <summary>dx += Rᵀ·dy: dx_i += dy_i cos a + dy_{i+d/2} sin a, dx_{i+d/2} += dy_{i+d/2} cos a − dy_i sin a; dx_j += dy_j for j ≥ d.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<int> positions, int heads, int headSize, int rotaryDims, T theta, Span<T> dInput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [N, H, hs], positions [N], dInput [N, H, hs]
        int half = rotaryDims / 2;
        for (int n = 0; n < positions.Length; n++)
            for (int h = 0; h < heads; h++)
            {
                int row = (n * heads + h) * headSize;
                ReadOnlySpan<T> dy = dOutput.Slice(row, headSize); // [hs]
                Span<T> dx = dInput.Slice(row, headSize);          // [hs]
                for (int i = 0; i < half; i++)
                {
                    var (sin, cos) = T.SinCos(Angle(positions[n], i, rotaryDims, theta));
                    dx[i] += dy[i] * cos + dy[i + half] * sin;
                    dx[i + half] += dy[i + half] * cos - dy[i] * sin;
                }
                for (int j = rotaryDims; j < headSize; j++) dx[j] += dy[j];
            }
    }

    /// <summary>pos·θ^(−2i/d), in T: exact to T's rounding in F64; in F32 the same float32 steps as Hugging Face's
    /// inv_freq = 1/(θ ** (arange(0, d, 2)/d)) and pos·inv_freq.</summary>
    public static T Angle<T>(int position, int i, int rotaryDims, T theta) where T : unmanaged, IFloatingPointIeee754<T> =>
        T.CreateChecked(position) * (T.One / T.Pow(theta, T.CreateChecked(2 * i) / T.CreateChecked(rotaryDims)));

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>inv_freq[i] = 1/θ^(2i/d) in float32, as Hugging Face computes it; [d/2].</summary>
    public static float[] InverseFrequencies(int rotaryDims, float theta)
    {
        var f = new float[rotaryDims / 2];
        for (int i = 0; i < f.Length; i++) f[i] = 1f / MathF.Pow(theta, (float)(2 * i) / rotaryDims);
        return f;
    }

    /// <summary>Equivalent to <see cref="Forward{T}"/> in float (the same float32 angle; MathF's sin and cos, which reduce
    /// large arguments exactly): tokens in parallel, each token's d/2 cos/sin computed once for all its heads.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> input, ReadOnlySpan<int> positions, int heads, int headSize, int rotaryDims,
        float theta, Span<float> output)
    {
        // input [N, H, hs], positions [N], output [N, H, hs]
        int tokens = positions.Length, width = heads * headSize;
        if (input.Length != tokens * width || output.Length != tokens * width)
            throw new ArgumentException("rope: span lengths do not match [N, H, hs] / [N]");
        float[] invFreq = InverseFrequencies(rotaryDims, theta);   // [d/2]
        int[] pos = positions.ToArray();                            // [N], small beside x
        fixed (float* pIn = input, pOut = output)
        {
            var inputs = new Pinned<float>(pIn, input.Length);
            var outputs = new Pinned<float>(pOut, output.Length);
            KernelParallel.For(tokens, 4L * tokens * width, n =>
            {
                Span<float> cos = stackalloc float[invFreq.Length], sin = stackalloc float[invFreq.Length]; // [d/2]
                SinCos(pos[n], invFreq, sin, cos);
                for (int h = 0; h < heads; h++)
                {
                    int row = (n * heads + h) * headSize;
                    Rotate(inputs.Slice(row, headSize), cos, sin, outputs.Slice(row, headSize));
                }
            });
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> in float: tokens in parallel, as <see cref="ForwardFast"/>.</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<int> positions, int heads, int headSize, int rotaryDims,
        float theta, Span<float> dInput)
    {
        // dOutput [N, H, hs], positions [N], dInput [N, H, hs]
        int tokens = positions.Length, width = heads * headSize;
        if (dOutput.Length != tokens * width || dInput.Length != tokens * width)
            throw new ArgumentException("rope backward: span lengths do not match [N, H, hs] / [N]");
        float[] invFreq = InverseFrequencies(rotaryDims, theta);   // [d/2]
        int[] pos = positions.ToArray();                            // [N]
        fixed (float* pDy = dOutput, pDx = dInput)
        {
            var dOutputs = new Pinned<float>(pDy, dOutput.Length);
            var dInputs = new Pinned<float>(pDx, dInput.Length);
            KernelParallel.For(tokens, 4L * tokens * width, n =>
            {
                Span<float> cos = stackalloc float[invFreq.Length], sin = stackalloc float[invFreq.Length]; // [d/2]
                SinCos(pos[n], invFreq, sin, cos);
                for (int h = 0; h < heads; h++)
                {
                    int row = (n * heads + h) * headSize;
                    AccumulateRotatedBack(dOutputs.Slice(row, headSize), cos, sin, dInputs.Slice(row, headSize));
                }
            });
        }
    }

    /// <summary>sin[i], cos[i] of a = fl(pos·invFreq[i]).</summary>
    private static void SinCos(int position, ReadOnlySpan<float> invFreq, Span<float> sin, Span<float> cos)
    {
        for (int i = 0; i < invFreq.Length; i++) (sin[i], cos[i]) = MathF.SinCos(position * invFreq[i]);
    }

    /// <summary>One head: y_i = x_i c_i − x_{i+d/2} s_i, y_{i+d/2} = x_{i+d/2} c_i + x_i s_i; the rest copied.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rotate(ReadOnlySpan<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, Span<float> y)
    {
        int half = cos.Length, d = 2 * half, i = 0, width = Vector<float>.Count;
        for (; i <= half - width; i += width)
        {
            Vector<float> a = new(x.Slice(i)), b = new(x.Slice(i + half)), c = new(cos.Slice(i)), s = new(sin.Slice(i));
            (a * c - b * s).CopyTo(y.Slice(i));
            (b * c + a * s).CopyTo(y.Slice(i + half));
        }
        for (; i < half; i++)
        {
            float a = x[i], b = x[i + half];
            y[i] = a * cos[i] - b * sin[i];
            y[i + half] = b * cos[i] + a * sin[i];
        }
        x[d..].CopyTo(y[d..]);
    }

    /// <summary>One head: dx_i += dy_i c_i + dy_{i+d/2} s_i, dx_{i+d/2} += dy_{i+d/2} c_i − dy_i s_i; dx_j += dy_j beyond d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateRotatedBack(ReadOnlySpan<float> dy, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, Span<float> dx)
    {
        int half = cos.Length, d = 2 * half, i = 0, width = Vector<float>.Count;
        for (; i <= half - width; i += width)
        {
            Vector<float> a = new(dy.Slice(i)), b = new(dy.Slice(i + half)), c = new(cos.Slice(i)), s = new(sin.Slice(i));
            (new Vector<float>(dx.Slice(i)) + (a * c + b * s)).CopyTo(dx.Slice(i));
            (new Vector<float>(dx.Slice(i + half)) + (b * c - a * s)).CopyTo(dx.Slice(i + half));
        }
        for (; i < half; i++)
        {
            float a = dy[i], b = dy[i + half];
            dx[i] += a * cos[i] + b * sin[i];
            dx[i + half] += b * cos[i] - a * sin[i];
        }
        for (int j = d; j < dy.Length; j++) dx[j] += dy[j];
    }

    // ---- checkpoint layout -----------------------------------------------------------------------------------------

    /// <summary>Rows of a q/k projection weight [H·hs, in] from Meta's interleaved pairs (2j, 2j+1) to rotate-half pairs
    /// (j, j + hs/2), as convert_llama_weights_to_hf.py's permute: out[h, r·hs/2 + j] = in[h, 2j + r], r ∈ {0, 1}.</summary>
    public static void InterleavedToHalf(ReadOnlySpan<float> weight, Span<float> output, int heads, int headSize, int inFeatures) =>
        PermuteRows(weight, output, heads, headSize, inFeatures, toHalf: true);

    /// <summary>The inverse of <see cref="InterleavedToHalf"/>: out[h, 2j + r] = in[h, r·hs/2 + j].</summary>
    public static void HalfToInterleaved(ReadOnlySpan<float> weight, Span<float> output, int heads, int headSize, int inFeatures) =>
        PermuteRows(weight, output, heads, headSize, inFeatures, toHalf: false);

    private static void PermuteRows(ReadOnlySpan<float> weight, Span<float> output, int heads, int headSize, int inFeatures, bool toHalf)
    {
        // weight [H·hs, in], output [H·hs, in]
        if (headSize % 2 != 0) throw new ArgumentException($"rope permute: head size {headSize} is odd: rows pair up two by two");
        if (weight.Length != heads * headSize * inFeatures || output.Length != weight.Length)
            throw new ArgumentException($"rope permute: weight and output must have [{heads}·{headSize}, {inFeatures}] elements");
        if (weight.Overlaps(output)) throw new ArgumentException("rope permute: weight and output overlap");
        int half = headSize / 2;
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
                for (int r = 0; r < 2; r++)
                {
                    int interleaved = h * headSize + 2 * j + r, rotateHalf = h * headSize + r * half + j;
                    var (from, to) = toHalf ? (interleaved, rotateHalf) : (rotateHalf, interleaved);
                    weight.Slice(from * inFeatures, inFeatures).CopyTo(output.Slice(to * inFeatures, inFeatures));
                }
    }
}
