using Llm.Tensors;

namespace Llm.Cpu;

// TEMPORARY: replaced by the kernel helper.
public sealed partial class CpuBackend
{
    public void Embedding(Tensor ids, Tensor table, Tensor output) => throw new NotImplementedException();
    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable) => throw new NotImplementedException();
    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps) => throw new NotImplementedException();
    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor dWeight, Tensor dBias) => throw new NotImplementedException();
    public void Gelu(Tensor input, Tensor output) => throw new NotImplementedException();
    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput) => throw new NotImplementedException();
    public void Add(Tensor a, Tensor b, Tensor output) => throw new NotImplementedException();
    public void Accumulate(Tensor source, Tensor destination) => throw new NotImplementedException();
    public void Scale(Tensor tensor, float factor) => throw new NotImplementedException();
    public double SumOfSquares(Tensor tensor) => throw new NotImplementedException();
    public void Attention(Tensor qkv, Tensor output, Tensor probs, int heads) => throw new NotImplementedException();
    public void AttentionBackward(Tensor dOutput, Tensor qkv, Tensor probs, Tensor dQkv, int heads) => throw new NotImplementedException();
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex) => throw new NotImplementedException();
    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex) => throw new NotImplementedException();
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper) => throw new NotImplementedException();
}
