using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Embedding lookup (Shaders/embedding.comp: one invocation per output element, grid-stride) and its scatter-add
/// backward: the positions are bucketed by id with a sort of (id, position) pairs (Shaders/embedding_back_sort.comp),
/// then one invocation per run of equal ids and channel adds the run in position order (Shaders/embedding_back.comp):
/// deterministic and bit-identical to the CPU without atomics, and parallel over ids as well as channels. Tensors larger than one binding may span (GPT-2's 50257×768 floats exceed lavapipe's 128 MiB
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
        // Chunks of positions in order, each sorted on its own, so every table row still sums its positions in order.
        var flatIds = ids.Reshape(ids.Length);                // [N]
        var rowsOfDOutput = dOutput.Reshape(ids.Length, c);   // [N, C]
        int sliceRows = RowsPerBinding(c);
        int chunk = Math.Min(sliceRows, (int)Math.Min(1 << 30, PowerOfTwoAtMost((uint)Math.Min(RowsPerBinding(2), int.MaxValue))));
        for (int start = 0; start < ids.Length; start += chunk)
        {
            int count = Math.Min(chunk, ids.Length - start);
            var keys = SortIds(flatIds.Slice(start, [count]), start, vocab, errors);   // [P, 2]
            // passes over the sorted pairs within the loop budget: a run may be as long as the pass
            long stride = (long)MaxGroupsX * LinearWorkgroupSize;
            int pass = Limits.UnitsWithinBudget((long)Math.Ceiling((double)count * c / stride), overhead: 16);
            for (int first = 0; first < vocab; first += sliceRows)
            {
                int slice = Math.Min(sliceRows, vocab - first);
                for (int begin = 0; begin < count; begin += pass)
                {
                    int end = Math.Min(begin + pass, count);
                    Dispatch("embedding_back", LinearGroups((long)(end - begin) * c), 1, 1,
                        new EmbeddingBackPush((uint)c, (uint)first, (uint)slice, (uint)begin, (uint)end),
                        reads: [rowsOfDOutput.Slice(start * c, [count, c]), keys], writes: [dTable.Slice(first * c, [slice, c])]);
                }
            }
        }
        CaptureBadIndex(flatIds, errors);
    }

    private readonly record struct EmbeddingBackPush(uint Channels, uint FirstId, uint SliceRows, uint Begin, uint End);
    private readonly record struct SortPush(uint Count, uint Padded, uint Vocab, uint FirstRow, uint Load, uint KBegin, uint KEnd, uint JBegin);

    private Tensor? sortedIds;   // [≥ 2P] I32 scratch: the (id, position) pairs of the latest EmbeddingBackward chunk

    /// <summary>The (id, position) pairs of <paramref name="ids"/> [N] sorted (Shaders/embedding_back_sort.comp), as
    /// [P, 2] with P = N rounded up to a power of two: merges of up to 2W pairs in shared memory, larger distances in
    /// one dispatch per step. ⌈log₂ P⌉ = L gives 1 + Σ_{k > 2W} (log₂ k − log₂ W) dispatches: 15 for 8192 ids.</summary>
    private Tensor SortIds(Tensor ids, int firstRow, int vocab, Tensor errors)
    {
        int count = ids.Length;
        uint padded = Math.Max(2u, PowerOfTwoAtMost((uint)count) < count ? PowerOfTwoAtMost((uint)count) * 2 : (uint)count);
        uint workgroup = Math.Min(PowerOfTwoAtMost(Math.Min(LinearWorkgroupSize, 256u)), padded / 2), span = 2 * workgroup;
        if (sortedIds is null || sortedIds.Length < 2 * padded)
        {
            if (sortedIds is not null) Release(sortedIds);
            sortedIds = Allocate(DType.I32, [(int)(2 * padded)], "sorted embedding ids");
        }
        var keys = sortedIds.Slice(0, [(int)padded, 2], "sorted ids");
        uint localGroups = Math.Min(padded / span, MaxGroupsX);
        void Local(uint load, uint k0, uint k1, uint j0) =>
            Dispatch("embedding_back_sort", localGroups, 1, 1, new SortPush((uint)count, padded, (uint)vocab, (uint)firstRow, load, k0, k1, j0),
                reads: [ids], writes: [keys, errors], specialization: [workgroup], variant: "LOCAL");
        Local(1, 2, span, 1);
        for (uint k = 2 * span; k <= padded; k *= 2)
        {
            for (uint j = k / 2; j >= span; j /= 2)
                Dispatch("embedding_back_sort", LinearGroups(padded / 2), 1, 1, new SortPush((uint)count, padded, (uint)vocab, (uint)firstRow, 0, k, k, j),
                    reads: [ids], writes: [keys, errors], variant: "GLOBAL");
            Local(0, k, k, span / 2);
        }
        return keys;
    }
}
