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
/// Rows longer than the loop budget allows (lavapipe: 65535 iterations per invocation) run their phases as several
/// dispatches over key ranges (<see cref="AttentionKeyRange"/>) instead of being cut short.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>Invocations per attention workgroup (a power of two: the shaders reduce in a tree).</summary>
    private const uint AttentionWorkgroupSize = 64;

    private readonly record struct AttentionPush(uint T, uint C, uint HeadSize, uint FirstHead, float Scale, uint KeyBegin, uint KeyEnd, uint Phases);

    private const uint PhaseScores = 1, PhaseSoftmax = 2, PhaseOutput = 4, AllPhases = 7;   // Shaders/attention.glsl

    /// <summary>
    /// How the row kernels (attention.comp, attention_back.comp) cover the keys within the loop budget: null when one
    /// dispatch of all phases fits, else the key ranges (multiples of W) that the score and output phases each run
    /// over, with the softmax once between. Lavapipe counts a loop's exit test as an iteration, so per invocation n
    /// blocks of W keys cost n·(hs + 2) + 1 iterations to score and ⌈hs/W⌉·(n·(W + 2) + 2) + 1 to apply; the softmax
    /// about 3⌈T/W⌉ + 32.
    /// </summary>
    private int? AttentionKeyRange(int time, int headSize)
    {
        const int w = (int)AttentionWorkgroupSize, margin = 64;
        long stripes = (headSize + w - 1) / w, blocks = (time + w - 1) / w;
        long Scores(long n) => n * (headSize + 2) + 1;
        long Apply(long n) => stripes * (n * (w + 2) + 2) + 1;
        long softmax = 3 * blocks + 32, budget = Limits.PlannedIterations - margin;
        if (Scores(blocks) + softmax + Apply(blocks) <= budget) return null;
        long most = Math.Min((budget - 1) / (headSize + 2), ((budget - 1) / Math.Max(stripes, 1) - 2) / (w + 2));   // blocks per range
        if (most < 1 || softmax > budget)
            throw new NotSupportedException($"attention: T = {time}, head size {headSize} needs more than the {Limits.LoopIterationBudget} loop iterations one invocation may run on '{Info.Name}'");
        return (int)Math.Min(most * w, time);
    }

    /// <summary>Query rows per attention_back_kv dispatch: its ⌈2hs/W⌉ dims per invocation each loop over the rows
    /// (and test the loop's exit once more).</summary>
    private int AttentionQueryRange(int time, int headSize)
    {
        long dims = (2 * headSize + AttentionWorkgroupSize - 1) / AttentionWorkgroupSize;
        return Math.Min(time, Limits.UnitsWithinBudget(dims, overhead: 2 * dims + 64));
    }

    /// <summary>Runs a row kernel over all its phases: once, or per key range (scores), the softmax, per key range (output).</summary>
    private void AttentionRows(string shader, int time, int headSize, AttentionPush push, uint groupsY, uint groupsZ,
        ReadOnlySpan<Tensor> reads, ReadOnlySpan<Tensor> writes)
    {
        ReadOnlySpan<uint> specialization = [AttentionWorkgroupSize];
        if (AttentionKeyRange(time, headSize) is not int range)
        {
            Dispatch(shader, (uint)time, groupsY, groupsZ, push with { KeyBegin = 0, KeyEnd = (uint)time, Phases = AllPhases }, reads, writes, specialization);
            return;
        }
        for (int k0 = 0; k0 < time; k0 += range)
            Dispatch(shader, (uint)time, groupsY, groupsZ, push with { KeyBegin = (uint)k0, KeyEnd = (uint)Math.Min(k0 + range, time), Phases = PhaseScores }, reads, writes, specialization);
        Dispatch(shader, (uint)time, groupsY, groupsZ, push with { KeyBegin = 0, KeyEnd = (uint)time, Phases = PhaseSoftmax }, reads, writes, specialization);
        for (int k0 = 0; k0 < time; k0 += range)
            Dispatch(shader, (uint)time, groupsY, groupsZ, push with { KeyBegin = (uint)k0, KeyEnd = (uint)Math.Min(k0 + range, time), Phases = PhaseOutput }, reads, writes, specialization);
    }

    private Tensor? attentionScratch;   // [≥ B'·NH'·T·T] F32: dPre of the latest AttentionBackward slice, grown on demand

    public void Attention(Tensor qkv, Tensor output, Tensor probs, int heads)
    {
        RequireF32("attention", qkv, output, probs);
        var (batch, time, c, headSize) = OpShapes.Attention(qkv, output, probs, heads);
        foreach (var (b0, nb, h0, nh) in AttentionSlices(batch, time, heads, c))
        {
            var push = new AttentionPush((uint)time, (uint)c, (uint)headSize, (uint)h0, 1f / MathF.Sqrt(headSize), 0, 0, 0);
            AttentionRows("attention", time, headSize, push, (uint)nh, (uint)nb,
                reads: [qkv.Slice(b0 * time * 3 * c, [nb, time, 3 * c])],                 // [B', T, 3C]
                writes: [output.Slice(b0 * time * c, [nb, time, c]),                       // [B', T, C]
                         probs.Slice((b0 * heads + h0) * time * time, [nb, nh, time, time])]); // [B', NH', T, T]
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
            var push = new AttentionPush((uint)time, (uint)c, (uint)headSize, (uint)h0, 1f / MathF.Sqrt(headSize), 0, 0, 0);
            AttentionRows("attention_back", time, headSize, push, (uint)nh, (uint)nb,
                reads: [dOutputSlice, qkvSlice, probsSlice], writes: [dQkvSlice, dPre]);
            int rowsPer = AttentionQueryRange(time, headSize);   // t ranges in order, each adding onto dk, dv
            for (int t0 = 0; t0 < time; t0 += rowsPer)
                Dispatch("attention_back_kv", (uint)time, (uint)nh, (uint)nb, push with { KeyBegin = (uint)t0, KeyEnd = (uint)Math.Min(t0 + rowsPer, time) },
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
