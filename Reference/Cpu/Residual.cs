using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: any; elementwise over L elements.

/// <summary>The residual stream's elementwise ops: add, accumulate (the backward of add and of every fan-out),
/// scale (gradient clipping), and the sum of squares (global gradient norm).</summary>
public static class ResidualKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[i] = a[i] + b[i].</summary>
    public static void Add<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b, Span<T> output) where T : unmanaged, INumber<T>
    {
        // a [L], b [L], output [L]
        for (int i = 0; i < output.Length; i++) output[i] = a[i] + b[i];
    }

    /// <summary>destination[i] += source[i].</summary>
    public static void Accumulate<T>(ReadOnlySpan<T> source, Span<T> destination) where T : unmanaged, INumber<T>
    {
        // source [L], destination [L]
        for (int i = 0; i < destination.Length; i++) destination[i] += source[i];
    }

    /// <summary>tensor[i] *= factor.</summary>
    public static void Scale<T>(Span<T> tensor, T factor) where T : unmanaged, INumber<T>
    {
        // tensor [L]
        for (int i = 0; i < tensor.Length; i++) tensor[i] *= factor;
    }

    /// <summary>Σ tensor[i]², each square and the running sum in double, left to right.</summary>
    public static double SumOfSquares<T>(ReadOnlySpan<T> tensor) where T : unmanaged, INumber<T>
    {
        // tensor [L]
        double sum = 0;
        for (int i = 0; i < tensor.Length; i++)
        {
            double x = double.CreateChecked(tensor[i]);
            sum += x * x;
        }
        return sum;
    }
}
