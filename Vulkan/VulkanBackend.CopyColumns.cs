using Llm.Tensors;

namespace Llm.Vulkan;

// Shapes: source [N, Cs], destination [N, Cd]; a band of `width` columns moves between them.

/// <summary>CopyColumns as Reference/Cpu/CopyColumns.cs: Shaders/copy_columns.comp, a grid-stride loop over the band's
/// elements, in runs of whole rows whose source and destination rows each fit one binding.</summary>
public sealed partial class VulkanBackend
{
    private readonly record struct CopyColumnsPush(uint Rows, uint SourceColumns, uint SourceColumn, uint DestinationColumns,
        uint DestinationColumn, uint Width, uint Accumulate);

    public void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width, bool accumulate = false)
    {
        const string op = "copy columns";
        RequireF32(op, source, destination);
        var (rows, cs, cd) = OpShapes.CopyColumns(source, sourceColumn, destination, destinationColumn, width);
        if ((long)rows * width == 0) return;
        // rows per dispatch: both bindings fit, and the band's elements stay within one grid-stride pass's reach of uint
        int per = Math.Min(Math.Min(RowsPerBinding(cs), RowsPerBinding(cd)), Math.Max(1, int.MaxValue / width));
        var from = source.Reshape(rows, cs);
        var to = destination.Reshape(rows, cd);
        for (int r0 = 0; r0 < rows; r0 += per)
        {
            int nr = Math.Min(per, rows - r0);
            Dispatch("copy_columns", LinearGroups((long)nr * width), 1, 1,
                new CopyColumnsPush((uint)nr, (uint)cs, (uint)sourceColumn, (uint)cd, (uint)destinationColumn, (uint)width, accumulate ? 1u : 0u),
                reads: [from.Slice(r0 * cs, [nr, cs])], writes: [to.Slice(r0 * cd, [nr, cd])]);
        }
    }
}
