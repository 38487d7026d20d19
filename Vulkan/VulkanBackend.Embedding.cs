using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Embedding lookup (Shaders/embedding.comp: one invocation per output element, grid-stride) and its scatter-add
/// backward (Shaders/embedding_back.comp: one invocation per channel walking the positions in order, deterministic
/// without atomics). Tensors larger than one binding may span (GPT-2's 50257×768 floats exceed lavapipe's 128 MiB
/// maxStorageBufferRange) go in chunks of positions and slices of table rows, one dispatch each, every dispatch
/// taking the ids in its slice.
/// Ids are range-checked on the device; see VulkanBackend.IndexErrors.cs.
/// Shapes: N rows (ids), V vocabulary, C channels.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <param name="FirstId">the first table row of the bound slice; <paramref name="SliceRows"/> rows are bound.</param>
    /// <param name="FirstRow">the position of the chunk's first row in the whole ids tensor (for error reports).</param>
    private readonly record struct EmbeddingPush(uint Rows, uint Channels, uint Vocab, uint FirstId, uint SliceRows, uint FirstRow);

    /// <summary>Most rows one invocation of a serial-over-rows kernel walks in one dispatch (embedding_back,
    /// layernorm_back_params); more rows take several dispatches in order. Lavapipe (llvmpipe) ends an invocation's
    /// loops after 65535 iterations in total (LP_MAX_TGSI_LOOP_ITERATIONS), silently; a GPU does not care.</summary>
    private const int SerialRowsPerDispatch = 16384;

    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        // ids [N] I32, table [V, C], output [N, C] (or [B, T, C])
        const string op = "embedding";
        RequireI32(op, ids);
        RequireF32(op, table, output);
        var (vocab, c) = OpShapes.Embedding(ids, table, output);
        string what = $"{op}: {ids.Describe()} into {table.Describe()}";
        var errors = IndexErrorSlot("ids", (n, id) => $"{what}: id {id} at position {n} is outside [0, {vocab})"); // [2] I32
        var flatIds = ids.Reshape(ids.Length);               // [N]
        var rowsOfOutput = output.Reshape(ids.Length, c);    // [N, C]
        int chunk = RowsPerBinding(c);                       // positions per dispatch, and table rows per slice
        for (int start = 0; start < ids.Length; start += chunk)
        {
            int count = Math.Min(chunk, ids.Length - start);
            for (int first = 0; first < vocab; first += chunk)
            {
                int slice = Math.Min(chunk, vocab - first);
                Dispatch("embedding", LinearGroups((long)count * c), 1, 1,
                    new EmbeddingPush((uint)count, (uint)c, (uint)vocab, (uint)first, (uint)slice, (uint)start),
                    reads: [flatIds.Slice(start, [count]), table.Slice(first * c, [slice, c])],
                    writes: [rowsOfOutput.Slice(start * c, [count, c]), errors]);
            }
        }
        CaptureBadIndex(flatIds, errors);
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable)
    {
        // dOutput [N, C], ids [N] I32, dTable [V, C]
        const string op = "embedding backward";
        RequireI32(op, ids);
        RequireF32(op, dTable, dOutput);
        var (vocab, c) = OpShapes.EmbeddingBackward(dOutput, ids, dTable);
        string what = $"{op}: {ids.Describe()} into {dTable.Describe()}";
        var errors = IndexErrorSlot("ids", (n, id) => $"{what}: id {id} at position {n} is outside [0, {vocab})"); // [2] I32
        // Positions in chunks of SerialRowsPerDispatch, in order (each dispatch waits for the previous through the
        // dTable hazard), so every table row still sums its positions in order; errors keeps the smallest bad row.
        var flatIds = ids.Reshape(ids.Length);                // [N]
        var rowsOfDOutput = dOutput.Reshape(ids.Length, c);   // [N, C]
        int sliceRows = RowsPerBinding(c), chunk = Math.Min(SerialRowsPerDispatch, sliceRows);
        for (int start = 0; start < ids.Length; start += chunk)
        {
            int count = Math.Min(chunk, ids.Length - start);
            for (int first = 0; first < vocab; first += sliceRows)
            {
                int slice = Math.Min(sliceRows, vocab - first);
                Dispatch("embedding_back", LinearGroups(c), 1, 1,
                    new EmbeddingPush((uint)count, (uint)c, (uint)vocab, (uint)first, (uint)slice, (uint)start),
                    reads: [rowsOfDOutput.Slice(start * c, [count, c]), flatIds.Slice(start, [count])],
                    writes: [dTable.Slice(first * c, [slice, c]), errors]);
            }
        }
        CaptureBadIndex(flatIds, errors);
    }

    /// <summary>Tests set a small value to exercise the chunked paths of <see cref="RowsPerBinding"/> on small tensors.</summary>
    internal ulong? BindingBytesForTests { get; set; }

    /// <summary>Most rows of <paramref name="rowElements"/> floats one binding may span (maxStorageBufferRange, less
    /// the alignment a descriptor may start below its tensor); at least 1.</summary>
    private int RowsPerBinding(int rowElements)
    {
        ulong usable = (BindingBytesForTests ?? Info.MaxStorageBufferRange) - Math.Max(Info.MinStorageBufferOffsetAlignment, 4);
        return (int)Math.Clamp(usable / (4 * (ulong)Math.Max(rowElements, 1)), 1, int.MaxValue);
    }
}
