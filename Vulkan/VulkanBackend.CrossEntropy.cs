using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// Softmax fused with cross-entropy. Forward (Shaders/cross_entropy.comp): one workgroup per row, three sweeps over
/// the vocabulary (max; exp and sum; normalize) with shared-memory reductions (Shaders/row_reduce.glsl), the loss as
/// log Σ − (x_t − max) like the CPU. Backward (Shaders/cross_entropy_back.comp): one invocation per logit,
/// grid-stride. Logits larger than one binding may span (maxStorageBufferRange: 128 MiB on lavapipe, 1024 rows of
/// GPT-2's vocabulary exceed it) go in chunks of rows, one dispatch each.
/// Targets are range-checked on the device; see VulkanBackend.IndexErrors.cs.
/// Shapes: N rows, V vocabulary.
/// </summary>
public sealed partial class VulkanBackend
{
    /// <param name="FirstRow">the chunk's first row in the whole tensors (for error reports).</param>
    private readonly record struct CrossEntropyPush(uint Rows, uint Vocab, int IgnoreIndex, uint FirstRow);

    public void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1)
    {
        // logits [N, V], targets [N] I32, probs [N, V], losses [N]
        const string op = "cross-entropy";
        RequireF32(op, logits, probs, losses);
        RequireI32(op, targets);
        var (rows, vocab) = OpShapes.CrossEntropy(logits, targets, probs, losses);
        var errors = IndexErrorSlot("targets", TargetMessage($"{op}: {targets.Describe()} for {logits.Describe()}", vocab, ignoreIndex)); // [2] I32
        var (flatLogits, flatTargets, flatProbs, flatLosses) = (logits.Reshape(rows, vocab), targets.Reshape(rows), probs.Reshape(rows, vocab), losses.Reshape(rows));
        int chunk = RowsPerBinding(vocab);
        for (int start = 0; start < rows; start += chunk)
        {
            int count = Math.Min(chunk, rows - start);
            Dispatch("cross_entropy", RowGroups(count), 1, 1, new CrossEntropyPush((uint)count, (uint)vocab, ignoreIndex, (uint)start),
                reads: [flatLogits.Slice(start * vocab, [count, vocab]), flatTargets.Slice(start, [count])],
                writes: [flatProbs.Slice(start * vocab, [count, vocab]), flatLosses.Slice(start, [count]), errors]);
        }
        CaptureBadIndex(flatTargets, errors);
    }

    public void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1)
    {
        // dLosses [N], probs [N, V], targets [N] I32, dLogits [N, V]
        const string op = "cross-entropy backward";
        RequireF32(op, probs, dLosses, dLogits);
        RequireI32(op, targets);
        var (rows, vocab) = OpShapes.CrossEntropyBackward(dLosses, probs, targets, dLogits);
        var errors = IndexErrorSlot("targets", TargetMessage($"{op}: {targets.Describe()} for {probs.Describe()}", vocab, ignoreIndex)); // [2] I32
        var (flatDLosses, flatProbs, flatTargets, flatDLogits) = (dLosses.Reshape(rows), probs.Reshape(rows, vocab), targets.Reshape(rows), dLogits.Reshape(rows, vocab));
        int chunk = RowsPerBinding(vocab);
        for (int start = 0; start < rows; start += chunk)
        {
            int count = Math.Min(chunk, rows - start);
            Dispatch("cross_entropy_back", LinearGroups((long)count * vocab), 1, 1, new CrossEntropyPush((uint)count, (uint)vocab, ignoreIndex, (uint)start),
                reads: [flatDLosses.Slice(start, [count]), flatProbs.Slice(start * vocab, [count, vocab]), flatTargets.Slice(start, [count])],
                writes: [flatDLogits.Slice(start * vocab, [count, vocab]), errors]);
        }
        CaptureBadIndex(flatTargets, errors);
    }

    /// <summary>The CPU's message for a bad target (CrossEntropyKernel.CheckTargets).</summary>
    private static Func<int, int, string> TargetMessage(string what, int vocab, int ignoreIndex) =>
        (n, target) => $"{what}: row {n} has target {target}, outside [0, {vocab}) and not the ignore index {ignoreIndex}";
}
