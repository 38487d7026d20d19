using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: any; elementwise over L = N*C elements.

/// <summary>The logistic sigmoid y = σ(x) = 1/(1 + e^−x): the gate of the original GLU (Dauphin et al. 2017).</summary>
public static class SigmoidKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = σ(input[i]), without overflow (<see cref="SwishKernel.Sigmoid{T}"/>).</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [L], output [L]
        for (int i = 0; i < input.Length; i++) output[i] = SwishKernel.Sigmoid(input[i]);
    }

    /// <summary>dInput[i] += dOutput[i]·σ(x)·σ(−x): σ' = σ(1 − σ), with 1 − σ(x) taken as σ(−x) to keep its accuracy where σ ≈ 1.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> input, Span<T> dInput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], input [L], dInput [L]
        for (int i = 0; i < input.Length; i++)
            dInput[i] += SwishKernel.Sigmoid(input[i]) * SwishKernel.Sigmoid(-input[i]) * dOutput[i];
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding (TensorPrimitives.Sigmoid): fixed chunks in parallel.</summary>
    public static void ForwardFast(ReadOnlySpan<float> input, Span<float> output)
    {
        if (output.Length != input.Length) throw new ArgumentException("sigmoid: input and output lengths differ");
        KernelParallel.Elementwise(input, output, 1, (x, y) => TensorPrimitives.Sigmoid(x, y));   // x, y [chunk]
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: fixed chunks in parallel, vectorized.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> input, Span<float> dInput)
    {
        if (dOutput.Length != input.Length || dInput.Length != input.Length)
            throw new ArgumentException("sigmoid backward: dOutput, input and dInput lengths differ");
        KernelParallel.Elementwise(dOutput, input, dInput, 3, (dy, x, dx) =>  // dy, x, dx [chunk]
        {
            Span<float> s = stackalloc float[x.Length]; // [chunk] σ(x)
            Span<float> m = stackalloc float[x.Length]; // [chunk] σ(−x)
            TensorPrimitives.Sigmoid(x, s);
            TensorPrimitives.Negate(x, m);
            TensorPrimitives.Sigmoid(m, m);
            TensorPrimitives.Multiply(s, m, s);
            TensorPrimitives.MultiplyAdd(s, dy, dx, dx);
        });
    }
}
