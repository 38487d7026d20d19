using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The 1-D ops: one grid-stride shader each (Shaders/fill.comp, add.comp, accumulate.comp, scale.comp, gelu.comp,
/// gelu_back.comp, swish.comp, swish_back.comp, sigmoid.comp, sigmoid_back.comp, relu.comp,
/// relu_back.comp, gelu_exact.comp, gelu_exact_back.comp, multiply.comp, multiply_back.comp, dropout.comp, dropout_back.comp), workgroup <see cref="LinearWorkgroupSize"/>, push constants = binding
/// offsets + element count (+ scale's factor, swish's β, dropout's threshold, scale, seed and stream offset).
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct LengthPush(uint N);
    private readonly record struct FillPush(uint N, uint Bits);
    private readonly record struct ScalePush(uint N, float Factor);
    private readonly record struct SwishPush(uint N, float Beta);
    private readonly record struct DropoutPush(uint N, uint Threshold, float Scale, uint SeedLo, uint SeedHi, uint BaseLo, uint BaseHi);

    /// <summary>destination[i] = value; the shader writes a 32-bit pattern, so F32 and I32 share it.</summary>
    public void Fill(Tensor destination, double value)
    {
        uint bits = destination.DType switch
        {
            DType.F32 => BitConverter.SingleToUInt32Bits((float)value),
            DType.I32 => unchecked((uint)checked((int)value)),
            _ => throw new NotSupportedException($"fill: {destination.Describe()} is not F32 or I32"),
        };
        foreach (var (start, n) in Chunks(destination.Length))
            Dispatch("fill", LinearGroups(n), 1, 1, new FillPush((uint)n, bits), reads: [], writes: [Part(destination, start, n)]);
    }

    public void Add(Tensor a, Tensor b, Tensor output)
    {
        const string op = "add";
        RequireF32(op, a, b, output);
        OpShapes.SameShape(op, a, b, output);
        foreach (var (start, n) in Chunks(output.Length))
            Dispatch("add", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(a, start, n), Part(b, start, n)], writes: [Part(output, start, n)]);
    }

    public void Accumulate(Tensor source, Tensor destination)
    {
        const string op = "accumulate";
        RequireF32(op, source, destination);
        OpShapes.SameLength(op, source, destination); // as the CPU: a gradient may arrive under another view of the same shape
        foreach (var (start, n) in Chunks(destination.Length))
            Dispatch("accumulate", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(source, start, n)], writes: [Part(destination, start, n)]);
    }

    public void Scale(Tensor tensor, float factor)
    {
        RequireF32("scale", tensor);
        foreach (var (start, n) in Chunks(tensor.Length))
            Dispatch("scale", LinearGroups(n), 1, 1, new ScalePush((uint)n, factor), reads: [], writes: [Part(tensor, start, n)]);
    }

    public void Gelu(Tensor input, Tensor output)
    {
        const string op = "gelu";
        RequireF32(op, input, output);
        OpShapes.SameShape(op, input, output);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("gelu", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(input, start, n)], writes: [Part(output, start, n)]);
    }

    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "gelu backward";
        RequireF32(op, dOutput, input, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("gelu_back", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(dOutput, start, n), Part(input, start, n)], writes: [Part(dInput, start, n)]);
    }

    public void Swish(Tensor input, Tensor output, float beta = 1f)
    {
        const string op = "swish";
        RequireF32(op, input, output);
        OpShapes.SameShape(op, input, output);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("swish", LinearGroups(n), 1, 1, new SwishPush((uint)n, beta), reads: [Part(input, start, n)], writes: [Part(output, start, n)]);
    }

    public void SwishBackward(Tensor dOutput, Tensor input, Tensor dInput, float beta = 1f)
    {
        const string op = "swish backward";
        RequireF32(op, dOutput, input, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("swish_back", LinearGroups(n), 1, 1, new SwishPush((uint)n, beta), reads: [Part(dOutput, start, n), Part(input, start, n)], writes: [Part(dInput, start, n)]);
    }

    public void Sigmoid(Tensor input, Tensor output)
    {
        const string op = "sigmoid";
        RequireF32(op, input, output);
        OpShapes.SameShape(op, input, output);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("sigmoid", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(input, start, n)], writes: [Part(output, start, n)]);
    }

    public void SigmoidBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "sigmoid backward";
        RequireF32(op, dOutput, input, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("sigmoid_back", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(dOutput, start, n), Part(input, start, n)], writes: [Part(dInput, start, n)]);
    }

    public void Relu(Tensor input, Tensor output)
    {
        const string op = "relu";
        RequireF32(op, input, output);
        OpShapes.SameShape(op, input, output);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("relu", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(input, start, n)], writes: [Part(output, start, n)]);
    }

    public void ReluBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "relu backward";
        RequireF32(op, dOutput, input, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("relu_back", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(dOutput, start, n), Part(input, start, n)], writes: [Part(dInput, start, n)]);
    }

    public void GeluExact(Tensor input, Tensor output)
    {
        const string op = "gelu exact";
        RequireF32(op, input, output);
        OpShapes.SameShape(op, input, output);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("gelu_exact", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(input, start, n)], writes: [Part(output, start, n)]);
    }

    public void GeluExactBackward(Tensor dOutput, Tensor input, Tensor dInput)
    {
        const string op = "gelu exact backward";
        RequireF32(op, dOutput, input, dInput);
        OpShapes.SameShape(op, input, dOutput, dInput);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("gelu_exact_back", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(dOutput, start, n), Part(input, start, n)], writes: [Part(dInput, start, n)]);
    }

    public void Multiply(Tensor a, Tensor b, Tensor output)
    {
        const string op = "multiply";
        RequireF32(op, a, b, output);
        OpShapes.SameShape(op, a, b, output);
        foreach (var (start, n) in Chunks(output.Length))
            Dispatch("multiply", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(a, start, n), Part(b, start, n)], writes: [Part(output, start, n)]);
    }

    public void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB)
    {
        const string op = "multiply backward";
        RequireF32(op, [dOutput, a, b, .. new[] { dA, dB }.OfType<Tensor>()]);
        OpShapes.MultiplyBackward(dOutput, a, b, dA, dB);
        foreach (var (gradient, other) in new[] { (dA, b), (dB, a) })  // dA += dOutput ⊙ b, dB += dOutput ⊙ a
        {
            if (gradient is null) continue;
            foreach (var (start, n) in Chunks(a.Length))
                Dispatch("multiply_back", LinearGroups(n), 1, 1, new LengthPush((uint)n), reads: [Part(dOutput, start, n), Part(other, start, n)], writes: [Part(gradient, start, n)]);
        }
    }

    public void Dropout(Tensor input, Tensor output, float p, ulong seed, long offset)
    {
        const string op = "dropout";
        RequireF32(op, input, output);
        OpShapes.SameShape(op, input, output);
        uint threshold = Cpu.DropoutKernel.Threshold(op, p, offset);
        foreach (var (start, n) in Chunks(input.Length))
            Dispatch("dropout", LinearGroups(n), 1, 1, DropoutConstants(n, threshold, p, seed, offset + start), reads: [Part(input, start, n)], writes: [Part(output, start, n)]);
    }

    public void DropoutBackward(Tensor dOutput, Tensor dInput, float p, ulong seed, long offset)
    {
        const string op = "dropout backward";
        RequireF32(op, dOutput, dInput);
        OpShapes.SameShape(op, dOutput, dInput);
        uint threshold = Cpu.DropoutKernel.Threshold(op, p, offset);
        foreach (var (start, n) in Chunks(dOutput.Length))
            Dispatch("dropout_back", LinearGroups(n), 1, 1, DropoutConstants(n, threshold, p, seed, offset + start), reads: [Part(dOutput, start, n)], writes: [Part(dInput, start, n)]);
    }

    /// <summary>A chunk's push constants: its first element draws counter <paramref name="stream"/> (the call's offset + the chunk's start).</summary>
    private static DropoutPush DropoutConstants(int n, uint threshold, float p, ulong seed, long stream) =>
        new((uint)n, threshold, (float)Cpu.DropoutKernel.Scale(p), (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)((ulong)stream >> 32));

    /// <summary>[0, n) in runs whose bytes fit one descriptor (<see cref="DispatchLimits.TensorBytes"/>), so a
    /// 1-D op on a tensor larger than the device lets one binding see (lavapipe: 128 MiB) runs as several dispatches.</summary>
    internal IEnumerable<(int Start, int Count)> Chunks(int n)
    {
        long floats = (long)(Limits.TensorBytes / 4), most = floats >= 1024 ? floats / 1024 * 1024 : floats;
        if (n == 0) yield return (0, 0);
        for (long start = 0; start < n; start += most) yield return ((int)start, (int)Math.Min(most, n - start));
    }

    /// <summary>Elements [start, start + count) of a tensor, flattened.</summary>
    internal static Tensor Part(Tensor t, int start, int count) =>
        start == 0 && count == t.Length ? t : t.Reshape(t.Length).Slice(start, [count]);
}
