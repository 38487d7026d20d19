using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// T5's relative position bias: the gather output[h, i, j] = table[buckets[i, j], h] (Shaders/relative_position_bias.comp,
/// one invocation per output element) and its bucket-wise sum (Shaders/relative_position_bias_back.comp, one workgroup
/// per (bucket, head) with a fixed shared-memory tree: deterministic without atomics). The backward walks P = Tq·Tk
/// positions per workgroup, so P goes in passes of at most budget × workgroup size positions, each adding onto dTable
/// in order (lavapipe stops a loop after 65,535 iterations); an output or dOutput larger than one binding goes in
/// dispatches of whole head planes (a single plane, or the buckets, beyond one binding are refused by Dispatch). Bucket ids are range-checked on the device
/// (VulkanBackend.IndexErrors.cs) and reported as the CPU reports them.
/// Shapes: NB buckets, NH heads, Tq queries, Tk keys, P = Tq·Tk.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct RelativePositionBiasPush(uint Positions, uint Heads, uint Buckets, uint TableHeads, uint FirstHead);
    private readonly record struct RelativePositionBiasBackPush(uint Positions, uint Heads, uint Buckets, uint FirstHead, uint Begin, uint End);

    public void RelativePositionBias(Tensor table, Tensor buckets, Tensor output)
    {
        // table [NB, NH], buckets [Tq, Tk] I32, output [NH, Tq, Tk]
        const string op = "relative position bias";
        RequireI32(op, buckets);
        RequireF32(op, table, output);
        var (nb, heads, _, tk) = OpShapes.RelativePositionBias(table, buckets, output);
        if (buckets.Length == 0) return;
        if (heads == 0) { CheckBucketsOnly(op, buckets, table, tk, nb); return; }
        var flat = buckets.Reshape(buckets.Length);   // [P]
        var errors = BucketErrorSlot($"{op}: {buckets.Describe()} into {table.Describe()}", tk, nb);   // [2] I32
        int positions = flat.Length, perDispatch = RowsPerBinding(positions);   // whole head planes per binding
        var planes = output.Reshape(heads, positions);                           // [NH, P]
        for (int first = 0; first < heads; first += perDispatch)
        {
            int count = Math.Min(perDispatch, heads - first);
            Dispatch("relative_position_bias", LinearGroups((long)count * positions), 1, 1,
                new RelativePositionBiasPush((uint)positions, (uint)count, (uint)nb, (uint)heads, (uint)first),
                reads: [table, flat], writes: [planes.Slice(first * positions, [count, positions]), errors]);
        }
        CaptureBadIndex(flat, errors);
    }

    public void RelativePositionBiasBackward(Tensor dOutput, Tensor buckets, Tensor dTable)
    {
        // dOutput [NH, Tq, Tk], buckets [Tq, Tk] I32, dTable [NB, NH]
        const string op = "relative position bias backward";
        RequireI32(op, buckets);
        RequireF32(op, dTable, dOutput);
        var (nb, heads, _, tk) = OpShapes.RelativePositionBiasBackward(dOutput, buckets, dTable);
        if (buckets.Length == 0) return;
        if (heads == 0) { CheckBucketsOnly(op, buckets, dTable, tk, nb); return; }
        int perDispatch = (int)Math.Min(RowsPerBinding(buckets.Length), Info.MaxComputeWorkGroupCount[1]);   // whole head planes per binding
        if (nb > Info.MaxComputeWorkGroupCount[0])
            throw new ArgumentException($"{op}: {dTable.Describe()} has more buckets than the device's workgroup grid has columns ({Info.MaxComputeWorkGroupCount[0]})");
        var flat = buckets.Reshape(buckets.Length);   // [P]
        int positions = flat.Length;
        var errors = BucketErrorSlot($"{op}: {buckets.Describe()} into {dTable.Describe()}", tk, nb);   // [2] I32
        // each lane walks ⌈pass / W⌉ positions, a few iterations each, plus the tree's log₂ W
        long pass = (long)Limits.UnitsWithinBudget(1, overhead: 32) * LinearWorkgroupSize;
        var planes = dOutput.Reshape(heads, positions);   // [NH, P]
        for (int first = 0; first < heads; first += perDispatch)
        {
            int count = Math.Min(perDispatch, heads - first);
            for (long begin = 0; begin < positions; begin += pass)   // passes in order: each adds onto the last
            {
                long end = Math.Min(begin + pass, positions);
                Dispatch("relative_position_bias_back", (uint)nb, (uint)count, 1,
                    new RelativePositionBiasBackPush((uint)positions, (uint)heads, (uint)nb, (uint)first, (uint)begin, (uint)end),
                    reads: [planes.Slice(first * positions, [count, positions]), flat], writes: [dTable, errors]);
            }
        }
        CaptureBadIndex(flat, errors);
    }

    /// <summary>A device-side check slot whose message names the bucket id and its position [i, j] (the CPU's words).</summary>
    private Tensor BucketErrorSlot(string what, int keys, int count) =>
        IndexErrorSlot("buckets", (p, id) => $"{what}: bucket id {id} at position [{p / keys}, {p % keys}] is outside [0, {count})");

    /// <summary>No heads: nothing to compute, but bad bucket ids are still refused, as the CPU refuses them; with no
    /// invocation to check them on the device, the host reads them (a rare, degenerate call).</summary>
    private void CheckBucketsOnly(string op, Tensor buckets, Tensor table, int keys, int count)
    {
        var host = new int[buckets.Length];
        Download<int>(buckets, host);
        Llm.Cpu.RelativePositionBiasKernel.CheckBuckets(host, keys, count, $"{op}: {buckets.Describe()} into {table.Describe()}");
    }
}
