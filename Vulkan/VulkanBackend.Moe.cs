using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// The mixture-of-experts ops. Softmax (Shaders/softmax.comp, softmax_back.comp): one invocation per row, for a router's
/// narrow rows (3E loop iterations per row must fit the loop budget). Routing: Shaders/moe_route_topk.comp picks each
/// token's k experts (one invocation per token), then Shaders/moe_route_slots.comp, one invocation per expert, hands out
/// positions in token order over tiles of tokens, choice 0 first, carrying the per-expert counts in a device buffer from
/// tile to tile — the CPU's positions, deterministic, with no atomics and no per-token work on the host; tiles keep each
/// invocation under lavapipe's 65535 loop iterations. Dispatch, combine and their backward: one invocation per element
/// (or per choice for dGates); a kept slot has one owner, so scatters need no atomics. Slots outside [−1, R) are flagged
/// through VulkanBackend.IndexErrors.cs (duplicated kept slots, which MoeRoute never writes, are checked on the CPU only).
/// Shapes: N tokens, E experts, k choices, R = E·capacity expert rows, C channels.
/// </summary>
public sealed partial class VulkanBackend
{
    private readonly record struct SoftmaxPush(uint Rows, uint Width);
    private readonly record struct SoftmaxBackPush(uint Rows, uint Width, uint HasDProbs, uint HasDLogSumExp);
    private readonly record struct TopKPush(uint Tokens, uint Experts, uint K, uint Normalize);
    private readonly record struct SlotsPush(uint Tokens, uint Experts, uint K, uint Capacity, uint Choice, uint First, uint Count, uint WriteLoad);
    private readonly record struct MoePush(uint Tokens, uint K, uint Rows, uint Channels);

    /// <summary>moe_route_topk.comp's MAX_K: the most choices per token it remembers.</summary>
    private const int MaxRouteK = 8;

    private Tensor? moeCounts;   // [E] I32: tokens offered to each expert so far, between moe_route_slots tiles

    public void Softmax(Tensor logits, Tensor probs, Tensor logSumExp)
    {
        // logits [N, E], probs [N, E], logSumExp [N]
        const string op = "softmax";
        RequireF32(op, logits, probs, logSumExp);
        var (rows, width) = OpShapes.Softmax(logits, probs, logSumExp);
        if (rows == 0) return;
        RequireRowLoop(op, logits, 3L * width);
        Dispatch("softmax", LinearGroups(rows), 1, 1, new SoftmaxPush((uint)rows, (uint)width),
            reads: [logits], writes: [probs, logSumExp]);
    }

    public void SoftmaxBackward(Tensor? dProbs, Tensor? dLogSumExp, Tensor probs, Tensor dLogits)
    {
        // dProbs [N, E] or null, dLogSumExp [N] or null, probs [N, E], dLogits [N, E]
        const string op = "softmax backward";
        RequireF32(op, [probs, dLogits, .. new[] { dProbs, dLogSumExp }.OfType<Tensor>()]);
        var (rows, width) = OpShapes.SoftmaxBackward(dProbs, dLogSumExp, probs, dLogits);
        if (rows == 0 || dProbs is null && dLogSumExp is null) return;
        RequireRowLoop(op, probs, 2L * width);
        // a null gradient is flagged off in the push constants and bound as probs, a stand-in the shader never reads
        Dispatch("softmax_back", LinearGroups(rows), 1, 1, new SoftmaxBackPush((uint)rows, (uint)width, dProbs is null ? 0u : 1u, dLogSumExp is null ? 0u : 1u),
            reads: [dProbs ?? probs, dLogSumExp ?? probs, probs], writes: [dLogits]);
    }

    public void MoeRoute(Tensor probs, int capacity, bool normalize, Tensor experts, Tensor slots, Tensor gates, Tensor load)
    {
        // probs [N, E], experts [N, k] I32, slots [N, k] I32, gates [N, k], load [E]
        const string op = "moe route";
        RequireF32(op, probs, gates, load);
        RequireI32(op, experts);
        RequireI32(op, slots);
        var (n, e, k) = OpShapes.MoeRoute(probs, capacity, experts, slots, gates, load);
        if (k > MaxRouteK) throw new NotSupportedException($"{op}: {experts.Describe()} chooses k = {k} experts; the Vulkan router keeps at most {MaxRouteK}");
        if (n == 0) { Fill(load, 0); return; }
        RequireRowLoop(op, probs, (long)k * e * (k + 1));
        Dispatch("moe_route_topk", LinearGroups(n), 1, 1, new TopKPush((uint)n, (uint)e, (uint)k, normalize ? 1u : 0u),
            reads: [probs], writes: [experts, gates]);

        if (moeCounts is null || moeCounts.Length < e)
        {
            if (moeCounts is not null) Release(moeCounts);
            moeCounts = Allocate(DType.I32, [e], "moe expert counts");
        }
        var counts = moeCounts.Slice(0, [e]);   // [E]
        Fill(counts, 0);
        int tile = Limits.UnitsWithinBudget(1, 16);   // tokens one expert invocation scans per dispatch
        for (int j = 0; j < k; j++)
            for (int first = 0; first < n; first += tile)
            {
                int count = Math.Min(tile, n - first);
                bool writeLoad = j == 0 && first + count == n;
                Dispatch("moe_route_slots", LinearGroups(e), 1, 1,
                    new SlotsPush((uint)n, (uint)e, (uint)k, (uint)capacity, (uint)j, (uint)first, (uint)count, writeLoad ? 1u : 0u),
                    reads: [experts], writes: [slots, counts, load]);
            }
    }

    public void MoeRouteBackward(Tensor dGates, Tensor probs, Tensor experts, bool normalize, Tensor dProbs)
    {
        // dGates [N, k], probs [N, E], experts [N, k] I32, dProbs [N, E]
        const string op = "moe route backward";
        RequireF32(op, dGates, probs, dProbs);
        RequireI32(op, experts);
        var (n, e, k) = OpShapes.MoeRouteBackward(dGates, probs, experts, dProbs);
        if (n == 0) return;
        var errors = IndexErrorSlot("experts", (i, id) => $"{op}: {experts.Describe()}: element {i} is expert {id}, outside [0, {e})"); // [2] I32
        Dispatch("moe_route_back", LinearGroups(n), 1, 1, new TopKPush((uint)n, (uint)e, (uint)k, normalize ? 1u : 0u),
            reads: [dGates, probs, experts], writes: [dProbs, errors]);
        CaptureBadIndex(experts.Reshape(n * k), errors);
    }

    public void MoeDispatch(Tensor input, Tensor slots, Tensor output)
    {
        // input [N, C], slots [N, k] I32, output [R, C]
        const string op = "moe dispatch";
        RequireF32(op, input, output);
        RequireI32(op, slots);
        var (n, k, r, c) = OpShapes.MoeDispatch(input, slots, output);
        Fill(output, 0);   // rows no token took
        if (n * k * c == 0) return;
        var errors = SlotErrors(op, slots, r);
        Dispatch("moe_dispatch", LinearGroups((long)n * k * c), 1, 1, new MoePush((uint)n, (uint)k, (uint)r, (uint)c),
            reads: [input, slots], writes: [output, errors]);
        CaptureBadIndex(slots.Reshape(n * k), errors);
    }

    public void MoeDispatchBackward(Tensor dOutput, Tensor slots, Tensor dInput)
    {
        // dOutput [R, C], slots [N, k] I32, dInput [N, C]
        const string op = "moe dispatch backward";
        RequireF32(op, dOutput, dInput);
        RequireI32(op, slots);
        var (n, k, r, c) = OpShapes.MoeDispatchBackward(dOutput, slots, dInput);
        if (n * k * c == 0) return;
        var errors = SlotErrors(op, slots, r);
        Dispatch("moe_dispatch_back", LinearGroups((long)n * c), 1, 1, new MoePush((uint)n, (uint)k, (uint)r, (uint)c),
            reads: [dOutput, slots], writes: [dInput, errors]);
        CaptureBadIndex(slots.Reshape(n * k), errors);
    }

    public void MoeCombine(Tensor expertOutput, Tensor slots, Tensor gates, Tensor output)
    {
        // expertOutput [R, C], slots [N, k] I32, gates [N, k], output [N, C]
        const string op = "moe combine";
        RequireF32(op, expertOutput, gates, output);
        RequireI32(op, slots);
        var (n, k, r, c) = OpShapes.MoeCombine(expertOutput, slots, gates, output);
        if (n * c == 0) return;
        if (k == 0) { Fill(output, 0); return; }
        var errors = SlotErrors(op, slots, r);
        Dispatch("moe_combine", LinearGroups((long)n * c), 1, 1, new MoePush((uint)n, (uint)k, (uint)r, (uint)c),
            reads: [expertOutput, slots, gates], writes: [output, errors]);
        CaptureBadIndex(slots.Reshape(n * k), errors);
    }

    public void MoeCombineBackward(Tensor dOutput, Tensor expertOutput, Tensor slots, Tensor gates, Tensor? dExpertOutput, Tensor? dGates)
    {
        // dOutput [N, C], expertOutput [R, C], slots [N, k] I32, gates [N, k], dExpertOutput [R, C] or null, dGates [N, k] or null
        const string op = "moe combine backward";
        RequireF32(op, [dOutput, expertOutput, gates, .. new[] { dExpertOutput, dGates }.OfType<Tensor>()]);
        RequireI32(op, slots);
        var (n, k, r, c) = OpShapes.MoeCombineBackward(dOutput, expertOutput, slots, gates, dExpertOutput, dGates);
        if (n * k == 0) return;
        var push = new MoePush((uint)n, (uint)k, (uint)r, (uint)c);
        if (dExpertOutput is not null)
        {
            var errors = SlotErrors(op, slots, r);
            Dispatch("moe_combine_back", LinearGroups((long)n * k * c), 1, 1, push,
                reads: [dOutput, slots, gates], writes: [dExpertOutput, errors]);
            CaptureBadIndex(slots.Reshape(n * k), errors);
        }
        if (dGates is not null)
        {
            if (c + 1 > Limits.PlannedIterations)
                throw new NotSupportedException($"{op}: {dOutput.Describe()}'s {c} channels exceed the {Limits.PlannedIterations} loop iterations one invocation may run on '{Info.Name}'");
            var errors = SlotErrors(op, slots, r);
            Dispatch("moe_combine_back_gates", LinearGroups((long)n * k), 1, 1, push,
                reads: [dOutput, expertOutput, slots], writes: [dGates, errors]);
            CaptureBadIndex(slots.Reshape(n * k), errors);
        }
    }

    /// <summary>An index-error slot for a slots tensor of R expert rows, with the CPU's message (MoeKernel.CheckSlots).</summary>
    private Tensor SlotErrors(string op, Tensor slots, int expertRows) =>
        IndexErrorSlot("slots", (i, s) => $"{op}: {slots.Describe()}: element {i} is slot {s}, outside [−1, {expertRows})");

    /// <summary>Throws unless one row's loops (<paramref name="iterationsPerRow"/>) fit the loop budget: these kernels give each
    /// row one invocation, which suits a router's few experts, not a vocabulary.</summary>
    private void RequireRowLoop(string op, Tensor rows, long iterationsPerRow)
    {
        if (iterationsPerRow + 1 > Limits.PlannedIterations)
            throw new NotSupportedException($"{op}: rows of {rows.Describe()} need {iterationsPerRow} loop iterations in one invocation, more than the {Limits.PlannedIterations} planned on '{Info.Name}'");
    }
}
