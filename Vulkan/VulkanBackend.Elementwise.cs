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

    public void Add(Tensor a, Tensor b, Tensor output) => Map("add", "add", LengthOnly, shapeOf: a, [a, b], output);

    public void Accumulate(Tensor source, Tensor destination)
    {
        const string op = "accumulate";
        RequireF32(op, source, destination);
        OpShapes.SameLength(op, source, destination); // as the CPU: a gradient may arrive under another view of the same shape
        MapChunks("accumulate", LengthOnly, [source], destination);
    }

    public void Scale(Tensor tensor, float factor) =>
        Map("scale", "scale", (_, n) => new ScalePush((uint)n, factor), shapeOf: tensor, [], tensor);

    public void Gelu(Tensor input, Tensor output) => Map("gelu", "gelu", LengthOnly, shapeOf: input, [input], output);

    public void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput) =>
        Map("gelu backward", "gelu_back", LengthOnly, shapeOf: input, [dOutput, input], dInput);

    public void Swish(Tensor input, Tensor output, float beta = 1f) =>
        Map("swish", "swish", (_, n) => new SwishPush((uint)n, beta), shapeOf: input, [input], output);

    public void SwishBackward(Tensor dOutput, Tensor input, Tensor dInput, float beta = 1f) =>
        Map("swish backward", "swish_back", (_, n) => new SwishPush((uint)n, beta), shapeOf: input, [dOutput, input], dInput);

    public void Sigmoid(Tensor input, Tensor output) => Map("sigmoid", "sigmoid", LengthOnly, shapeOf: input, [input], output);

    public void SigmoidBackward(Tensor dOutput, Tensor input, Tensor dInput) =>
        Map("sigmoid backward", "sigmoid_back", LengthOnly, shapeOf: input, [dOutput, input], dInput);

    public void Relu(Tensor input, Tensor output) => Map("relu", "relu", LengthOnly, shapeOf: input, [input], output);

    public void ReluBackward(Tensor dOutput, Tensor input, Tensor dInput) =>
        Map("relu backward", "relu_back", LengthOnly, shapeOf: input, [dOutput, input], dInput);

    public void GeluExact(Tensor input, Tensor output) => Map("gelu exact", "gelu_exact", LengthOnly, shapeOf: input, [input], output);

    public void GeluExactBackward(Tensor dOutput, Tensor input, Tensor dInput) =>
        Map("gelu exact backward", "gelu_exact_back", LengthOnly, shapeOf: input, [dOutput, input], dInput);

    public void Multiply(Tensor a, Tensor b, Tensor output) => Map("multiply", "multiply", LengthOnly, shapeOf: a, [a, b], output);

    public void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB)
    {
        const string op = "multiply backward";
        RequireF32(op, [dOutput, a, b, .. new[] { dA, dB }.OfType<Tensor>()]);
        OpShapes.MultiplyBackward(dOutput, a, b, dA, dB);
        foreach (var (gradient, other) in new[] { (dA, b), (dB, a) })  // dA += dOutput ⊙ b, dB += dOutput ⊙ a
            if (gradient is not null) MapChunks("multiply_back", LengthOnly, [dOutput, other], gradient);
    }

    public void Dropout(Tensor input, Tensor output, float p, ulong seed, long offset) =>
        Map("dropout", "dropout", DropoutConstants("dropout", p, seed, offset), shapeOf: input, [input], output);

    public void DropoutBackward(Tensor dOutput, Tensor dInput, float p, ulong seed, long offset) =>
        Map("dropout backward", "dropout_back", DropoutConstants("dropout backward", p, seed, offset), shapeOf: dOutput, [dOutput], dInput);

    /// <summary>A chunk's push constants: its first element draws counter offset + the chunk's start. The threshold
    /// (which also rejects a bad p or offset) is taken inside, per chunk, so that <see cref="Map"/>'s dtype and shape
    /// checks still come first.</summary>
    private static Func<int, int, DropoutPush> DropoutConstants(string op, float p, ulong seed, long offset) => (start, n) =>
    {
        uint threshold = Cpu.DropoutKernel.Threshold(op, p, offset);
        long stream = offset + start;
        return new((uint)n, threshold, (float)Cpu.DropoutKernel.Scale(p), (uint)seed, (uint)(seed >> 32), (uint)stream, (uint)((ulong)stream >> 32));
    };

    private static readonly Func<int, int, LengthPush> LengthOnly = (_, n) => new LengthPush((uint)n);

    /// <summary>The body of an elementwise op: every tensor F32 and shaped like <paramref name="shapeOf"/> (named in
    /// the errors as the reference), then the shader over the chunks.</summary>
    private void Map<TPush>(string op, string shader, Func<int, int, TPush> push, Tensor shapeOf, Tensor[] reads, Tensor write)
        where TPush : unmanaged
    {
        Tensor[] all = [.. reads, write];
        RequireF32(op, all);
        OpShapes.SameShape(op, shapeOf, all);
        MapChunks(shader, push, reads, write);
    }

    /// <summary>One dispatch per <see cref="Chunks"/> run of <paramref name="write"/>, each tensor bound at that run;
    /// <paramref name="push"/> gets the run's (start, count).</summary>
    private void MapChunks<TPush>(string shader, Func<int, int, TPush> push, Tensor[] reads, Tensor write) where TPush : unmanaged
    {
        foreach (var (start, n) in Chunks(write.Length))
            Dispatch(shader, LinearGroups(n), 1, 1, push(start, n), reads: [.. reads.Select(t => Part(t, start, n))], writes: [Part(write, start, n)]);
    }

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
