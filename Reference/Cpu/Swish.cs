using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Llm.Cpu;

// Shapes: any; elementwise over L = N*C elements.

/// <summary>Swish (Ramachandran et al. 2017): y = x·σ(βx), σ(z) = 1/(1 + e^−z); SiLU at β = 1 (LLaMA's SwiGLU).</summary>
public static class SwishKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = input[i]·σ(β·input[i]).</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, Span<T> output, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [L], output [L]
        for (int i = 0; i < input.Length; i++)
        {
            T x = input[i];
            output[i] = x * Sigmoid(beta * x);
        }
    }

    /// <summary>dInput[i] += dOutput[i]·swish'(input[i]), swish'(x) = s + βx·s(1 − s) with s = σ(βx).</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, Span<T> dInput, T beta)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], input [L], dInput [L]
        for (int i = 0; i < input.Length; i++)
        {
            T z = beta * input[i], s = Sigmoid(z);
            // 1 − s as σ(−z): in f32, 1 − σ(z) at large z keeps only ε of absolute accuracy, which z·s(1 − s) scales by z
            dInput[i] += (s + z * s * Sigmoid(-z)) * dOutput[i];
        }
    }

    /// <summary>σ(z) without overflow: 1/(1 + e^−z) for z ≥ 0, e^z/(1 + e^z) for z &lt; 0, so e^(−|z|) ≤ 1; NaN stays NaN.</summary>
    public static T Sigmoid<T>(T z) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T e = T.Exp(-T.Abs(z));
        return z >= T.Zero ? T.One / (T.One + e) : e / (T.One + e);
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (TensorPrimitives.Sigmoid, 1/(1 + e^−z),
    /// which saturates to 0 or 1 rather than overflowing to NaN): fixed chunks in parallel, vectorized.</summary>
    public static void ForwardFast(ReadOnlySpan<float> input, Span<float> output, float beta)
    {
        // input [L], output [L]
        if (output.Length != input.Length) throw new ArgumentException("swish: input and output lengths differ");
        KernelParallel.Elementwise(input, output, 1, (x, y) =>  // x, y [chunk]
        {
            TensorPrimitives.Multiply(x, beta, y);
            TensorPrimitives.Sigmoid(y, y);
            TensorPrimitives.Multiply(y, x, y);
        });
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: fixed chunks in parallel, vectorized.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, Span<float> dInput, float beta)
    {
        // dOutput [L], input [L], dInput [L]
        if (dOutput.Length != input.Length || dInput.Length != input.Length)
            throw new ArgumentException("swish backward: dOutput, input and dInput lengths differ");
        KernelParallel.Elementwise(dOutput, input, dInput, 4, (dy, x, dx) =>  // dy, x, dx [chunk]
        {
            Span<float> z = stackalloc float[x.Length]; // [chunk] βx
            Span<float> s = stackalloc float[x.Length]; // [chunk] σ(βx)
            Span<float> m = stackalloc float[x.Length]; // [chunk] σ(−βx) = 1 − s, accurate where s ≈ 1
            TensorPrimitives.Multiply(x, beta, z);
            TensorPrimitives.Sigmoid(z, s);
            TensorPrimitives.Negate(z, m);
            TensorPrimitives.Sigmoid(m, m);
            AccumulateGradient(z, s, m, dy, dx);
        });
    }

    /// <summary>dx[i] += dy[i]·(s + z·s·m), z = βx, s = σ(z), m = σ(−z) = 1 − s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void AccumulateGradient(ReadOnlySpan<float> z, ReadOnlySpan<float> s, ReadOnlySpan<float> m, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int i = 0, width = Vector<float>.Count;
        for (; i <= z.Length - width; i += width)
        {
            var vz = new Vector<float>(z.Slice(i));
            var vs = new Vector<float>(s.Slice(i));
            var local = vs + vz * vs * new Vector<float>(m.Slice(i));
            (new Vector<float>(dx.Slice(i)) + local * new Vector<float>(dy.Slice(i))).CopyTo(dx.Slice(i));
        }
        for (; i < z.Length; i++)
        {
            float local = s[i] + z[i] * s[i] * m[i];
            dx[i] += local * dy[i];
        }
    }
}
