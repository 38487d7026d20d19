using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// LayerNorm over the last axis. Forward (Shaders/layernorm.comp) and the input gradient (Shaders/layernorm_back.comp)
/// run one workgroup of <see cref="LinearWorkgroupSize"/> per row (grid-stride over rows beyond
/// <see cref="MaxGroupsX"/>), with shared-memory tree reductions (Shaders/row_reduce.glsl). dWeight and dBias sum
/// over rows, which no row's workgroup owns: Shaders/layernorm_back_params.comp sums row blocks into partials and
/// the blocks are added in order (VulkanBackend.ColumnSums.cs), so the result is deterministic without atomics.
/// Rows beyond what one binding may span go in chunks.
/// Shapes: N rows, C channels.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct LayerNormPush(uint Rows, uint Channels, float Eps);
    private readonly record struct LayerNormBackwardPush(uint Rows, uint Channels);
    private readonly record struct LayerNormParamsPush(uint Rows, uint Channels, uint RowsPerBlock);

    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f)
    {
        // input [N, C], weight [C], bias [C], output [N, C], mean [N], rstd [N]
        RequireF32("layernorm", input, weight, bias, output, mean, rstd);
        var (rows, c) = OpShapes.LayerNorm(input, weight, bias, output, mean, rstd);
        ForRowChunks(rows, c, RowsPerBinding(c), (start, count, RowsOf) =>   // RowsOf(t): t's [count, C] rows
        {
            Dispatch("layernorm", RowGroups(count), 1, 1, new LayerNormPush((uint)count, (uint)c, eps),
                reads: [RowsOf(input), weight, bias], writes: [RowsOf(output), mean.Reshape(rows).Slice(start, [count]), rstd.Reshape(rows).Slice(start, [count])]);
        });
    }

    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor? dWeight, Tensor? dBias)
    {
        // dOutput [N, C], input [N, C], weight [C], mean [N], rstd [N], dInput [N, C], dWeight [C] or null, dBias [C] or null
        RequireF32("layernorm backward", [input, dOutput, weight, mean, rstd, dInput, .. OpShapes.Present(dWeight, dBias)]);
        var (rows, c) = OpShapes.LayerNormBackward(dOutput, input, weight, mean, rstd, dInput, dWeight, dBias);
        var flatMean = mean.Reshape(rows);   // [N]
        var flatRstd = rstd.Reshape(rows);   // [N]
        // The row pass and the column pass write disjoint tensors and only read shared ones: no barrier between them.
        ForRowChunks(rows, c, RowsPerBinding(c), (start, count, RowsOf) =>   // RowsOf(t): t's [count, C] rows
        {
            Dispatch("layernorm_back", RowGroups(count), 1, 1, new LayerNormBackwardPush((uint)count, (uint)c),
                reads: [RowsOf(dOutput), RowsOf(input), weight, flatMean.Slice(start, [count]), flatRstd.Slice(start, [count])], writes: [RowsOf(dInput)]);
        });
        // dWeight and dBias: row-block partials, then the blocks in order (VulkanBackend.ColumnSums.cs). One shader
        // writes both partials, so it runs unless both are frozen; only the wanted ones are summed.
        if (dWeight is null && dBias is null) return;
        var plan = PlanRowBlocks(rows, c);
        Tensor dWeightParts = PartialsOf(0, 2, plan.Blocks, c), dBiasParts = PartialsOf(1, 2, plan.Blocks, c);   // [G, C] each
        ForRowChunks(rows, c, plan.RowsPerDispatch, (start, count, RowsOf) =>
        {
            int blocks = (count + plan.RowsPerBlock - 1) / plan.RowsPerBlock;
            Tensor BlocksOf(Tensor t) => t.Slice(start / plan.RowsPerBlock * c, [blocks, c]);   // [blocks, C]
            Dispatch("layernorm_back_params", LinearGroups(c), (uint)blocks, 1, new LayerNormParamsPush((uint)count, (uint)c, (uint)plan.RowsPerBlock),
                reads: [RowsOf(dOutput), RowsOf(input), flatMean.Slice(start, [count]), flatRstd.Slice(start, [count])],
                writes: [BlocksOf(dWeightParts), BlocksOf(dBiasParts)]);
        });
        if (dWeight is not null) SumPartialsInto(dWeightParts, plan.Blocks, c, dWeight);
        if (dBias is not null) SumPartialsInto(dBiasParts, plan.Blocks, c, dBias);
    }

    /// <summary>body(start, count, rowsOf) for consecutive chunks of at most <paramref name="chunk"/> of the
    /// <paramref name="rows"/> rows of [rows, C] tensors; rowsOf(t) is t's [count, C] rows of that chunk.</summary>
    private static void ForRowChunks(int rows, int c, int chunk, Action<int, int, Func<Tensor, Tensor>> body)
    {
        for (int start = 0; start < rows; start += chunk)
        {
            int first = start, count = Math.Min(chunk, rows - start);
            body(first, count, t => t.Reshape(rows, c).Slice(first * c, [count, c]));
        }
    }

    /// <summary>Workgroups of a one-workgroup-per-row kernel: one per row, capped (the shader strides over the rest).</summary>
    private uint RowGroups(int rows) => (uint)Math.Min(rows, MaxGroupsX);
}
