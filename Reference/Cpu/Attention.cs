using System.Numerics;
using System.Numerics.Tensors;

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
                        if (dot > max) max = dot;
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
}
