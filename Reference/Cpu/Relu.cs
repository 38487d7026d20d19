using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: any; elementwise over L = N*C elements.

/// <summary>ReLU: y = max(0, x); NaN propagates, and the gradient at x = 0 is 0 (as PyTorch's).</summary>
public static class ReluKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = max(0, input[i]); T.Max returns NaN for a NaN input.</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [L], output [L]
        for (int i = 0; i < input.Length; i++) output[i] = T.Max(input[i], T.Zero);
    }

    /// <summary>dInput[i] += dOutput[i]·[input[i] &gt; 0] (0 at x = 0 and for a NaN x).</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, Span<T> dInput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], input [L], dInput [L]
        for (int i = 0; i < input.Length; i++)
            if (input[i] > T.Zero) dInput[i] += dOutput[i];
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> bit for bit (TensorPrimitives.Max propagates NaN and orders −0 &lt; +0
    /// as T.Max does): fixed chunks in parallel, vectorized.</summary>
    public static void ForwardFast(ReadOnlySpan<float> input, Span<float> output)
    {
        // input [L], output [L]
        if (output.Length != input.Length) throw new ArgumentException("relu: input and output lengths differ");
        KernelParallel.Elementwise(input, output, 1, (x, y) => TensorPrimitives.Max(x, 0f, y));  // x, y [chunk]
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> bit for bit (the same one addition where x &gt; 0): fixed chunks in
    /// parallel, vectorized with a mask.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, Span<float> dInput)
    {
        // dOutput [L], input [L], dInput [L]
        if (dOutput.Length != input.Length || dInput.Length != input.Length)
            throw new ArgumentException("relu backward: dOutput, input and dInput lengths differ");
        KernelParallel.Elementwise(dOutput, input, dInput, 1, (dy, x, dx) =>  // dy, x, dx [chunk]
        {
            int i = 0, width = Vector<float>.Count;
            for (; i <= x.Length - width; i += width)
            {
                var open = Vector.GreaterThan(new Vector<float>(x.Slice(i)), Vector<float>.Zero);  // NaN compares false
                var vdx = new Vector<float>(dx.Slice(i));
                Vector.ConditionalSelect(open, vdx + new Vector<float>(dy.Slice(i)), vdx).CopyTo(dx.Slice(i));
            }
            for (; i < x.Length; i++)
                if (x[i] > 0f) dx[i] += dy[i];
        });
    }
}
