using System.Numerics;

namespace Llm.Cpu;

// Shapes: NB buckets, NH heads, Tq queries, Tk keys, P = Tq·Tk positions; table [NB, NH], buckets [Tq, Tk] I32,
// output [NH, Tq, Tk].

/// <summary>T5's relative position bias (Raffel et al. 2020): each (query, key) pair reads its bucket's learned bias per
/// head, a gather forward and a bucket-wise scatter-add backward.</summary>
public static class RelativePositionBiasKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[h, p] = table[buckets[p], h].</summary>
    public static void Forward<T>(ReadOnlySpan<T> table, ReadOnlySpan<int> buckets, int heads, Span<T> output)
        where T : unmanaged, INumber<T>
    {
        int positions = buckets.Length;
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < positions; p++)
                output[h * positions + p] = table[buckets[p] * heads + h];
    }

    /// <summary>dTable[buckets[p], h] += dOutput[h, p], p in increasing order for each head: the fixed order of the contract.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<int> buckets, int heads, Span<T> dTable)
        where T : unmanaged, INumber<T>
    {
        int positions = buckets.Length;
        for (int h = 0; h < heads; h++)
            for (int p = 0; p < positions; p++)
                dTable[buckets[p] * heads + h] += dOutput[h * positions + p];
    }

    /// <summary>Throws naming the first position (i, j) whose bucket id is not a row of a table of <paramref name="count"/> buckets.</summary>
    public static void CheckBuckets(ReadOnlySpan<int> buckets, int keys, int count, string what)
    {
        for (int p = 0; p < buckets.Length; p++)
            if ((uint)buckets[p] >= (uint)count)
                throw new ArgumentOutOfRangeException(nameof(buckets),
                    $"{what}: bucket id {buckets[p]} at position [{p / keys}, {p % keys}] is outside [0, {count})");
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> (bit-identical): one head's plane per work item, in parallel.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> table, ReadOnlySpan<int> buckets, int heads, Span<float> output)
    {
        int positions = buckets.Length;
        fixed (float* t = table, o = output)
        fixed (int* b = buckets)
        {
            float* tp = t, op = o;
            int* bp = b;
            KernelParallel.For(heads, (long)heads * positions, h =>
            {
                float* plane = op + (long)h * positions;   // [P] of head h
                for (int p = 0; p < positions; p++) plane[p] = tp[bp[p] * heads + h];
            });
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> (bit-identical): each head writes only its own column of dTable,
    /// in the definition's position order, so the heads run in parallel without changing a single addition.</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<int> buckets, int heads, Span<float> dTable)
    {
        int positions = buckets.Length;
        fixed (float* d = dOutput, t = dTable)
        fixed (int* b = buckets)
        {
            float* dp = d, tp = t;
            int* bp = b;
            KernelParallel.For(heads, (long)heads * positions, h =>
            {
                float* plane = dp + (long)h * positions;   // [P] of head h
                for (int p = 0; p < positions; p++) tp[bp[p] * heads + h] += plane[p];
            });
        }
    }
}
