using Llm.Tensors;

namespace Llm.Vulkan;

// Shapes: B batch, T time, C channels, NH heads, hs = C/NH head size; qkv [B, T, 3C] = q | k | v, each [B, T, NH, hs].

/// <summary>
/// Causal multi-head self-attention, as Reference/Cpu/Attention.cs. Forward is Shaders/attention.comp, one workgroup
/// per (t, h, b) query row: scores, a workgroup max and sum for the softmax, then out_t = Σ_s att[t, s]·v_s.
/// Backward is two passes so that every gradient slice has exactly one writer (no atomics, deterministic):
/// Shaders/attention_back.comp per query row t (dPre[t, :] and dq_t), then Shaders/attention_back_kv.comp per
/// key/value column s (dk_s, dv_s), which reads the dPre rows through a scratch tensor shaped like (a slice of) probs.
/// A call whose probs exceed one descriptor's range (maxStorageBufferRange: 128 MiB on lavapipe, less than GPT-2's
/// 4·12·1024² floats) runs as several dispatches over slices of whole batches, or of heads of one batch
/// (<see cref="AttentionSlices"/>); every workgroup computes the same either way, so the results are identical.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>Invocations per attention workgroup (a power of two: the shaders reduce in a tree).</summary>
    private const uint AttentionWorkgroupSize = 64;

    private readonly record struct AttentionPush(uint T, uint C, uint HeadSize, uint FirstHead, float Scale);

    private Tensor? attentionScratch;   // [≥ B'·NH'·T·T] F32: dPre of the latest AttentionBackward slice, grown on demand

    public void Attention(Tensor qkv, Tensor output, Tensor probs, int heads)
    {
        RequireF32("attention", qkv, output, probs);
        var (batch, time, c, headSize) = OpShapes.Attention(qkv, output, probs, heads);
        foreach (var (b0, nb, h0, nh) in AttentionSlices(batch, time, heads, c))
        {
            var push = new AttentionPush((uint)time, (uint)c, (uint)headSize, (uint)h0, 1f / MathF.Sqrt(headSize));
            Dispatch("attention", (uint)time, (uint)nh, (uint)nb, push,
                reads: [qkv.Slice(b0 * time * 3 * c, [nb, time, 3 * c])],                 // [B', T, 3C]
                writes: [output.Slice(b0 * time * c, [nb, time, c]),                       // [B', T, C]
                         probs.Slice((b0 * heads + h0) * time * time, [nb, nh, time, time])], // [B', NH', T, T]
                specialization: [AttentionWorkgroupSize]);
        }
    }

    public void AttentionBackward(Tensor dOutput, Tensor qkv, Tensor probs, Tensor dQkv, int heads)
    {
        RequireF32("attention backward", qkv, dOutput, probs, dQkv);
        var (batch, time, c, headSize) = OpShapes.AttentionBackward(dOutput, qkv, probs, dQkv, heads);

        foreach (var (b0, nb, h0, nh) in AttentionSlices(batch, time, heads, c))
        {
            int slice = nb * nh * time * time;
            if (attentionScratch is null || attentionScratch.Length < slice)
            {
                // Released storage stays valid for the work already recorded: its next user waits through the hazard tracking.
                if (attentionScratch is not null) Release(attentionScratch);
                attentionScratch = Allocate(DType.F32, [slice], "attention dPre scratch");
            }
            var dPre = attentionScratch.Slice(0, [nb, nh, time, time], "dPre");                    // [B', NH', T, T]
            var probsSlice = probs.Slice((b0 * heads + h0) * time * time, [nb, nh, time, time]);  // [B', NH', T, T]
            var dOutputSlice = dOutput.Slice(b0 * time * c, [nb, time, c]);                      // [B', T, C]
            var qkvSlice = qkv.Slice(b0 * time * 3 * c, [nb, time, 3 * c]);                      // [B', T, 3C]
            var dQkvSlice = dQkv.Slice(b0 * time * 3 * c, [nb, time, 3 * c]);                    // [B', T, 3C]
            var push = new AttentionPush((uint)time, (uint)c, (uint)headSize, (uint)h0, 1f / MathF.Sqrt(headSize));
            Dispatch("attention_back", (uint)time, (uint)nh, (uint)nb, push,
                reads: [dOutputSlice, qkvSlice, probsSlice], writes: [dQkvSlice, dPre], specialization: [AttentionWorkgroupSize]);
            Dispatch("attention_back_kv", (uint)time, (uint)nh, (uint)nb, push,
                reads: [dOutputSlice, qkvSlice, probsSlice, dPre], writes: [dQkvSlice], specialization: [AttentionWorkgroupSize]);
        }
    }

    /// <summary>The pieces (first batch, batches, first head, heads) of one attention call whose probs and qkv each
    /// fit one binding (<see cref="DispatchLimits.TensorBytes"/>): as many whole batches as fit, else one batch's heads in groups.
    /// Each piece's probs [B', NH', T, T] is contiguous, and its qkv, output rows are whole batches.</summary>
    private IEnumerable<(int FirstBatch, int Batches, int FirstHead, int Heads)> AttentionSlices(int batch, int time, int heads, int c)
    {
        if (batch == 0 || time == 0) yield break;
        long limit = (long)Limits.TensorBytes;
        long headBytes = 4L * time * time;                                  // probs of one (b, h)
        int headsPer = (int)Math.Clamp(limit / headBytes, 1, heads);        // a single (b, h) too large fails in Dispatch, naming it
        long batchBytes = Math.Max(headBytes * heads, 12L * time * c);     // probs or qkv of one batch, the larger
        int batchesPer = headsPer < heads ? 1 : (int)Math.Clamp(limit / batchBytes, 1, batch);
        for (int b0 = 0; b0 < batch; b0 += batchesPer)
            for (int h0 = 0; h0 < heads; h0 += headsPer)
                yield return (b0, Math.Min(batchesPer, batch - b0), h0, Math.Min(headsPer, heads - h0));
    }
}
