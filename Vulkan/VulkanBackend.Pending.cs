using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The IBackend ops that have no Vulkan shader yet. Whoever implements one deletes its lines here and adds it to the
/// op group's file (VulkanBackend.&lt;Group&gt;.cs) with Shaders/&lt;op&gt;.comp (and &lt;op&gt;_back.comp).
/// </summary>
public sealed partial class VulkanBackend
{
    private static NotSupportedException Pending(string op) => new($"{op} is not implemented on Vulkan yet");

    public void Embedding(Tensor ids, Tensor table, Tensor output) => throw Pending("Embedding");
    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable) => throw Pending("EmbeddingBackward");

    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f) =>
        throw Pending("LayerNorm");
    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor dWeight, Tensor dBias) =>
        throw Pending("LayerNormBackward");

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1) =>
        throw Pending("CrossEntropy");
    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1) =>
        throw Pending("CrossEntropyBackward");

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper) => throw Pending("AdamW");
}
