using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// One AdamW step, elementwise and in place (Shaders/adamw.comp, grid-stride). The hyper-parameters travel as push
/// constants, with the bias corrections 1 − βᵗ computed here in double and rounded to float, as the CPU fast path does.
/// Shapes: P parameters, flat.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct AdamWPush(uint N, float LearningRate, float Beta1, float Beta2, float Epsilon, float WeightDecay,
        float Correction1, float Correction2);

    public void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper)
    {
        // param [P], grad [P], m [P], v [P]
        RequireF32("adamw", param, grad, m, v);
        int length = OpShapes.AdamW(param, grad, m, v, hyper);
        var push = new AdamWPush((uint)length, hyper.LearningRate, hyper.Beta1, hyper.Beta2, hyper.Epsilon, hyper.WeightDecay,
            (float)(1 - Math.Pow(hyper.Beta1, hyper.Step)), (float)(1 - Math.Pow(hyper.Beta2, hyper.Step)));
        // in chunks that one binding may span (GPT-2's token table alone exceeds lavapipe's 128 MiB)
        Tensor Flat(Tensor t, int start, int count) => t.Reshape(t.Length).Slice(start, [count]);   // [count]
        int chunk = RowsPerBinding(1);
        for (int start = 0; start < length; start += chunk)
        {
            int count = Math.Min(chunk, length - start);
            Dispatch("adamw", LinearGroups(count), 1, 1, push with { N = (uint)count },
                reads: [Flat(grad, start, count)], writes: [Flat(param, start, count), Flat(m, start, count), Flat(v, start, count)]);
        }
    }
}
