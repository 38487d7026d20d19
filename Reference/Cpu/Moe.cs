using System.Numerics;
using System.Numerics.Tensors;

namespace Llm.Cpu;

// Shapes: N tokens, E experts, k choices per token, R = E·capacity expert rows, C channels.
// probs [N, E]; experts, slots [N, k] I32; gates [N, k]; load [E]; input/output of dispatch [N, C] → [R, C];
// expertOutput [R, C] → combine output [N, C].

/// <summary>
/// The data movement of a mixture-of-experts layer (Switch Transformer, GShard): top-k routing with a capacity, the
/// gather of each expert's tokens into its rows (dispatch) and the gate-weighted scatter back (combine). The expert
/// FFNs between them are batched matmuls over [E, capacity, C], never a per-token loop.
/// </summary>
public static class MoeKernel
{
    // ---- routing (definition; integer selection over N·E·k elements, cheap beside the experts: no fast path) ------

    /// <summary>
    /// experts[n, j] = the j-th largest probs[n, ·] (ties to the lower expert); gates[n, j] = its prob, divided by the
    /// sum of the k chosen when <paramref name="normalize"/>; slots[n, j] = e·capacity + position, or −1 once expert e
    /// holds capacity tokens: positions go to every token's first choice in token order, then to the second choices
    /// (GShard's priority). load[e] = (tokens whose first choice is e)/N, dropped ones included.
    /// </summary>
    public static void Route<T>(ReadOnlySpan<T> probs, int experts, int capacity, bool normalize, Span<int> chosen, Span<int> slots, Span<T> gates, Span<T> load)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // probs [N, E], chosen [N, k], slots [N, k], gates [N, k], load [E]
        int rows = probs.Length / experts, k = rows == 0 ? 0 : chosen.Length / rows;
        for (int n = 0; n < rows; n++)
        {
            ReadOnlySpan<T> p = probs.Slice(n * experts, experts); // [E]
            T sum = T.Zero;
            for (int j = 0; j < k; j++)
            {
                int best = -1;
                for (int e = 0; e < experts; e++)
                {
                    if (Taken(chosen.Slice(n * k, j), e)) continue;
                    if (best < 0 || p[e] > p[best]) best = e;   // strict: a tie keeps the lower expert
                }
                chosen[n * k + j] = best;
                gates[n * k + j] = p[best];
                sum += p[best];
            }
            if (normalize) for (int j = 0; j < k; j++) gates[n * k + j] /= sum;
        }
        var counts = new int[experts]; // [E] tokens offered to each expert so far
        for (int j = 0; j < k; j++)
        {
            for (int n = 0; n < rows; n++)
            {
                int e = chosen[n * k + j];
                slots[n * k + j] = counts[e] < capacity ? e * capacity + counts[e] : -1;
                counts[e]++;
            }
            if (j == 0) for (int e = 0; e < experts; e++) load[e] = T.CreateChecked(counts[e]) / T.CreateChecked(rows);
        }
        if (k == 0 || rows == 0) load.Clear();
    }

    private static bool Taken(ReadOnlySpan<int> earlier, int e) => earlier.Contains(e);

    /// <summary>dProbs[n, e_j] += ∂gates/∂probs ᵀ·dGates: with S = Σ_i probs[n, e_i], g_j = p_{e_j}/S when normalized,
    /// ∂L/∂p_{e_j} = (dg_j − Σ_i dg_i·g_i)/S; unnormalized, dg_j. The chosen experts are distinct, so no entry is hit twice.</summary>
    public static void RouteBackward<T>(ReadOnlySpan<T> dGates, ReadOnlySpan<T> probs, ReadOnlySpan<int> chosen, int experts, bool normalize, Span<T> dProbs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dGates [N, k], probs [N, E], chosen [N, k], dProbs [N, E]
        int rows = probs.Length / experts, k = rows == 0 ? 0 : chosen.Length / rows;
        for (int n = 0; n < rows; n++)
        {
            T sum = T.Zero, weighted = T.Zero;
            for (int j = 0; j < k; j++) sum += probs[n * experts + chosen[n * k + j]];
            for (int j = 0; j < k; j++) weighted += dGates[n * k + j] * (probs[n * experts + chosen[n * k + j]] / sum);
            for (int j = 0; j < k; j++)
                dProbs[n * experts + chosen[n * k + j]] += normalize ? (dGates[n * k + j] - weighted) / sum : dGates[n * k + j];
        }
    }

    /// <summary>Throws unless every expert id is in [0, E) and a token's k ids are distinct (backward's precondition).</summary>
    public static void CheckExperts(ReadOnlySpan<int> chosen, int k, int experts, string what)
    {
        for (int i = 0; i < chosen.Length; i++)
        {
            if ((uint)chosen[i] >= (uint)experts)
                throw new ArgumentOutOfRangeException(nameof(chosen), $"{what}: element {i} is expert {chosen[i]}, outside [0, {experts})");
            for (int j = i - i % k; j < i; j++)
                if (chosen[j] == chosen[i])
                    throw new ArgumentException($"{what}: token {i / k} chooses expert {chosen[i]} twice");
        }
    }

    /// <summary>Throws unless every slot is −1 (dropped) or in [0, R) and no kept slot appears twice (each expert row
    /// holds one token, which is what lets the backends write them without atomics).</summary>
    public static void CheckSlots(ReadOnlySpan<int> slots, int expertRows, string what)
    {
        var used = new bool[expertRows];
        for (int i = 0; i < slots.Length; i++)
        {
            int s = slots[i];
            if (s < -1 || s >= expertRows)
                throw new ArgumentOutOfRangeException(nameof(slots), $"{what}: element {i} is slot {s}, outside [−1, {expertRows})");
            if (s < 0) continue;
            if (used[s]) throw new ArgumentException($"{what}: slot {s} is taken twice (element {i})");
            used[s] = true;
        }
    }

    // ---- dispatch and combine (definition) -------------------------------------------------------------------------

    /// <summary>output = 0, then output[slots[n, j]] = input[n] for every kept choice.</summary>
    public static void Dispatch<T>(ReadOnlySpan<T> input, ReadOnlySpan<int> slots, int channels, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // input [N, C], slots [N, k], output [R, C]
        output.Clear();
        int rows = input.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        for (int n = 0; n < rows; n++)
            for (int j = 0; j < k; j++)
                if (slots[n * k + j] is int s and >= 0)
                    input.Slice(n * channels, channels).CopyTo(output.Slice(s * channels, channels));
    }

    /// <summary>dInput[n] += Σ_j dOutput[slots[n, j]] over kept choices (j ascending).</summary>
    public static void DispatchBackward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<int> slots, int channels, Span<T> dInput)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [R, C], slots [N, k], dInput [N, C]
        int rows = dInput.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        for (int n = 0; n < rows; n++)
            for (int c = 0; c < channels; c++)
            {
                T sum = T.Zero;
                for (int j = 0; j < k; j++) if (slots[n * k + j] is int s and >= 0) sum += dOutput[s * channels + c];
                dInput[n * channels + c] += sum;
            }
    }

    /// <summary>output[n] = Σ_j gates[n, j]·expertOutput[slots[n, j]] over kept choices (j ascending; 0 when all dropped).</summary>
    public static void Combine<T>(ReadOnlySpan<T> expertOutput, ReadOnlySpan<int> slots, ReadOnlySpan<T> gates, int channels, Span<T> output)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // expertOutput [R, C], slots [N, k], gates [N, k], output [N, C]
        int rows = output.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        for (int n = 0; n < rows; n++)
            for (int c = 0; c < channels; c++)
            {
                T sum = T.Zero;
                for (int j = 0; j < k; j++) if (slots[n * k + j] is int s and >= 0) sum += gates[n * k + j] * expertOutput[s * channels + c];
                output[n * channels + c] = sum;
            }
    }

    /// <summary>dExpertOutput[slots[n, j]] += gates[n, j]·dOutput[n]; dGates[n, j] += expertOutput[slots[n, j]]·dOutput[n]
    /// (c ascending); dropped choices get nothing. An empty gradient span (null) is not computed.</summary>
    public static void CombineBackward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> expertOutput, ReadOnlySpan<int> slots, ReadOnlySpan<T> gates,
        int channels, Span<T> dExpertOutput, Span<T> dGates) where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [N, C], expertOutput [R, C], slots [N, k], gates [N, k], dExpertOutput [R, C] or empty, dGates [N, k] or empty
        int rows = dOutput.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        for (int n = 0; n < rows; n++)
            for (int j = 0; j < k; j++)
            {
                if (slots[n * k + j] is not (int s and >= 0)) continue;
                T dot = T.Zero;
                for (int c = 0; c < channels; c++)
                {
                    T dy = dOutput[n * channels + c];
                    if (!dExpertOutput.IsEmpty) dExpertOutput[s * channels + c] += gates[n * k + j] * dy;
                    dot += expertOutput[s * channels + c] * dy;
                }
                if (!dGates.IsEmpty) dGates[n * k + j] += dot;
            }
    }

    // ---- fast paths (F32): tokens in parallel, rows vectorized; each writes only its own rows -------------------

    /// <summary>Equivalent to <see cref="Dispatch{T}"/> bit for bit (copies).</summary>
    public static unsafe void DispatchFast(ReadOnlySpan<float> input, ReadOnlySpan<int> slots, int channels, Span<float> output)
    {
        output.Clear();
        int rows = input.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        int[] slot = slots.ToArray(); // [N, k]
        fixed (float* pIn = input, pOut = output)
        {
            var ins = new Pinned<float>(pIn, input.Length);
            var outs = new Pinned<float>(pOut, output.Length);
            KernelParallel.For(rows, 2L * rows * k * channels, n =>
            {
                for (int j = 0; j < k; j++)
                    if (slot[n * k + j] is int s and >= 0) ins.Slice(n * channels, channels).CopyTo(outs.Slice(s * channels, channels));
            });
        }
    }

    /// <summary>Equivalent to <see cref="DispatchBackward{T}"/> up to float rounding (the k rows are added into dInput one
    /// after another instead of summed first).</summary>
    public static unsafe void DispatchBackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<int> slots, int channels, Span<float> dInput)
    {
        int rows = dInput.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        int[] slot = slots.ToArray(); // [N, k]
        fixed (float* pDo = dOutput, pDi = dInput)
        {
            var dos = new Pinned<float>(pDo, dOutput.Length);
            var dis = new Pinned<float>(pDi, dInput.Length);
            KernelParallel.For(rows, 2L * rows * k * channels, n =>
            {
                Span<float> dx = dis.Slice(n * channels, channels); // [C]
                for (int j = 0; j < k; j++)
                    if (slot[n * k + j] is int s and >= 0) TensorPrimitives.Add(dx, dos.Slice(s * channels, channels), dx);
            });
        }
    }

    /// <summary>Equivalent to <see cref="Combine{T}"/> up to float rounding (MultiplyAdd may fuse).</summary>
    public static unsafe void CombineFast(ReadOnlySpan<float> expertOutput, ReadOnlySpan<int> slots, ReadOnlySpan<float> gates, int channels, Span<float> output)
    {
        int rows = output.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        int[] slot = slots.ToArray(); // [N, k]
        float[] gate = gates.ToArray(); // [N, k]
        fixed (float* pEo = expertOutput, pOut = output)
        {
            var eos = new Pinned<float>(pEo, expertOutput.Length);
            var outs = new Pinned<float>(pOut, output.Length);
            KernelParallel.For(rows, 2L * rows * k * channels, n =>
            {
                Span<float> y = outs.Slice(n * channels, channels); // [C]
                y.Clear();
                for (int j = 0; j < k; j++)
                    if (slot[n * k + j] is int s and >= 0) TensorPrimitives.MultiplyAdd(eos.Slice(s * channels, channels), gate[n * k + j], y, y);
            });
        }
    }

    /// <summary>Equivalent to <see cref="CombineBackward{T}"/> up to float rounding (vectorized dot and MultiplyAdd).</summary>
    public static unsafe void CombineBackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> expertOutput, ReadOnlySpan<int> slots, ReadOnlySpan<float> gates,
        int channels, Span<float> dExpertOutput, Span<float> dGates)
    {
        int rows = dOutput.Length / Math.Max(channels, 1), k = rows == 0 ? 0 : slots.Length / rows;
        int[] slot = slots.ToArray(); // [N, k]
        float[] gate = gates.ToArray(); // [N, k]
        bool wantExperts = !dExpertOutput.IsEmpty, wantGates = !dGates.IsEmpty;
        fixed (float* pDo = dOutput, pEo = expertOutput, pDe = dExpertOutput, pDg = dGates)
        {
            var dos = new Pinned<float>(pDo, dOutput.Length);
            var eos = new Pinned<float>(pEo, expertOutput.Length);
            var des = new Pinned<float>(pDe, dExpertOutput.Length);
            var dgs = new Pinned<float>(pDg, dGates.Length);
            KernelParallel.For(rows, 3L * rows * k * channels, n =>
            {
                ReadOnlySpan<float> dy = dos.Slice(n * channels, channels); // [C]
                for (int j = 0; j < k; j++)
                {
                    if (slot[n * k + j] is not (int s and >= 0)) continue;
                    if (wantExperts)
                    {
                        Span<float> de = des.Slice(s * channels, channels); // [C], this token's own row
                        TensorPrimitives.MultiplyAdd(dy, gate[n * k + j], de, de);
                    }
                    if (wantGates) dgs.Slice(n * k + j, 1)[0] += TensorPrimitives.Dot(eos.Slice(s * channels, channels), dy);
                }
            });
        }
    }
}
