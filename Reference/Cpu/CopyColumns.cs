using System.Numerics;

namespace Llm.Cpu;

// Shapes: source [N, Cs], destination [N, Cd]; a band of `width` columns moves between them.

/// <summary>Moves a band of columns between two row-aligned tensors: q, k and v out of a fused projection (and their
/// gradients back, accumulating), new keys and values into a KV cache. Its backward is itself with the roles swapped.</summary>
public static class CopyColumnsKernel
{
    /// <summary>destination[n, dc + j] = source[n, sc + j] (+= when accumulate) for n &lt; N, j &lt; width. A copy needs no
    /// fast path: the JIT-specialized loop is already memory-bound.</summary>
    public static void Copy<T>(ReadOnlySpan<T> source, int sourceColumns, int sourceColumn, Span<T> destination, int destinationColumns,
        int destinationColumn, int width, bool accumulate)
        where T : unmanaged, INumber<T>
    {
        int rows = source.Length / sourceColumns;
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> from = source.Slice(n * sourceColumns + sourceColumn, width);
            Span<T> to = destination.Slice(n * destinationColumns + destinationColumn, width);
            if (accumulate)
                for (int j = 0; j < width; j++) to[j] += from[j];
            else from.CopyTo(to);
        }
    }
}
