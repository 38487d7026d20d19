using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Σ x² in two passes of Shaders/sum_of_squares.comp (variant SUBGROUPS or NO_SUBGROUPS, see
/// <see cref="ReductionVariant"/>): values [L] → partials [G] (one per workgroup, fp32) → total [1] (one workgroup),
/// which is downloaded and widened to double.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>Most workgroups of the first pass (each grid-strides over L / G elements).</summary>
    private const int MaxPartials = 512;

    private readonly record struct SumPush(uint N, uint Square);

    private Tensor? partials;   // [MaxPartials + 1] F32: partial sums, then the total at [MaxPartials]

    public double SumOfSquares(Tensor tensor)
    {
        RequireF32("sum of squares", tensor);
        if (tensor.Length == 0) return 0;
        partials ??= Allocate(DType.F32, [MaxPartials + 1], "sum-of-squares partials");
        uint groups = Math.Min(LinearGroups(tensor.Length), MaxPartials);
        var partial = partials.Slice(0, [(int)groups]);
        var total = partials.Slice(MaxPartials, [1]);
        Dispatch("sum_of_squares", groups, 1, 1, new SumPush((uint)tensor.Length, 1), reads: [tensor], writes: [partial], variant: ReductionVariant);
        Dispatch("sum_of_squares", 1, 1, 1, new SumPush(groups, 0), reads: [partial], writes: [total], variant: ReductionVariant);
        Span<float> result = stackalloc float[1];
        Download<float>(total, result);
        return result[0];
    }
}
