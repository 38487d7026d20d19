using System.Numerics;
using Llm.Common;

namespace Llm.Cpu;

// Shapes: any; elementwise over L elements, element i drawing counter offset + i.

/// <summary>Inverted dropout on a counter-based stream: keep(i) = (H(seed, offset + i) >> 8) ≥ ⌈p·2²⁴⌉, H =
/// <see cref="Philox.Hash"/>, so backward recomputes the mask instead of storing it and every backend drops the same elements.</summary>
public static class DropoutKernel
{
    /// <summary>⌈p·2²⁴⌉: an element is kept iff the top 24 bits of its hash reach it (p·2²⁴ is exact in double).</summary>
    public static uint Threshold(string op, float p, long offset)
    {
        if (!(p >= 0f && p < 1f)) throw new ArgumentOutOfRangeException(nameof(p), p, $"{op}: p must be in [0, 1)");
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{op}: the stream offset must be ≥ 0");
        return (uint)Math.Ceiling(p * (double)(1 << 24));
    }

    /// <summary>1/(1 − p) in double, rounded once to the kernel's type: E[output] = input.</summary>
    public static double Scale(float p) => 1.0 / (1.0 - p);

    /// <summary>Whether element i of a call at <paramref name="offset"/> survives.</summary>
    public static bool Kept(ulong seed, long offset, int i, uint threshold) => Philox.Hash(seed, (ulong)offset + (ulong)i) >> 8 >= threshold;

    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = keep(i) ? input[i]/(1 − p) : 0 (a selection: a dropped NaN is 0).</summary>
    public static void Forward<T>(ReadOnlySpan<T> input, Span<T> output, float p, ulong seed, long offset)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [L], output [L]
        uint threshold = Threshold("dropout", p, offset);
        T scale = T.CreateChecked(Scale(p));
        for (int i = 0; i < input.Length; i++) output[i] = Kept(seed, offset, i, threshold) ? input[i] * scale : T.Zero;
    }

    /// <summary>dInput[i] += keep(i) ? dOutput[i]/(1 − p) : 0, the forward's mask recomputed from (seed, offset).</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, Span<T> dInput, float p, ulong seed, long offset)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [L], dInput [L]
        uint threshold = Threshold("dropout backward", p, offset);
        T scale = T.CreateChecked(Scale(p));
        for (int i = 0; i < dOutput.Length; i++)
            if (Kept(seed, offset, i, threshold)) dInput[i] += dOutput[i] * scale;
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Bit for bit <see cref="Forward{T}"/> in float (the same hash, scale and product): fixed chunks in parallel,
    /// chunk k drawing counters offset + k·Chunk onwards.</summary>
    public static void ForwardFast(ReadOnlySpan<float> input, Span<float> output, float p, ulong seed, long offset)
    {
        if (output.Length != input.Length) throw new ArgumentException("dropout: input and output lengths differ");
        KernelParallel.Elementwise(input, output, 8, (x, y, start) => Forward(x, y, p, seed, offset + start));   // x, y [chunk]
    }

    /// <summary>Bit for bit <see cref="Backward{T}"/> in float: fixed chunks in parallel.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, Span<float> dInput, float p, ulong seed, long offset)
    {
        if (dInput.Length != dOutput.Length) throw new ArgumentException("dropout backward: dOutput and dInput lengths differ");
        KernelParallel.Elementwise(dOutput, dInput, 8, (dy, dx, start) => Backward(dy, dx, p, seed, offset + start));   // dy, dx [chunk]
    }
}
