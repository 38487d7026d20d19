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

    // input [B, T, H, hs], positions [B, T] I32, output [B, T, H, hs]
    public void Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims, float theta = 10000f) =>
        RopeDispatch("rope", "rope", OpShapes.Rope, input, positions, output, rotaryDims, theta);

    // dOutput [B, T, H, hs], positions [B, T] I32, dInput [B, T, H, hs]
    public void RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims, float theta = 10000f) =>
        RopeDispatch("rope backward", "rope_back", OpShapes.RopeBackward, dOutput, positions, dInput, rotaryDims, theta);

    /// <summary>Either direction (rope writes R·input, rope_back adds Rᵀ·dOutput): the dtypes, then
    /// <paramref name="shapes"/> (the op's own OpShapes check, which names it), then the shader over token chunks.</summary>
    private void RopeDispatch(string op, string shader, Func<Tensor, Tensor, Tensor, int, (int, int, int)> shapes,
        Tensor read, Tensor positions, Tensor written, int rotaryDims, float theta)
    {
        RequireF32(op, read, written);
        RequireI32(op, positions);
        var (tokens, heads, headSize) = shapes(read, positions, written, rotaryDims);
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
