using Llm.Tensors;

namespace Llm.Conformance.Harness;

/// <summary>
/// A backend that hands out tensors without memory behind them, for tests of bookkeeping at sizes no test machine
/// holds (a 7B model's parameter arenas): shapes, offsets and names only. Every op refuses to run.
/// </summary>
public sealed class ShapeOnlyBackend(int maxTensorElements = int.MaxValue) : IBackend
{
    public string Name => "shape-only";
    public Tensor Allocate(DType dtype, int[] shape, string? name = null) => new(this, dtype, shape, new object(), 0, name);
    public void Release(Tensor tensor) { }
    public int MaxTensorElements(DType dtype) => maxTensorElements;
    public void Dispose() { }

    private static Exception NoData() => new NotSupportedException("the shape-only test backend holds no data");
    public void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged => throw NoData();
    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged => throw NoData();
    public void Copy(Tensor source, Tensor destination) => throw NoData();
    public void Fill(Tensor destination, double value) => throw NoData();
    public void Synchronize() { }
    public void Embedding(Tensor ids, Tensor table, Tensor output) => throw NoData();
    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable) => throw NoData();
    public void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA = false, bool transB = false, bool accumulate = false) => throw NoData();
    public void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA = false, bool transB = false) => throw NoData();
    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f) => throw NoData();
    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor? dWeight, Tensor? dBias) => throw NoData();
    public void RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd, float eps = 1e-6f) => throw NoData();
    public void RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor? dWeight) => throw NoData();
    public void Gelu(Tensor input, Tensor output) => throw NoData();
    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput) => throw NoData();
    public void Swish(Tensor input, Tensor output, float beta = 1f) => throw NoData();
    public void SwishBackward(Tensor dOutput, Tensor input, Tensor dInput, float beta = 1f) => throw NoData();
    public void Relu(Tensor input, Tensor output) => throw NoData();
    public void Sigmoid(Tensor input, Tensor output) => throw NoData();
    public void SigmoidBackward(Tensor dOutput, Tensor input, Tensor dInput) => throw NoData();
    public void ReluBackward(Tensor dOutput, Tensor input, Tensor dInput) => throw NoData();
    public void GeluExact(Tensor input, Tensor output) => throw NoData();
    public void GeluExactBackward(Tensor dOutput, Tensor input, Tensor dInput) => throw NoData();
    public void Multiply(Tensor a, Tensor b, Tensor output) => throw NoData();
    public void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB) => throw NoData();
    public void Dropout(Tensor input, Tensor output, float p, ulong seed, long offset) => throw NoData();
    public void DropoutBackward(Tensor dOutput, Tensor dInput, float p, ulong seed, long offset) => throw NoData();
    public void Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims, float theta = 10000f) => throw NoData();
    public void RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims, float theta = 10000f) => throw NoData();
    public void Add(Tensor a, Tensor b, Tensor output) => throw NoData();
    public void Accumulate(Tensor source, Tensor destination) => throw NoData();
    public void Scale(Tensor tensor, float factor) => throw NoData();
    public double SumOfSquares(Tensor tensor) => throw NoData();
    public void Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum) => throw NoData();
    public void AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output,
        Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias) => throw NoData();
    public void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width, bool accumulate = false) => throw NoData();
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1) => throw NoData();
    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1) => throw NoData();
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper) => throw NoData();
    public void RelativePositionBias(Tensor table, Tensor buckets, Tensor output) => throw NoData();
    public void RelativePositionBiasBackward(Tensor dOutput, Tensor buckets, Tensor dTable) => throw NoData();
    public void Softmax(Tensor logits, Tensor probs, Tensor logSumExp) => throw NoData();
    public void SoftmaxBackward(Tensor? dProbs, Tensor? dLogSumExp, Tensor probs, Tensor dLogits) => throw NoData();
    public void MoeRoute(Tensor probs, int capacity, bool normalize, Tensor experts, Tensor slots, Tensor gates, Tensor load) => throw NoData();
    public void MoeRouteBackward(Tensor dGates, Tensor probs, Tensor experts, bool normalize, Tensor dProbs) => throw NoData();
    public void MoeDispatch(Tensor input, Tensor slots, Tensor output) => throw NoData();
    public void MoeDispatchBackward(Tensor dOutput, Tensor slots, Tensor dInput) => throw NoData();
    public void MoeCombine(Tensor expertOutput, Tensor slots, Tensor gates, Tensor output) => throw NoData();
    public void MoeCombineBackward(Tensor dOutput, Tensor expertOutput, Tensor slots, Tensor gates, Tensor? dExpertOutput, Tensor? dGates) => throw NoData();
}
