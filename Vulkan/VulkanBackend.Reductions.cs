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
        double sum = 0;  // one total per descriptor-sized chunk (a single one unless the tensor exceeds maxStorageBufferRange)
        Span<float> result = stackalloc float[1];
        foreach (var (start, n) in Chunks(tensor.Length))
        {
            uint groups = Math.Min(LinearGroups(n), MaxPartials);
            var partial = partials.Slice(0, [(int)groups]);
            var total = partials.Slice(MaxPartials, [1]);
            Dispatch("sum_of_squares", groups, 1, 1, new SumPush((uint)n, 1), reads: [Part(tensor, start, n)], writes: [partial], variant: ReductionVariant);
            Dispatch("sum_of_squares", 1, 1, 1, new SumPush(groups, 0), reads: [partial], writes: [total], variant: ReductionVariant);
            Download<float>(total, result);
            sum += result[0];
        }
        return sum;
    }
}
