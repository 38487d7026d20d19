using Llm.Cpu;
using Llm.Tensors;

namespace Llm.Conformance.Harness;

/// <summary>The kinds of bug the harness must catch, injected into GeLU.</summary>
public enum Fault
{
    None, WritesPastEnd, LeavesLastUnwritten, ReadsBeforeStart, ModifiesInput, SlightlyWrong, IgnoresOffset,
    /// <summary>One element in the middle off by 1e-3·(1 + |y|): invisible to NMSE in a large output (≈ 1e-6/n).</summary>
    OneElementWrong,
    /// <summary>GeLU's cubic coefficient 0.0447 instead of 0.044715: a wrong forward constant, relative error ≤ ~1e-4.</summary>
    WrongGeluConstant,
}

/// <summary>
/// A CPU backend whose Gelu has one deliberate <see cref="Fault"/>: the harness's own test subject, proving that a
/// conformance failure is reported for each kind of bug rather than assumed. Every other member delegates, except
/// that <see cref="NonFiniteSumOfSquares"/> can make chosen SumOfSquares calls return NaN: the global gradient norm
/// of an overflowed backward, for the trainer's guard.
/// </summary>
public sealed class FaultyBackend(Fault fault) : IBackend
{
    private readonly CpuBackend _cpu = new(fastPaths: true);
    private int _sums;

    /// <summary>Called with the 1-based index of each SumOfSquares call; true makes that call return NaN.</summary>
    public Func<int, bool>? NonFiniteSumOfSquares { get; init; }

    public string Name => $"faulty({fault})";

    public void Gelu(Tensor input, Tensor output)
    {
        var x = CpuBackend.Span<float>(input);
        var whole = (float[])output.Storage;
        var temp = _cpu.Allocate(DType.F32, output.Shape);
        _cpu.Gelu(input, temp);
        var y = CpuBackend.Span<float>(temp);
        switch (fault)
        {
            case Fault.WritesPastEnd: y.CopyTo(CpuBackend.Span<float>(output)); whole[output.Offset + output.Length] = 0; break;
            case Fault.LeavesLastUnwritten: y[..^1].CopyTo(CpuBackend.Span<float>(output)); break;
            case Fault.ReadsBeforeStart:
                y.CopyTo(CpuBackend.Span<float>(output));
                whole[output.Offset] = ((float[])input.Storage)[input.Offset - 1]; // an off-by-one read of the first row
                break;
            case Fault.ModifiesInput: y.CopyTo(CpuBackend.Span<float>(output)); x[0] += 1; break;
            case Fault.SlightlyWrong:
                y.CopyTo(CpuBackend.Span<float>(output));
                foreach (ref float v in CpuBackend.Span<float>(output)) v *= 1.0001f; // relative 1e-4: NMSE 1e-8
                break;
            case Fault.IgnoresOffset: y.CopyTo(whole.AsSpan(0, output.Length)); break; // writes at the storage start
            case Fault.OneElementWrong:
                y.CopyTo(CpuBackend.Span<float>(output));
                CpuBackend.Span<float>(output)[output.Length / 2] += 1e-3f * (1 + Math.Abs(y[output.Length / 2]));
                break;
            case Fault.WrongGeluConstant:
                for (int i = 0; i < x.Length; i++)
                {
                    double v = x[i];
                    CpuBackend.Span<float>(output)[i] = (float)(0.5 * v * (1 + Math.Tanh(GeluKernel.Scaling * (v + 0.0447 * v * v * v))));
                }
                break;
            default: y.CopyTo(CpuBackend.Span<float>(output)); break;
        }
    }

    public Tensor Allocate(DType dtype, int[] shape, string? name = null) => _cpu.Allocate(dtype, shape, name);
    public void Release(Tensor tensor) => _cpu.Release(tensor);
    public int MaxTensorElements(DType dtype) => _cpu.MaxTensorElements(dtype);
    public void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged => _cpu.Upload(source, destination);
    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged => _cpu.Download(source, destination);
    public void Copy(Tensor source, Tensor destination) => _cpu.Copy(source, destination);
    public void Fill(Tensor destination, double value) => _cpu.Fill(destination, value);
    public void Synchronize() => _cpu.Synchronize();
    public void Dispose() => _cpu.Dispose();
    public void Embedding(Tensor ids, Tensor table, Tensor output) => _cpu.Embedding(ids, table, output);
    /// <summary>Calls of the backward kernels that frozen weights must not reach: the tape's work, counted.</summary>
    public int EmbeddingBackwards { get; private set; }
    public int LayerNormParameterGradients { get; private set; }

    public void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable)
    {
        EmbeddingBackwards++;
        _cpu.EmbeddingBackward(dOutput, ids, dTable);
    }
    public void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA = false, bool transB = false, bool accumulate = false) => _cpu.MatMul(a, b, bias, output, transA, transB, accumulate);
    public void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA = false, bool transB = false) => _cpu.MatMulBackward(dOutput, a, b, dA, dB, dBias, transA, transB);
    public void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f) => _cpu.LayerNorm(input, weight, bias, output, mean, rstd, eps);
    public void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor? dWeight, Tensor? dBias)
    {
        LayerNormParameterGradients += (dWeight is null ? 0 : 1) + (dBias is null ? 0 : 1);
        _cpu.LayerNormBackward(dOutput, input, weight, mean, rstd, dInput, dWeight, dBias);
    }
    public void RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd, float eps = 1e-6f) => _cpu.RmsNorm(input, weight, output, rstd, eps);
    public void RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor? dWeight) => _cpu.RmsNormBackward(dOutput, input, weight, rstd, dInput, dWeight);
    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput) => _cpu.GeluBackward(dOutput, input, dInput);
    public void Swish(Tensor input, Tensor output, float beta = 1f) => _cpu.Swish(input, output, beta);
    public void SwishBackward(Tensor dOutput, Tensor input, Tensor dInput, float beta = 1f) => _cpu.SwishBackward(dOutput, input, dInput, beta);
    public void Relu(Tensor input, Tensor output) => _cpu.Relu(input, output);
    public void Sigmoid(Tensor input, Tensor output) => _cpu.Sigmoid(input, output);
    public void SigmoidBackward(Tensor dOutput, Tensor input, Tensor dInput) => _cpu.SigmoidBackward(dOutput, input, dInput);
    public void ReluBackward(Tensor dOutput, Tensor input, Tensor dInput) => _cpu.ReluBackward(dOutput, input, dInput);
    public void GeluExact(Tensor input, Tensor output) => _cpu.GeluExact(input, output);
    public void GeluExactBackward(Tensor dOutput, Tensor input, Tensor dInput) => _cpu.GeluExactBackward(dOutput, input, dInput);
    public void Multiply(Tensor a, Tensor b, Tensor output) => _cpu.Multiply(a, b, output);
    public void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB) => _cpu.MultiplyBackward(dOutput, a, b, dA, dB);
    public void Dropout(Tensor input, Tensor output, float p, ulong seed, long offset) => _cpu.Dropout(input, output, p, seed, offset);
    public void DropoutBackward(Tensor dOutput, Tensor dInput, float p, ulong seed, long offset) => _cpu.DropoutBackward(dOutput, dInput, p, seed, offset);
    public void Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims, float theta = 10000f) => _cpu.Rope(input, positions, output, rotaryDims, theta);
    public void RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims, float theta = 10000f) => _cpu.RopeBackward(dOutput, positions, dInput, rotaryDims, theta);
    public void Add(Tensor a, Tensor b, Tensor output) => _cpu.Add(a, b, output);
    public void Accumulate(Tensor source, Tensor destination) => _cpu.Accumulate(source, destination);
    public void Scale(Tensor tensor, float factor) => _cpu.Scale(tensor, factor);
    public double SumOfSquares(Tensor tensor) =>
        NonFiniteSumOfSquares?.Invoke(++_sums) == true ? double.NaN : _cpu.SumOfSquares(tensor);
    public void Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum) =>
        _cpu.Attention(query, key, value, scoreBias, mask, output, rowMax, rowSum);
    public void AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output,
        Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias) =>
        _cpu.AttentionBackward(dOutput, query, key, value, scoreBias, mask, output, rowMax, rowSum, dQuery, dKey, dValue, dScoreBias);
    public void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width, bool accumulate = false) =>
        _cpu.CopyColumns(source, sourceColumn, destination, destinationColumn, width, accumulate);
    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1) => _cpu.CrossEntropy(logits, targets, probs, losses, ignoreIndex);
    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1) => _cpu.CrossEntropyBackward(dLosses, probs, targets, dLogits, ignoreIndex);
    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper) => _cpu.AdamW(param, grad, m, v, hyper);
    public void RelativePositionBias(Tensor table, Tensor buckets, Tensor output) => _cpu.RelativePositionBias(table, buckets, output);
    public void RelativePositionBiasBackward(Tensor dOutput, Tensor buckets, Tensor dTable) => _cpu.RelativePositionBiasBackward(dOutput, buckets, dTable);
    public void Softmax(Tensor logits, Tensor probs, Tensor logSumExp) => _cpu.Softmax(logits, probs, logSumExp);
    public void SoftmaxBackward(Tensor? dProbs, Tensor? dLogSumExp, Tensor probs, Tensor dLogits) => _cpu.SoftmaxBackward(dProbs, dLogSumExp, probs, dLogits);
    public void MoeRoute(Tensor probs, int capacity, bool normalize, Tensor experts, Tensor slots, Tensor gates, Tensor load) => _cpu.MoeRoute(probs, capacity, normalize, experts, slots, gates, load);
    public void MoeRouteBackward(Tensor dGates, Tensor probs, Tensor experts, bool normalize, Tensor dProbs) => _cpu.MoeRouteBackward(dGates, probs, experts, normalize, dProbs);
    public void MoeDispatch(Tensor input, Tensor slots, Tensor output) => _cpu.MoeDispatch(input, slots, output);
    public void MoeDispatchBackward(Tensor dOutput, Tensor slots, Tensor dInput) => _cpu.MoeDispatchBackward(dOutput, slots, dInput);
    public void MoeCombine(Tensor expertOutput, Tensor slots, Tensor gates, Tensor output) => _cpu.MoeCombine(expertOutput, slots, gates, output);
    public void MoeCombineBackward(Tensor dOutput, Tensor expertOutput, Tensor slots, Tensor gates, Tensor? dExpertOutput, Tensor? dGates) => _cpu.MoeCombineBackward(dOutput, expertOutput, slots, gates, dExpertOutput, dGates);
}
