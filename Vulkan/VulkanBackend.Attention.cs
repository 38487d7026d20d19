using Llm.Tensors;

namespace Llm.Vulkan;

// Shapes: B batch, T time, C channels, NH heads, hs = C/NH head size; qkv [B, T, 3C] = q | k | v, each [B, T, NH, hs].

/// <summary>
/// Causal multi-head self-attention, as Reference/Cpu/Attention.cs. Forward is Shaders/attention.comp, one workgroup
/// per (t, h, b) query row: scores, a workgroup max and sum for the softmax, then out_t = Σ_s att[t, s]·v_s.
/// Backward is two passes so that every gradient slice has exactly one writer (no atomics, deterministic):
/// Shaders/attention_back.comp per query row t (dPre[t, :] and dq_t), then Shaders/attention_back_kv.comp per
/// key/value column s (dk_s, dv_s), which reads the dPre rows through a scratch tensor shaped like probs.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>Invocations per attention workgroup (a power of two: the shaders reduce in a tree).</summary>
    private const uint AttentionWorkgroupSize = 64;

    private readonly record struct AttentionPush(uint T, uint C, uint HeadSize, float Scale);

    private Tensor? attentionScratch;   // [≥ B·NH·T·T] F32: dPre of the latest AttentionBackward, grown on demand

    public void Attention(Tensor qkv, Tensor output, Tensor probs, int heads)
    {
        const string op = "attention";
        var (batch, time, c) = AttentionShapes(op, qkv, output, probs, heads);
        var push = new AttentionPush((uint)time, (uint)c, (uint)(c / heads), 1f / MathF.Sqrt(c / heads));
        Dispatch("attention", (uint)time, (uint)heads, (uint)batch, push, reads: [qkv], writes: [output, probs],
            specialization: [AttentionWorkgroupSize]);
    }

    public void AttentionBackward(Tensor dOutput, Tensor qkv, Tensor probs, Tensor dQkv, int heads)
    {
        const string op = "attention backward";
        var (batch, time, c) = AttentionShapes(op, qkv, dOutput, probs, heads);
        RequireF32(op, dQkv);
        if (!dQkv.Shape.AsSpan().SequenceEqual(qkv.Shape))
            throw new ArgumentException($"{op}: {dQkv.Describe()} must have the shape of {qkv.Describe()}");
        if (probs.Length == 0) return;

        if (attentionScratch is null || attentionScratch.Length < probs.Length)
        {
            // Released storage stays valid for the work already recorded: its next user waits through the hazard tracking.
            if (attentionScratch is not null) Release(attentionScratch);
            attentionScratch = Allocate(DType.F32, [probs.Length], "attention dPre scratch");
        }
        var dPre = attentionScratch.Slice(0, probs.Shape, "dPre");   // [B, NH, T, T]
        var push = new AttentionPush((uint)time, (uint)c, (uint)(c / heads), 1f / MathF.Sqrt(c / heads));
        Dispatch("attention_back", (uint)time, (uint)heads, (uint)batch, push, reads: [dOutput, qkv, probs], writes: [dQkv, dPre],
            specialization: [AttentionWorkgroupSize]);
        Dispatch("attention_back_kv", (uint)time, (uint)heads, (uint)batch, push, reads: [dOutput, qkv, probs, dPre], writes: [dQkv],
            specialization: [AttentionWorkgroupSize]);
    }

    /// <summary>qkv [B, T, 3C], output [B, T, C], probs [B, NH, T, T], C divisible by NH (the CPU backend's checks and messages).</summary>
    private static (int Batch, int Time, int C) AttentionShapes(string op, Tensor qkv, Tensor output, Tensor probs, int heads)
    {
        RequireF32(op, qkv, output, probs);
        if (qkv.Rank != 3) throw new ArgumentException($"{op}: {qkv.Describe()} must have rank 3");
        int batch = qkv.Dim(0), time = qkv.Dim(1), c3 = qkv.Dim(2);
        if (c3 % 3 != 0)
            throw new ArgumentException($"{op}: last dimension of {qkv.Describe()} must be 3C (q, k, v side by side)");
        int c = c3 / 3;
        if (heads < 1 || c % heads != 0)
            throw new ArgumentException($"{op}: {heads} heads do not divide C = {c} of {qkv.Describe()}");
        RequireShape(output, batch, time, c);
        RequireShape(probs, batch, heads, time, time);
        return (batch, time, c);

        void RequireShape(Tensor t, params int[] shape)
        {
            if (!t.Shape.AsSpan().SequenceEqual(shape))
                throw new ArgumentException($"{op}: {t.Describe()} must have shape {Tensor.ShapeString(shape)}");
        }
    }
}
