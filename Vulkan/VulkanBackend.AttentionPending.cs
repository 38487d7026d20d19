using Llm.Tensors;

namespace Llm.Vulkan;

// TEMPORARY (branch attention only): the new attention contract before its shaders exist.
public sealed partial class VulkanBackend
{
    public void Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum) =>
        throw new NotSupportedException("vulkan attention: pending");
    public void AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output,
        Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias) =>
        throw new NotSupportedException("vulkan attention: pending");
    public void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width, bool accumulate = false) =>
        throw new NotSupportedException("vulkan copy columns: pending");
}
