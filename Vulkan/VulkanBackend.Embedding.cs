using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Embedding lookup (Shaders/embedding.comp: one invocation per output element, grid-stride) and its scatter-add
/// backward (Shaders/embedding_back.comp: one invocation per channel walking the positions in order, deterministic
/// without atomics; in chunks of <see cref="SerialRowsPerDispatch"/> positions). Ids are range-checked on the device; see VulkanBackend.IndexErrors.cs.
/// Shapes: N rows (ids), V vocabulary, C channels.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct EmbeddingPush(uint Rows, uint Channels, uint Vocab);
    /// <param name="FirstRow">the position of the chunk's first row in the whole ids tensor (for error reports).</param>
    private readonly record struct EmbeddingBackwardPush(uint Rows, uint Channels, uint Vocab, uint FirstRow);

    /// <summary>Most rows one invocation of a serial-over-rows kernel walks in one dispatch (embedding_back,
    /// layernorm_back_params); more rows take several dispatches in order. Lavapipe (llvmpipe) ends an invocation's
    /// loops after 65535 iterations in total (LP_MAX_TGSI_LOOP_ITERATIONS), silently; a GPU does not care.</summary>
    private const int SerialRowsPerDispatch = 16384;

    public void Embedding(Tensor ids, Tensor table, Tensor output)
    {
        // ids [N] I32, table [V, C], output [N, C] (or [B, T, C])
        const string op = "embedding";
        RequireRank(op, table, 2);
        int vocab = table.Dim(0), c = table.Dim(1);
        RequireI32(op, ids);
        RequireF32(op, table, output);
        RequireRows(op, output, ids.Length, c);
        string what = $"{op}: {ids.Describe()} into {table.Describe()}";
        var errors = IndexErrorSlot("ids", (n, id) => $"{what}: id {id} at position {n} is outside [0, {vocab})"); // [2] I32
        Dispatch("embedding", LinearGroups((long)ids.Length * c), 1, 1, new EmbeddingPush((uint)ids.Length, (uint)c, (uint)vocab),
            reads: [ids, table], writes: [output, errors]);
        CaptureBadIndex(ids, errors);
    }

    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable)
    {
        // dOutput [N, C], ids [N] I32, dTable [V, C]
        const string op = "embedding backward";
        RequireRank(op, dTable, 2);
        int vocab = dTable.Dim(0), c = dTable.Dim(1);
        RequireI32(op, ids);
        RequireF32(op, dTable, dOutput);
        RequireRows(op, dOutput, ids.Length, c);
        string what = $"{op}: {ids.Describe()} into {dTable.Describe()}";
        var errors = IndexErrorSlot("ids", (n, id) => $"{what}: id {id} at position {n} is outside [0, {vocab})"); // [2] I32
        // Positions in chunks, one dispatch each, in order (each waits for the previous through the dTable hazard),
        // so that no invocation loops more than SerialRowsPerDispatch times; errors keeps the smallest bad row of all.
        var flatIds = ids.Reshape(ids.Length);                // [N]
        var rowsOfDOutput = dOutput.Reshape(ids.Length, c);   // [N, C]
        for (int start = 0; start < ids.Length; start += SerialRowsPerDispatch)
        {
            int count = Math.Min(SerialRowsPerDispatch, ids.Length - start);
            Dispatch("embedding_back", LinearGroups(c), 1, 1, new EmbeddingBackwardPush((uint)count, (uint)c, (uint)vocab, (uint)start),
                reads: [rowsOfDOutput.Slice(start * c, [count, c]), flatIds.Slice(start, [count])], writes: [dTable, errors]);
        }
        CaptureBadIndex(flatIds, errors);
    }
}
