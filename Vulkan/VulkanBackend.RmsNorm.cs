using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// RMSNorm over the last axis, laid out as LayerNorm (VulkanBackend.LayerNorm.cs): forward (Shaders/rmsnorm.comp) and
/// the input gradient (Shaders/rmsnorm_back.comp) run one workgroup per row with shared-memory tree reductions;
/// dWeight sums over rows in two levels, Shaders/rmsnorm_back_params.comp's row-block partials then the blocks in
/// order (VulkanBackend.ColumnSums.cs), deterministic without atomics. Rows beyond what one binding may span go in chunks.
/// Shapes: N rows, C channels.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct RmsNormPush(uint Rows, uint Channels, float Eps);
    private readonly record struct RmsNormBackwardPush(uint Rows, uint Channels);
    private readonly record struct RmsNormParamsPush(uint Rows, uint Channels, uint RowsPerBlock);

    public void RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd, float eps = 1e-6f)
    {
        // input [N, C], weight [C], output [N, C], rstd [N]
        RequireF32("rmsnorm", input, weight, output, rstd);
        var (rows, c) = OpShapes.RmsNorm(input, weight, output, rstd);
        ForRowChunks(rows, c, RowsPerBinding(c), (start, count, RowsOf) =>   // RowsOf(t): t's [count, C] rows
        {
            Dispatch("rmsnorm", RowGroups(count), 1, 1, new RmsNormPush((uint)count, (uint)c, eps),
                reads: [RowsOf(input), weight], writes: [RowsOf(output), rstd.Reshape(rows).Slice(start, [count])]);
        });
    }

    public void RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor? dWeight)
    {
        // dOutput [N, C], input [N, C], weight [C], rstd [N], dInput [N, C], dWeight [C] or null (frozen: no column pass)
        RequireF32("rmsnorm backward", [input, dOutput, weight, rstd, dInput, .. OpShapes.Present(dWeight)]);
        var (rows, c) = OpShapes.RmsNormBackward(dOutput, input, weight, rstd, dInput, dWeight);
        var flatRstd = rstd.Reshape(rows);   // [N]
        // The row pass and the column pass write disjoint tensors and only read shared ones: no barrier between them.
        ForRowChunks(rows, c, RowsPerBinding(c), (start, count, RowsOf) =>   // RowsOf(t): t's [count, C] rows
        {
            Dispatch("rmsnorm_back", RowGroups(count), 1, 1, new RmsNormBackwardPush((uint)count, (uint)c),
                reads: [RowsOf(dOutput), RowsOf(input), weight, flatRstd.Slice(start, [count])], writes: [RowsOf(dInput)]);
        });
        // dWeight: row-block partials, then the blocks in order (VulkanBackend.ColumnSums.cs)
        if (dWeight is null) return;
        var plan = PlanRowBlocks(rows, c);
        Tensor dWeightParts = PartialsOf(0, 1, plan.Blocks, c);   // [G, C]
        ForRowChunks(rows, c, plan.RowsPerDispatch, (start, count, RowsOf) =>
        {
            int blocks = (count + plan.RowsPerBlock - 1) / plan.RowsPerBlock;
            Dispatch("rmsnorm_back_params", LinearGroups(c), (uint)blocks, 1, new RmsNormParamsPush((uint)count, (uint)c, (uint)plan.RowsPerBlock),
                reads: [RowsOf(dOutput), RowsOf(input), flatRstd.Slice(start, [count])],
                writes: [dWeightParts.Slice(start / plan.RowsPerBlock * c, [blocks, c])]);
        });
        SumPartialsInto(dWeightParts, plan.Blocks, c, dWeight);
    }
}
