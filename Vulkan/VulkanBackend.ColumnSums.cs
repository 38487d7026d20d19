using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Sums over rows (matmul dBias, LayerNorm dWeight and dBias, RMSNorm dWeight) in two levels, deterministic without atomics: row
/// blocks of about √N rows each give partials [G, C] in parallel (one invocation per block and column, Shaders/
/// column_sum.comp or an op's own first pass), then one ordered pass adds the G partials of each column onto the
/// gradient. Both levels loop about √N times instead of N, within the loop budget and the binding size.
/// Shapes: N rows, C columns, G row blocks.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct ColumnSumPush(uint Rows, uint Columns, uint RowsPerBlock, uint Accumulate);

    /// <summary>How N rows of C columns are cut: rows per block, and rows per first-level dispatch (a whole number of
    /// blocks whose rows fit one binding and whose blocks fit the grid).</summary>
    private readonly record struct RowBlocks(int RowsPerBlock, int RowsPerDispatch, int Blocks);

    private Tensor? columnPartials;   // [≥ parts·G·C] F32 scratch of the first level, grown on demand

    private RowBlocks PlanRowBlocks(int rows, int columns)
    {
        int binding = RowsPerBinding(columns);
        int perBlock = Math.Min(Math.Min((int)Math.Ceiling(Math.Sqrt(Math.Max(rows, 1))), RowLoopBudget(columns)), binding);
        long perDispatch = Math.Min(binding / perBlock, Math.Min(Info.MaxComputeWorkGroupCount[1], 65535u)) * (long)perBlock;
        return new RowBlocks(perBlock, (int)perDispatch, (rows + perBlock - 1) / perBlock);
    }

    /// <summary>Most rows one invocation of a column kernel may walk: the budget over the columns it strides over.</summary>
    private int RowLoopBudget(int columns)
    {
        long stride = (long)LinearGroups(columns) * LinearWorkgroupSize;
        return Limits.UnitsWithinBudget((columns + stride - 1) / Math.Max(stride, 1), overhead: 16);
    }

    /// <summary>A [count, C] F32 slice of the first-level scratch: part <paramref name="part"/> of <paramref name="parts"/>.</summary>
    private Tensor PartialsOf(int part, int parts, int blocks, int columns)
    {
        int length = blocks * columns;
        if (columnPartials is null || columnPartials.Length < parts * length)
        {
            // Released storage stays valid for the work already recorded: its next user waits through the hazard tracking.
            if (columnPartials is not null) Release(columnPartials);
            columnPartials = Allocate(DType.F32, [parts * length], "column-sum partials");
        }
        return columnPartials.Slice(part * length, [blocks, columns]);
    }

    /// <summary>output[c] += Σ_n input[n, c] for a row-major [N, C] view: row-block partials, then the ordered pass.</summary>
    private void ColumnSum(Tensor input, int rows, int columns, Tensor output)
    {
        if (rows == 0 || columns == 0) return;
        var plan = PlanRowBlocks(rows, columns);
        var partials = PartialsOf(0, 1, plan.Blocks, columns);
        var flat = input.Reshape(rows, columns);
        for (int start = 0; start < rows; start += plan.RowsPerDispatch)
        {
            int count = Math.Min(plan.RowsPerDispatch, rows - start), blocks = (count + plan.RowsPerBlock - 1) / plan.RowsPerBlock;
            Dispatch("column_sum", LinearGroups(columns), (uint)blocks, 1, new ColumnSumPush((uint)count, (uint)columns, (uint)plan.RowsPerBlock, 0),
                reads: [flat.Slice(start * columns, [count, columns])],
                writes: [partials.Slice(start / plan.RowsPerBlock * columns, [blocks, columns])]);
        }
        SumPartialsInto(partials, plan.Blocks, columns, output);
    }

    /// <summary>output[c] += Σ_g partials[g, c], g in order: one invocation per column, in as many dispatches (in
    /// order) as the loop budget and the binding size need.</summary>
    private void SumPartialsInto(Tensor partials, int blocks, int columns, Tensor output)
    {
        int most = Math.Min(RowLoopBudget(columns), RowsPerBinding(columns));
        for (int g0 = 0; g0 < blocks; g0 += most)
        {
            int count = Math.Min(most, blocks - g0);
            Dispatch("column_sum", LinearGroups(columns), 1, 1, new ColumnSumPush((uint)count, (uint)columns, (uint)count, 1),
                reads: [partials.Slice(g0 * columns, [count, columns])], writes: [output]);
        }
    }
}
