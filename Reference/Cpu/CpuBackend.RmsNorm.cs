using Llm.Tensors;

namespace Llm.Cpu;

/// <summary>RMSNorm's dispatch, as <c>CpuBackend.Ops.cs</c> does LayerNorm's: dtypes here, shapes through
/// <see cref="OpShapes"/>, F64 to the definition, F32 to the fast path or the definition in float.</summary>
public sealed partial class CpuBackend
{
    public void RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd, float eps = 1e-6f)
    {
        RequireFloat("rmsnorm", input, weight, output, rstd);
        if (OpShapes.RmsNorm(input, weight, output, rstd).Rows == 0) return;
        switch (input.DType)
        {
            case DType.F64:
                RmsNormKernel.Forward(Span<double>(input), Span<double>(weight), (double)eps, Span<double>(output), Span<double>(rstd));
                break;
            default:
                if (FastPaths) RmsNormKernel.ForwardFast(Span<float>(input), Span<float>(weight), eps, Span<float>(output), Span<float>(rstd));
                else RmsNormKernel.Forward(Span<float>(input), Span<float>(weight), eps, Span<float>(output), Span<float>(rstd));
                break;
        }
    }

    public void RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor dWeight)
    {
        RequireFloat("rmsnorm backward", input, dOutput, weight, rstd, dInput, dWeight);
        if (OpShapes.RmsNormBackward(dOutput, input, weight, rstd, dInput, dWeight).Rows == 0) return;
        switch (input.DType)
        {
            case DType.F64:
                RmsNormKernel.Backward(Span<double>(dOutput), Span<double>(input), Span<double>(weight), Span<double>(rstd),
                    Span<double>(dInput), Span<double>(dWeight));
                break;
            default:
                if (FastPaths) RmsNormKernel.BackwardFast(Span<float>(dOutput), Span<float>(input), Span<float>(weight), Span<float>(rstd),
                    Span<float>(dInput), Span<float>(dWeight));
                else RmsNormKernel.Backward(Span<float>(dOutput), Span<float>(input), Span<float>(weight), Span<float>(rstd),
                    Span<float>(dInput), Span<float>(dWeight));
                break;
        }
    }
}
