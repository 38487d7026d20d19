using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: N rows (= B*T), V vocabulary, C channels.

/// <summary>Embedding lookup (token or position table): a row gather forward, a row scatter-add backward.</summary>
public static class EmbeddingKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>output[n, c] = table[ids[n], c].</summary>
    public static void Forward<T>(ReadOnlySpan<int> ids, ReadOnlySpan<T> table, int channels, Span<T> output)
        where T : unmanaged, INumber<T>
    {
        // ids [N], table [V, C], output [N, C]
        CheckIds(ids, table.Length / channels);
        for (int n = 0; n < ids.Length; n++)
            for (int c = 0; c < channels; c++)
                output[n * channels + c] = table[ids[n] * channels + c];
    }

    /// <summary>dTable[ids[n], c] += dOutput[n, c]. A token seen twice receives both gradients.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<int> ids, int channels, Span<T> dTable)
        where T : unmanaged, INumber<T>
    {
        // dOutput [N, C], ids [N], dTable [V, C]
        CheckIds(ids, dTable.Length / channels);
        for (int n = 0; n < ids.Length; n++)
            for (int c = 0; c < channels; c++)
                dTable[ids[n] * channels + c] += dOutput[n * channels + c];
    }

    /// <summary>Throws naming the first position whose id is not a row of a table of <paramref name="vocab"/> rows.</summary>
    public static void CheckIds(ReadOnlySpan<int> ids, int vocab, string what = "ids")
    {
        for (int n = 0; n < ids.Length; n++)
            if ((uint)ids[n] >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(ids), $"{what}: id {ids[n]} at position {n} is outside [0, {vocab})");
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> (bit-identical): one block copy per row.</summary>
    public static void ForwardFast(ReadOnlySpan<int> ids, ReadOnlySpan<float> table, int channels, Span<float> output)
    {
        // ids [N], table [V, C], output [N, C]
        CheckIds(ids, table.Length / channels);
        for (int n = 0; n < ids.Length; n++)
            table.Slice(ids[n] * channels, channels).CopyTo(output.Slice(n * channels, channels));
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> (bit-identical: the same additions in the same row order),
    /// one vectorized row add at a time. Sequential on purpose: two positions with the same id write the same
    /// table row, and a fixed order keeps the result deterministic; at N·C = 200k it is tens of microseconds.</summary>
    public static void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<int> ids, int channels, Span<float> dTable)
    {
        // dOutput [N, C], ids [N], dTable [V, C]
        CheckIds(ids, dTable.Length / channels);
        for (int n = 0; n < ids.Length; n++)
        {
            Span<float> row = dTable.Slice(ids[n] * channels, channels); // [C]
            TensorPrimitives.Add(row, dOutput.Slice(n * channels, channels), row);
        }
    }
}
