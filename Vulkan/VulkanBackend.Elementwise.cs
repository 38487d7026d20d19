using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The 1-D ops: one grid-stride shader each (Shaders/fill.comp, add.comp, accumulate.comp, scale.comp, gelu.comp,
/// gelu_back.comp), workgroup <see cref="LinearWorkgroupSize"/>, push constants = binding offsets + element count.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct LengthPush(uint N);
    private readonly record struct FillPush(uint N, uint Bits);
    private readonly record struct ScalePush(uint N, float Factor);

    /// <summary>destination[i] = value; the shader writes a 32-bit pattern, so F32 and I32 share it.</summary>
    public void Fill(Tensor destination, double value)
    {
        uint bits = destination.DType switch
        {
            DType.F32 => BitConverter.SingleToUInt32Bits((float)value),
            DType.I32 => unchecked((uint)checked((int)value)),
            _ => throw new NotSupportedException($"fill: {destination.Describe()} is not F32 or I32"),
        };
        int n = destination.Length;
        Dispatch("fill", LinearGroups(n), 1, 1, new FillPush((uint)n, bits), reads: [], writes: [destination]);
    }

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        const string op = "add";
        RequireF32(op, a, b, output);
        RequireSameLength(op, a, output);
        RequireSameLength(op, b, output);
        int n = output.Length;
        Dispatch("add", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [a, b], writes: [output]);
    }

    public void Accumulate(Tensor source, Tensor destination)
    {
        const string op = "accumulate";
        RequireF32(op, source, destination);
        RequireSameLength(op, source, destination);
        int n = destination.Length;
        Dispatch("accumulate", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [source], writes: [destination]);
    }

    public void Scale(Tensor tensor, float factor)
    {
        RequireF32("scale", tensor);
        int n = tensor.Length;
        Dispatch("scale", LinearGroups(n), 1, 1, new ScalePush((uint)n, factor), reads: [], writes: [tensor]);
    }

    public void Gelu(Tensor input, Tensor output)
    {
        const string op = "gelu";
        RequireF32(op, input, output);
        RequireSameLength(op, input, output);
        int n = input.Length;
        Dispatch("gelu", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [input], writes: [output]);
    }

    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "gelu backward";
        RequireF32(op, dOutput, input, dInput);
        RequireSameLength(op, input, dOutput);
        RequireSameLength(op, input, dInput);
        int n = input.Length;
        Dispatch("gelu_back", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [dOutput, input], writes: [dInput]);
    }
}
