using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The IBackend ops that have no Vulkan shader yet. Whoever implements one deletes its lines here and adds it to the
/// op group's file (VulkanBackend.&lt;Group&gt;.cs) with Shaders/&lt;op&gt;.comp (and &lt;op&gt;_back.comp).
/// </summary>
public sealed partial class VulkanBackend
{
    private static NotSupportedException Pending(string op) => new($"{op} is not implemented on Vulkan yet");

    public void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA = false, bool transB = false, bool accumulate = false) =>
        throw Pending("MatMul");
    public void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA = false, bool transB = false) =>
        throw Pending("MatMulBackward");

    public void Attention(Tensor qkv, Tensor output, Tensor probs, int heads) => throw Pending("Attention");
    public void AttentionBackward(Tensor dOutput, Tensor qkv, Tensor probs, Tensor dQkv, int heads) => throw Pending("AttentionBackward");
}
