using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// T5's relative position bias: the gather output[h, i, j] = table[buckets[i, j], h] (Shaders/relative_position_bias.comp,
/// one invocation per output element) and its bucket-wise sum (Shaders/relative_position_bias_back.comp, one workgroup
/// per (bucket, head) with a fixed shared-memory tree: deterministic without atomics). The backward walks P = Tq·Tk
/// positions per workgroup, so P goes in passes of at most budget × workgroup size positions, each adding onto dTable
/// in order (lavapipe stops a loop after 65,535 iterations). Bucket ids are range-checked on the device
/// (VulkanBackend.IndexErrors.cs) and reported as the CPU reports them.
/// Shapes: NB buckets, NH heads, Tq queries, Tk keys, P = Tq·Tk.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct RelativePositionBiasPush(uint Positions, uint Heads, uint Buckets);
    private readonly record struct RelativePositionBiasBackPush(uint Positions, uint Heads, uint Buckets, uint Begin, uint End);

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
        Dispatch("relative_position_bias", LinearGroups((long)heads * flat.Length), 1, 1,
            new RelativePositionBiasPush((uint)flat.Length, (uint)heads, (uint)nb),
            reads: [table, flat], writes: [output.Reshape(output.Length), errors]);
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
        if (nb > Info.MaxComputeWorkGroupCount[0] || heads > Info.MaxComputeWorkGroupCount[1])
            throw new ArgumentException($"{op}: {dTable.Describe()} has more buckets or heads than the device's workgroup grid [{Info.MaxComputeWorkGroupCount[0]}, {Info.MaxComputeWorkGroupCount[1]}]");
        var flat = buckets.Reshape(buckets.Length);   // [P]
        int positions = flat.Length;
        var errors = BucketErrorSlot($"{op}: {buckets.Describe()} into {dTable.Describe()}", tk, nb);   // [2] I32
        // each lane walks ⌈pass / W⌉ positions, a few iterations each, plus the tree's log₂ W
        long pass = (long)Limits.UnitsWithinBudget(1, overhead: 32) * LinearWorkgroupSize;
        for (long begin = 0; begin < positions; begin += pass)
        {
            long end = Math.Min(begin + pass, positions);
            Dispatch("relative_position_bias_back", (uint)nb, (uint)heads, 1,
                new RelativePositionBiasBackPush((uint)positions, (uint)heads, (uint)nb, (uint)begin, (uint)end),
                reads: [dOutput.Reshape(dOutput.Length), flat], writes: [dTable, errors]);
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
