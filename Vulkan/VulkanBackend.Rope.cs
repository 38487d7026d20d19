using Llm.Cpu;
using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Rotary position embedding: Shaders/rope.comp and rope_back.comp, one invocation per element (grid-stride), each
/// rotating its element with its pair partner. inv_freq [d/2] is computed on the host exactly as the CPU's
/// (<see cref="RopeKernel.InverseFrequencies"/>, Hugging Face's float32 steps; GLSL's pow would err by ~1e-6 relative,
/// which pos·inv_freq turns into whole radians of error) and cached per (d, θ). Tokens beyond what one binding may
/// span go in chunks. Shapes: N = B·T tokens, H heads, hs head size, d rotary dims.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct RopePush(uint Tokens, uint Heads, uint HeadSize, uint RotaryDims);

    private readonly Dictionary<(int, float), Tensor> ropeFrequencies = [];

    public void Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims, float theta = 10000f)
    {
        // input [B, T, H, hs], positions [B, T] I32, output [B, T, H, hs]
        const string op = "rope";
        RequireF32(op, input, output);
        RequireI32(op, positions);
        var (tokens, heads, headSize) = OpShapes.Rope(input, positions, output, rotaryDims);
        RopeDispatch("rope", input, positions, output, tokens, heads, headSize, rotaryDims, theta);
    }

    public void RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims, float theta = 10000f)
    {
        // dOutput [B, T, H, hs], positions [B, T] I32, dInput [B, T, H, hs]
        const string op = "rope backward";
        RequireF32(op, dOutput, dInput);
        RequireI32(op, positions);
        var (tokens, heads, headSize) = OpShapes.RopeBackward(dOutput, positions, dInput, rotaryDims);
        RopeDispatch("rope_back", dOutput, positions, dInput, tokens, heads, headSize, rotaryDims, theta);
    }

    private void RopeDispatch(string shader, Tensor read, Tensor positions, Tensor written, int tokens, int heads, int headSize, int rotaryDims, float theta)
    {
        int width = heads * headSize;
        if (tokens * width == 0) return;
        var invFreq = RopeFrequencies(rotaryDims, theta);   // [max(d/2, 1)]
        var flatPositions = positions.Reshape(tokens);       // [N]
        ForRowChunks(tokens, width, RowsPerBinding(width), (start, count, RowsOf) =>   // RowsOf(t): t's [count, H·hs] rows
        {
            Dispatch(shader, LinearGroups((long)count * width), 1, 1, new RopePush((uint)count, (uint)heads, (uint)headSize, (uint)rotaryDims),
                reads: [RowsOf(read), flatPositions.Slice(start, [count]), invFreq], writes: [RowsOf(written)]);
        });
    }

    /// <summary>inv_freq [d/2] for (d, θ), uploaded once; one unused element when d = 0, so the binding is never empty.</summary>
    private Tensor RopeFrequencies(int rotaryDims, float theta)
    {
        if (ropeFrequencies.TryGetValue((rotaryDims, theta), out var cached)) return cached;
        float[] f = rotaryDims == 0 ? [0f] : RopeKernel.InverseFrequencies(rotaryDims, theta);
        var t = Allocate(DType.F32, [f.Length], $"rope inv_freq d={rotaryDims} θ={theta}");
        Upload<float>(f, t);
        ropeFrequencies[(rotaryDims, theta)] = t;
        return t;
    }
}
