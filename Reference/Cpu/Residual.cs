using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

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

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Add{T}"/> (bit-identical): TensorPrimitives over fixed chunks in parallel.</summary>
    public static unsafe void AddFast(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> output)
    {
        // a [L], b [L], output [L]
        if (a.Length != output.Length || b.Length != output.Length) throw new ArgumentException("add: lengths differ");
        fixed (float* pA = a, pB = b, pOut = output)
        {
            var aa = new Pinned<float>(pA, a.Length);
            var bb = new Pinned<float>(pB, b.Length);
            var outputs = new Pinned<float>(pOut, output.Length);
            int length = output.Length;
            KernelParallel.For(KernelParallel.Chunks(length), length, k =>
            {
                int start = k * KernelParallel.Chunk, count = Math.Min(KernelParallel.Chunk, length - start);
                TensorPrimitives.Add(aa.Slice(start, count), bb.Slice(start, count), outputs.Slice(start, count));
            });
        }
    }

    /// <summary>Equivalent to <see cref="Accumulate{T}"/> (bit-identical).</summary>
    public static void AccumulateFast(ReadOnlySpan<float> source, Span<float> destination) => AddFast(destination, source, destination);

    /// <summary>Equivalent to <see cref="Scale{T}"/> (bit-identical): TensorPrimitives over fixed chunks in parallel.</summary>
    public static unsafe void ScaleFast(Span<float> tensor, float factor)
    {
        // tensor [L]
        fixed (float* p = tensor)
        {
            var values = new Pinned<float>(p, tensor.Length);
            int length = tensor.Length;
            KernelParallel.For(KernelParallel.Chunks(length), length, k =>
            {
                int start = k * KernelParallel.Chunk, count = Math.Min(KernelParallel.Chunk, length - start);
                Span<float> chunk = values.Slice(start, count);
                TensorPrimitives.Multiply(chunk, factor, chunk);
            });
        }
    }

    /// <summary>Equivalent to <see cref="SumOfSquares{T}"/> up to double rounding: per fixed chunk a double partial
    /// (vector lanes widened to double), the partials then added in chunk order, so the result does not depend on
    /// the thread count.</summary>
    public static unsafe double SumOfSquaresFast(ReadOnlySpan<float> tensor)
    {
        // tensor [L]
        int length = tensor.Length;
        var partials = new double[KernelParallel.Chunks(length)]; // [chunks]
        fixed (float* p = tensor)
        {
            var values = new Pinned<float>(p, length);
            KernelParallel.For(partials.Length, length, k =>
            {
                int start = k * KernelParallel.Chunk, count = Math.Min(KernelParallel.Chunk, length - start);
                partials[k] = ChunkSumOfSquares(values.Slice(start, count));
            });
        }
        double sum = 0;
        foreach (double partial in partials) sum += partial;
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double ChunkSumOfSquares(ReadOnlySpan<float> x)
    {
        var acc = Vector<double>.Zero;
        int i = 0;
        for (; i <= x.Length - Vector<float>.Count; i += Vector<float>.Count)
        {
            Vector.Widen(new Vector<float>(x.Slice(i)), out Vector<double> low, out Vector<double> high);
            acc += low * low + high * high;
        }
        double sum = Vector.Sum(acc);
        for (; i < x.Length; i++) sum += (double)x[i] * x[i];
        return sum;
    }
}
