using Llm.Tensors;

namespace Llm.Cpu;

// TEMPORARY: replaced by the matmul helper.
public sealed partial class CpuBackend
{
    public void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA, bool transB, bool accumulate) => throw new NotImplementedException();
    public void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA, bool transB) => throw new NotImplementedException();
}
