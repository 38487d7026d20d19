using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: any; elementwise over L = N*C elements, a, b, output and the gradients all [L].

/// <summary>The elementwise product a ⊙ b: the gate of GLU, SwiGLU and GEGLU.</summary>
public static class MultiplyKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = a[i]·b[i].</summary>
    public static void Forward<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // a [L], b [L], output [L]
        for (int i = 0; i < a.Length; i++) output[i] = a[i] * b[i];
    }

    /// <summary>gradient[i] += dOutput[i]·other[i]: dA with other = b, dB with other = a.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> other, Span<T> gradient)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], other [L], gradient [L]
        for (int i = 0; i < other.Length; i++) gradient[i] += dOutput[i] * other[i];
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> bit for bit (one rounded product): fixed chunks in parallel, vectorized.</summary>
    public static void ForwardFast(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> output)
    {
        // a [L], b [L], output [L]
        if (b.Length != a.Length || output.Length != a.Length) throw new ArgumentException("multiply: a, b and output lengths differ");
        KernelParallel.Elementwise(a, b, output, 1, (x, y, z) => TensorPrimitives.Multiply(x, y, z));  // x, y, z [chunk]
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding (TensorPrimitives.MultiplyAdd may fuse the
    /// product and the sum into one rounding): fixed chunks in parallel, vectorized.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> other, Span<float> gradient)
    {
        // dOutput [L], other [L], gradient [L]
        if (dOutput.Length != other.Length || gradient.Length != other.Length)
            throw new ArgumentException("multiply backward: dOutput, the other factor and the gradient lengths differ");
        KernelParallel.Elementwise(dOutput, other, gradient, 2, (dy, o, g) => TensorPrimitives.MultiplyAdd(dy, o, g, g));  // dy, o, g [chunk]
    }
}
