using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Llm.Cpu;

// Shapes: B batch, T time, C channels, NH heads, hs = C/NH head size; qkv [B, T, 3C] = q | k | v, each [B, T, NH, hs].

/// <summary>
/// Causal multi-head self-attention on the fused q|k|v projection, as llm.c's attention_forward/backward:
/// att[t, s] = softmax_{s≤t}(q_t·k_s/√hs) (row maximum subtracted, masked entries 0), out_t = Σ_s att[t, s]·v_s.
/// Forward saves probs = att [B, NH, T, T]; backward needs only it, qkv and dOutput.
/// </summary>
public static class AttentionKernel
{
    // ---- definition ------------------------------------------------------------------------------------------------

    /// <summary>For every (b, t, h): probs[b, h, t, s] = softmax_{s≤t}(q·k_s/√hs), 0 for s &gt; t;
    /// output[b, t, h, :] = Σ_{s≤t} probs[b, h, t, s]·v_s.</summary>
    public static void Forward<T>(ReadOnlySpan<T> qkv, int batch, int time, int heads, Span<T> output, Span<T> probs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // qkv [B, T, 3C], output [B, T, C], probs [B, NH, T, T]
        int c = output.Length / (batch * time), hs = c / heads, c3 = 3 * c;
        T scale = T.One / T.Sqrt(T.CreateChecked(hs));
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < time; t++)
                for (int h = 0; h < heads; h++)
                {
                    ReadOnlySpan<T> query = qkv.Slice(b * time * c3 + t * c3 + h * hs, hs);   // [hs]
                    Span<T> att = probs.Slice(((b * heads + h) * time + t) * time, time);     // [T]

                    // pass 1: scores q·k/√hs for s ≤ t, and their maximum
                    T max = T.NegativeInfinity;
                    for (int s = 0; s <= t; s++)
                    {
                        ReadOnlySpan<T> key = qkv.Slice(b * time * c3 + s * c3 + c + h * hs, hs); // [hs]
                        T dot = T.Zero;
                        for (int i = 0; i < hs; i++) dot += query[i] * key[i];
                        dot *= scale;
                        att[s] = dot;
                        max = T.Max(max, dot); // NaN propagates, as TensorPrimitives.Max in the fast path
                    }
                    // pass 2: exp(score − max), so the largest term is exp(0) and nothing overflows
                    T sum = T.Zero;
                    for (int s = 0; s <= t; s++)
                    {
                        T e = T.Exp(att[s] - max);
                        att[s] = e;
                        sum += e;
                    }
                    // pass 3: normalize; the future is masked to exactly 0
                    T inverse = T.One / sum;
                    for (int s = 0; s < time; s++) att[s] = s <= t ? att[s] * inverse : T.Zero;

                    // pass 4: out = Σ att[s]·v_s
                    Span<T> outBth = output.Slice(b * time * c + t * c + h * hs, hs);     // [hs]
                    outBth.Clear();
                    for (int s = 0; s <= t; s++)
                    {
                        ReadOnlySpan<T> value = qkv.Slice(b * time * c3 + s * c3 + 2 * c + h * hs, hs); // [hs]
                        for (int i = 0; i < hs; i++) outBth[i] += att[s] * value[i];
                    }
                }
    }

    /// <summary>The four forward passes in reverse (llm.c attention_backward): through out = Σ att·v into dAtt and dV;
    /// through the softmax with its Jacobian ∂att[s]/∂pre[r] = att[s]([s = r] − att[r]) into dPre;
    /// through pre = q·k/√hs into dQ and dK. Accumulates into dQkv.</summary>
    public static void Backward<T>(ReadOnlySpan<T> dOutput, ReadOnlySpan<T> qkv, ReadOnlySpan<T> probs, int batch, int time, int heads,
        Span<T> dQkv)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        // dOutput [B, T, C], qkv [B, T, 3C], probs [B, NH, T, T], dQkv [B, T, 3C]
        int c = dOutput.Length / (batch * time), hs = c / heads, c3 = 3 * c;
        T scale = T.One / T.Sqrt(T.CreateChecked(hs));
        var dAtt = new T[time]; // [T] ∂L/∂att[t, s] for one row
        var dPre = new T[time]; // [T] ∂L/∂pre[t, s] for one row
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < time; t++)
                for (int h = 0; h < heads; h++)
                {
                    ReadOnlySpan<T> att = probs.Slice(((b * heads + h) * time + t) * time, time); // [T]
                    ReadOnlySpan<T> dOut = dOutput.Slice(b * time * c + t * c + h * hs, hs);      // [hs]
                    ReadOnlySpan<T> query = qkv.Slice(b * time * c3 + t * c3 + h * hs, hs);       // [hs]
                    Span<T> dQuery = dQkv.Slice(b * time * c3 + t * c3 + h * hs, hs);             // [hs]
                    Array.Clear(dAtt);
                    Array.Clear(dPre);

                    // pass 4: out = Σ att[s]·v_s
                    for (int s = 0; s <= t; s++)
                    {
                        ReadOnlySpan<T> value = qkv.Slice(b * time * c3 + s * c3 + 2 * c + h * hs, hs); // [hs]
                        Span<T> dValue = dQkv.Slice(b * time * c3 + s * c3 + 2 * c + h * hs, hs);       // [hs]
                        for (int i = 0; i < hs; i++)
                        {
                            dAtt[s] += value[i] * dOut[i];
                            dValue[i] += att[s] * dOut[i];
                        }
                    }
                    // passes 2 and 3: softmax Jacobian
                    for (int s = 0; s <= t; s++)
                        for (int r = 0; r <= t; r++)
                        {
                            T indicator = s == r ? T.One : T.Zero;
                            dPre[r] += att[s] * (indicator - att[r]) * dAtt[s];
                        }
                    // pass 1: pre[s] = q·k_s·scale
                    for (int s = 0; s <= t; s++)
                    {
                        ReadOnlySpan<T> key = qkv.Slice(b * time * c3 + s * c3 + c + h * hs, hs); // [hs]
                        Span<T> dKey = dQkv.Slice(b * time * c3 + s * c3 + c + h * hs, hs);       // [hs]
                        for (int i = 0; i < hs; i++)
                        {
                            dQuery[i] += key[i] * dPre[s] * scale;
                            dKey[i] += query[i] * dPre[s] * scale;
                        }
                    }
                }
    }

    // ---- fast path (F32) -------------------------------------------------------------------------------------------

    /// <summary>Equivalent to <see cref="Forward{T}"/> up to float rounding: the B·NH (batch, head) pairs in parallel
    /// (each writes only its own probs rows and its own hs-wide slice of output), dot products, exp and axpy vectorized.</summary>
    public static unsafe void ForwardFast(ReadOnlySpan<float> qkv, int batch, int time, int heads, Span<float> output, Span<float> probs)
    {
        // qkv [B, T, 3C], output [B, T, C], probs [B, NH, T, T]
        int c = output.Length / (batch * time), hs = c / heads, c3 = 3 * c;
        CheckLengths(qkv.Length, output.Length, probs.Length, batch, time, heads, c);
        float scale = 1f / MathF.Sqrt(hs);
        fixed (float* pQkv = qkv, pOut = output, pProbs = probs)
        {
            var qkvs = new Pinned<float>(pQkv, qkv.Length);
            var outputs = new Pinned<float>(pOut, output.Length);
            var probss = new Pinned<float>(pProbs, probs.Length);
            KernelParallel.For(batch * heads, (long)batch * heads * time * time * hs,
                bh => ForwardHead(qkvs, outputs, probss, bh / heads, bh % heads, time, heads, c, scale));
        }
    }

    /// <summary>One (batch, head) pair of <see cref="ForwardFast"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot SIMD loop: skip the unoptimized first JIT tier
    private static void ForwardHead(Pinned<float> qkv, Pinned<float> output, Pinned<float> probs, int b, int h, int time, int heads, int c, float scale)
    {
        int hs = c / heads, c3 = 3 * c, bh = b * heads + h;
        for (int t = 0; t < time; t++)
        {
            ReadOnlySpan<float> query = qkv.Slice(b * time * c3 + t * c3 + h * hs, hs); // [hs]
            Span<float> att = probs.Slice((bh * time + t) * time, time);                // [T]
            Span<float> past = att.Slice(0, t + 1);                                     // [t+1] the unmasked part
            for (int s = 0; s <= t; s++)
                past[s] = TensorPrimitives.Dot(query, qkv.Slice(b * time * c3 + s * c3 + c + h * hs, hs)) * scale;
            float max = TensorPrimitives.Max(past);
            TensorPrimitives.Subtract(past, max, past);
            TensorPrimitives.Exp(past, past);
            TensorPrimitives.Multiply(past, 1f / TensorPrimitives.Sum(past), past);
            att.Slice(t + 1).Clear();

            Span<float> outBth = output.Slice(b * time * c + t * c + h * hs, hs); // [hs]
            outBth.Clear();
            for (int s = 0; s <= t; s++)
                TensorPrimitives.MultiplyAdd(qkv.Slice(b * time * c3 + s * c3 + 2 * c + h * hs, hs), past[s], outBth, outBth);
        }
    }

    /// <summary>Equivalent to <see cref="Backward{T}"/> up to float rounding: (batch, head) pairs in parallel (each
    /// accumulates only into its own head's q, k, v slices of dQkv, so there are no races), and the softmax Jacobian
    /// applied in O(T) per row: dPre[r] = att[r]·(dAtt[r] − Σ_s att[s]·dAtt[s]).</summary>
    public static unsafe void BackwardFast(ReadOnlySpan<float> dOutput, ReadOnlySpan<float> qkv, ReadOnlySpan<float> probs,
        int batch, int time, int heads, Span<float> dQkv)
    {
        // dOutput [B, T, C], qkv [B, T, 3C], probs [B, NH, T, T], dQkv [B, T, 3C]
        int c = dOutput.Length / (batch * time), hs = c / heads, c3 = 3 * c;
        CheckLengths(qkv.Length, dOutput.Length, probs.Length, batch, time, heads, c);
        if (dQkv.Length != qkv.Length) throw new ArgumentException("attention backward: dQkv and qkv lengths differ");
        float scale = 1f / MathF.Sqrt(hs);
        fixed (float* pDy = dOutput, pQkv = qkv, pProbs = probs, pDQkv = dQkv)
        {
            var dOutputs = new Pinned<float>(pDy, dOutput.Length);
            var qkvs = new Pinned<float>(pQkv, qkv.Length);
            var probss = new Pinned<float>(pProbs, probs.Length);
            var dQkvs = new Pinned<float>(pDQkv, dQkv.Length);
            KernelParallel.For(batch * heads, 2L * batch * heads * time * time * hs,
                bh => BackwardHead(dOutputs, qkvs, probss, bh / heads, bh % heads, time, heads, c, scale, dQkvs));
        }
    }

    /// <summary>One (batch, head) pair of <see cref="BackwardFast"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardHead(Pinned<float> dOutput, Pinned<float> qkv, Pinned<float> probs, int b, int h, int time, int heads, int c,
        float scale, Pinned<float> dQkv)
    {
        int hs = c / heads, c3 = 3 * c, bh = b * heads + h;
        Span<float> dAtt = new float[time]; // [T]
        Span<float> dPre = new float[time]; // [T]
        for (int t = 0; t < time; t++)
        {
            ReadOnlySpan<float> att = probs.Slice((bh * time + t) * time, t + 1);      // [t+1]
            ReadOnlySpan<float> dOut = dOutput.Slice(b * time * c + t * c + h * hs, hs); // [hs]
            ReadOnlySpan<float> query = qkv.Slice(b * time * c3 + t * c3 + h * hs, hs);  // [hs]
            Span<float> dQuery = dQkv.Slice(b * time * c3 + t * c3 + h * hs, hs);        // [hs]
            Span<float> dA = dAtt.Slice(0, t + 1), dP = dPre.Slice(0, t + 1);            // [t+1]

            // through out = Σ att[s]·v_s
            for (int s = 0; s <= t; s++)
            {
                dA[s] = TensorPrimitives.Dot(qkv.Slice(b * time * c3 + s * c3 + 2 * c + h * hs, hs), dOut);
                Span<float> dValue = dQkv.Slice(b * time * c3 + s * c3 + 2 * c + h * hs, hs);
                TensorPrimitives.MultiplyAdd(dOut, att[s], dValue, dValue);
            }
            // through the softmax: dPre = att ⊙ (dAtt − att·dAtt), then the 1/√hs of the scores
            float weighted = TensorPrimitives.Dot(att, dA);
            TensorPrimitives.Subtract(dA, weighted, dP);
            TensorPrimitives.Multiply(dP, att, dP);
            TensorPrimitives.Multiply(dP, scale, dP);
            // through pre[s] = q·k_s
            for (int s = 0; s <= t; s++)
            {
                ReadOnlySpan<float> key = qkv.Slice(b * time * c3 + s * c3 + c + h * hs, hs);
                Span<float> dKey = dQkv.Slice(b * time * c3 + s * c3 + c + h * hs, hs);
                TensorPrimitives.MultiplyAdd(key, dP[s], dQuery, dQuery);
                TensorPrimitives.MultiplyAdd(query, dP[s], dKey, dKey);
            }
        }
    }

    private static void CheckLengths(int qkv, int output, int probs, int batch, int time, int heads, int c)
    {
        if (c % heads != 0 || qkv != batch * time * 3 * c || output != batch * time * c || probs != batch * heads * time * time)
            throw new ArgumentException($"attention: span lengths do not match B={batch}, T={time}, NH={heads}, C={c}");
    }
}
