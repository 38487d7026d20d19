namespace Llm.Tensors;

/// <summary>
/// The whole contract between the model code and a compute device: memory management plus a small, named op set,
/// each op with its backward. Layers, models, the tape, optimizers and the training loop are written once above it.
/// Shape legend: B batch, T time, C channels, V vocabulary, NH heads, N rows (= B*T), K/M/N matmul dims.
/// Conventions: every backward op ACCUMULATES (+=) into its gradient outputs; zeroing is the caller's visible step.
/// Float ops accept F32 (and F64 on the Reference, for finite-difference checks); ids and targets are I32.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>Short name, e.g. "cpu" or "vulkan".</summary>
    string Name { get; }

    // ---- memory ----------------------------------------------------------------------------------------------

    /// <summary>A new zero-filled tensor in this backend's memory.</summary>
    Tensor Allocate(DType dtype, int[] shape, string? name = null);
    /// <summary>Gives the memory of a tensor that <see cref="Allocate"/> returned (with every view of it) back to the
    /// backend; using any of those views afterwards is an error. Work already submitted that reads it stays correct.</summary>
    void Release(Tensor tensor);
    /// <summary>The most elements one allocation of <paramref name="dtype"/> may have on this backend (one .NET array
    /// on the CPU, maxMemoryAllocationSize on a Vulkan device); larger sets of tensors are split across allocations.</summary>
    int MaxTensorElements(DType dtype);
    /// <summary>Host → device. <typeparamref name="T"/> must match the tensor's dtype (float, double or int).</summary>
    void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged;
    /// <summary>Device → host; waits for pending work.</summary>
    void Download<T>(Tensor source, Span<T> destination) where T : unmanaged;
    /// <summary>destination = source (same dtype and length).</summary>
    void Copy(Tensor source, Tensor destination);
    /// <summary>destination[i] = value.</summary>
    void Fill(Tensor destination, double value);
    /// <summary>Waits until all submitted work has finished.</summary>
    void Synchronize();

    // ---- ops: forward and backward side by side ----------------------------------------------------------------

    /// <summary>output[n, :] = table[ids[n], :]. ids [N] I32, table [V, C], output [N, C].</summary>
    void Embedding(Tensor ids, Tensor table, Tensor output);
    /// <summary>dTable[ids[n], :] += dOutput[n, :] (scatter-add).</summary>
    void EmbeddingBackward(Tensor dOutput, Tensor ids, Tensor dTable);

    /// <summary>
    /// Batched matmul: output[b] (+)= op(a[b]) · op(b[b]) + bias, op(x) = xᵀ when the flag is set.
    /// a [batch.., M, K] (or [K, M] when transA), b [batch.., K, N] (or [N, K] when transB), bias [N] or null,
    /// output [batch.., M, N]. An operand of rank 2 is shared by every batch (a weight matrix).
    /// accumulate=true adds into output instead of overwriting it.
    /// </summary>
    void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA = false, bool transB = false, bool accumulate = false);
    /// <summary>dA += dOutput · op(b)ᵀ (in a's layout), dB += op(a)ᵀ · dOutput (in b's layout), dBias += Σ_rows dOutput.
    /// Any gradient may be null when it is not wanted.</summary>
    void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA = false, bool transB = false);

    /// <summary>output = (input − mean) · rstd · weight + bias over the last axis; saves mean [N] and rstd [N] for backward.
    /// input/output [N, C], weight/bias [C], rstd = 1/sqrt(var + eps) with the biased variance.</summary>
    void LayerNorm(Tensor input, Tensor weight, Tensor bias, Tensor output, Tensor mean, Tensor rstd, float eps = 1e-5f);
    /// <summary>Accumulates dInput [N, C], dWeight [C], dBias [C]; a null dWeight or dBias (a frozen gain or bias) is not computed.</summary>
    void LayerNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor mean, Tensor rstd, Tensor dInput, Tensor? dWeight, Tensor? dBias);

    /// <summary>output = input · rstd · weight over the last axis (RMSNorm: no mean subtracted, no bias); saves rstd [N] for
    /// backward. input/output [N, C], weight [C], rstd = 1/sqrt(mean(input²) + eps).</summary>
    void RmsNorm(Tensor input, Tensor weight, Tensor output, Tensor rstd, float eps = 1e-6f);
    /// <summary>Accumulates dInput [N, C] += rstd·(g − x̂·mean(g·x̂)) and dWeight [C] += Σ_n dOutput·x̂, with x̂ = input·rstd and
    /// g = weight·dOutput. A null dWeight (a frozen gain) is not computed.</summary>
    void RmsNormBackward(Tensor dOutput, Tensor input, Tensor weight, Tensor rstd, Tensor dInput, Tensor? dWeight);

    /// <summary>GPT-2's tanh GeLU: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    void Gelu(Tensor input, Tensor output);
    /// <summary>dInput += dOutput · gelu'(input).</summary>
    void GeluBackward(Tensor dOutput, Tensor input, Tensor dInput);

    /// <summary>Swish: y = x·σ(βx), σ(z) = 1/(1 + e^−z), computed without overflow for large |βx|; SiLU at β = 1. NaN propagates.</summary>
    void Swish(Tensor input, Tensor output, float beta = 1f);
    /// <summary>dInput += dOutput · (s + βx·s(1 − s)), s = σ(β·input).</summary>
    void SwishBackward(Tensor dOutput, Tensor input, Tensor dInput, float beta = 1f);

    /// <summary>The logistic sigmoid y = σ(x) = 1/(1 + e^−x), without overflow (GLU's gate). NaN propagates.</summary>
    void Sigmoid(Tensor input, Tensor output);
    /// <summary>dInput += dOutput · σ(x)·σ(−x).</summary>
    void SigmoidBackward(Tensor dOutput, Tensor input, Tensor dInput);

    /// <summary>ReLU: y = max(0, x). NaN propagates.</summary>
    void Relu(Tensor input, Tensor output);
    /// <summary>dInput += dOutput · [input &gt; 0]: the gradient is 0 at x = 0 (as PyTorch's) and for a NaN x.</summary>
    void ReluBackward(Tensor dOutput, Tensor input, Tensor dInput);

    /// <summary>Exact GeLU (PyTorch's F.gelu, approximate='none'): y = x·Φ(x) = ½x(1 + erf(x/√2)), Φ the standard normal
    /// CDF, computed as ½erfc(−x/√2) so that the tail x ≪ 0 keeps its relative accuracy. NaN propagates.</summary>
    void GeluExact(Tensor input, Tensor output);
    /// <summary>dInput += dOutput · (Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π), x = input.</summary>
    void GeluExactBackward(Tensor dOutput, Tensor input, Tensor dInput);

    /// <summary>output = a ⊙ b (same shapes): the gate of GLU, SwiGLU and GEGLU.</summary>
    void Multiply(Tensor a, Tensor b, Tensor output);
    /// <summary>dA += dOutput ⊙ b and dB += dOutput ⊙ a (same shapes); a null dA or dB is not computed.</summary>
    void MultiplyBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB);
    /// <summary>Inverted dropout with a counter-based random stream, so nothing is stored for backward, a run is replayable from
    /// (seed, offset), and every backend drops the same elements: element i is kept iff (H(seed, offset + i) &gt;&gt; 8) ≥ ⌈p·2²⁴⌉,
    /// H = Philox4x32-10's first word for counter (offset + i, 0) under key seed (<see cref="Common.Philox.Hash"/>); kept elements
    /// are scaled by 1/(1 − p) (rounded once from double), dropped ones are 0 exactly (selected: a dropped NaN is 0).
    /// p in [0, 1); p = 0 is the identity; offset ≥ 0, a 64-bit element counter.</summary>
    void Dropout(Tensor input, Tensor output, float p, ulong seed, long offset);
    /// <summary>dInput += dOutput/(1 − p) where kept, recomputing the same keep decisions.</summary>
    void DropoutBackward(Tensor dOutput, Tensor dInput, float p, ulong seed, long offset);
    /// <summary>
    /// Rotary position embedding (Su et al.). x [B, T, H, hs] (q or k after the head split), positions [B, T] I32 (absolute
    /// position of each token; a KV-cache step passes offset..offset+T−1), output [B, T, H, hs]. Only the first rotaryDims
    /// of each head rotate (GPT-NeoX's partial rotary; rotaryDims even, ≤ hs), the rest pass through. Hugging Face
    /// rotate-half pairing: for i &lt; d/2 (d = rotaryDims) the pair is (i, i + d/2) with angle pos·θ^(−2i/d):
    /// y_i = x_i cos − x_{i+d/2} sin, y_{i+d/2} = x_{i+d/2} cos + x_i sin.
    /// </summary>
    void Rope(Tensor input, Tensor positions, Tensor output, int rotaryDims, float theta = 10000f);
    /// <summary>dInput += Rᵀ·dOutput (the inverse rotation; pass-through dims add dOutput).</summary>
    void RopeBackward(Tensor dOutput, Tensor positions, Tensor dInput, int rotaryDims, float theta = 10000f);

    /// <summary>output = a + b (same shapes): the residual connection. Its backward is <see cref="Accumulate"/> twice.</summary>
    void Add(Tensor a, Tensor b, Tensor output);
    /// <summary>destination += source. Also the backward of <see cref="Add"/> and of any fan-out.</summary>
    void Accumulate(Tensor source, Tensor destination);
    /// <summary>tensor *= factor (gradient clipping, loss scaling).</summary>
    void Scale(Tensor tensor, float factor);
    /// <summary>Σ tensor[i]², accumulated in double, returned to the host (global gradient norm).</summary>
    double SumOfSquares(Tensor tensor);

    /// <summary>
    /// Scaled dot-product attention. query [B, Tq, NH, hs], key and value [B, Tk, NKV, hs] (head h reads kv head
    /// h/(NH/NKV): grouped-query, multi-query at NKV = 1), scoreBias [NH, Tq, Tk] or null, output [B, Tq, NH, hs].
    /// Over the keys the mask lets query i see: s[k] = scale·q_i·k_k − m_h·(p − k) + scoreBias[h, i, k],
    /// att = softmax(s), out_i = Σ_k att[k]·v_k; a query that sees no key gets 0. Saves only rowMax = max s and
    /// rowSum = Σ e^(s − rowMax), [B, NH, Tq] each (log-sum-exp = rowMax + ln rowSum): no T×T tensor is kept.
    /// </summary>
    void Attention(Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output, Tensor rowMax, Tensor rowSum);
    /// <summary>Recomputes the probabilities from q, k and the saved statistics; accumulates dQuery, dKey, dValue and
    /// dScoreBias (null when not wanted). output is the forward's, for backends that use Σ dO·O for the softmax term.</summary>
    void AttentionBackward(Tensor dOutput, Tensor query, Tensor key, Tensor value, Tensor? scoreBias, AttentionMask mask, Tensor output,
        Tensor rowMax, Tensor rowSum, Tensor dQuery, Tensor dKey, Tensor dValue, Tensor? dScoreBias);

    /// <summary>destination[n, dc + j] = source[n, sc + j] for j &lt; width (+= when accumulate) over the rows N of both
    /// ([.., Cs] and [.., Cd]): splits a fused q|k|v projection, writes a KV cache, and is its own backward.</summary>
    void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width, bool accumulate = false);

    /// <summary>
    /// Fused softmax + cross-entropy over the vocabulary. logits [N, V], targets [N] I32, probs [N, V] (saved),
    /// losses [N] = −log softmax(logits[n])[targets[n]], and 0 where targets[n] == ignoreIndex.
    /// </summary>
    void CrossEntropy(Tensor logits, Tensor targets, Tensor probs, Tensor losses, int ignoreIndex = -1);
    /// <summary>dLogits[n, v] += dLosses[n] · (probs[n, v] − [v == targets[n]]); rows with ignoreIndex get nothing.</summary>
    void CrossEntropyBackward(Tensor dLosses, Tensor probs, Tensor targets, Tensor dLogits, int ignoreIndex = -1);

    /// <summary>
    /// One AdamW update (Loshchilov &amp; Hutter), in place on param, m, v. With t = step (1-based):
    /// m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²; m̂ = m/(1−β1ᵗ); v̂ = v/(1−β2ᵗ);
    /// param −= lr (m̂ / (√v̂ + ε) + weightDecay · param).
    /// </summary>
    void AdamW(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWParameters hyper);

    /// <summary>T5's relative position bias as attention's score bias: output[h, i, j] = table[buckets[i, j], h].
    /// table [NB, NH], buckets [Tq, Tk] I32 each in [0, NB), output [NH, Tq, Tk].</summary>
    void RelativePositionBias(Tensor table, Tensor buckets, Tensor output);
    /// <summary>dTable[b, h] += Σ over (i, j) with buckets[i, j] = b of dOutput[h, i, j], in a fixed order (deterministic).</summary>
    void RelativePositionBiasBackward(Tensor dOutput, Tensor buckets, Tensor dTable);

    // ---- mixture of experts (Switch Transformer, GShard): router softmax, top-k routing, gather and scatter -------

    /// <summary>probs [N, E] = softmax(logits) over the last axis (row maximum subtracted), logSumExp [N] = log Σ_e e^logits
    /// (saved: ST-MoE's router z-loss is mean lse²).</summary>
    void Softmax(Tensor logits, Tensor probs, Tensor logSumExp);
    /// <summary>dLogits += probs ⊙ (dProbs − Σ_e dProbs⊙probs) + dLogSumExp·probs; either incoming gradient may be null.</summary>
    void SoftmaxBackward(Tensor? dProbs, Tensor? dLogSumExp, Tensor probs, Tensor dLogits);
    /// <summary>
    /// Top-k routing with a capacity (Switch k = 1, GShard k = 2). probs [N, E]; experts [N, k] I32: the k largest probs in
    /// decreasing order, ties to the lower expert; slots [N, k] I32 = e·capacity + position, or −1 when expert e already holds
    /// capacity tokens: positions go first to every token's first choice in token order, then to the second choices (GShard);
    /// gates [N, k] = the chosen probs (dropped choices too), divided by their sum over the k when normalize;
    /// load [E] = fraction of the N tokens whose first choice is e (dropped ones included). 1 ≤ k ≤ E, capacity ≥ 0.
    /// </summary>
    void MoeRoute(Tensor probs, int capacity, bool normalize, Tensor experts, Tensor slots, Tensor gates, Tensor load);
    /// <summary>dProbs += (∂gates/∂probs)ᵀ·dGates: dg_j at expert e_j, or (dg_j − Σ_i dg_i·g_i)/Σ_i p_{e_i} when normalize.</summary>
    void MoeRouteBackward(Tensor dGates, Tensor probs, Tensor experts, bool normalize, Tensor dProbs);
    /// <summary>Gather: output[slots[n, j]] = input[n] for every kept choice; rows no token took are 0. input [N, C], slots [N, k]
    /// I32 (−1 = dropped; a kept slot appears once, as MoeRoute writes them), output [R, C] (R = E·capacity, e.g. [E, capacity, C]).</summary>
    void MoeDispatch(Tensor input, Tensor slots, Tensor output);
    /// <summary>dInput[n] += Σ_j dOutput[slots[n, j]] over kept choices (each token sums its own k rows: no races).</summary>
    void MoeDispatchBackward(Tensor dOutput, Tensor slots, Tensor dInput);
    /// <summary>Scatter back: output[n] = Σ_j gates[n, j]·expertOutput[slots[n, j]] over kept choices (0 when every choice was dropped).</summary>
    void MoeCombine(Tensor expertOutput, Tensor slots, Tensor gates, Tensor output);
    /// <summary>dExpertOutput[slots[n, j]] += gates[n, j]·dOutput[n]; dGates[n, j] += expertOutput[slots[n, j]]·dOutput[n]
    /// (nothing when dropped); either gradient may be null.</summary>
    void MoeCombineBackward(Tensor dOutput, Tensor expertOutput, Tensor slots, Tensor gates, Tensor? dExpertOutput, Tensor? dGates);
}

/// <summary>Hyper-parameters of one AdamW step; the defaults are GPT-2/3's.</summary>
public readonly record struct AdamWParameters(
    float LearningRate,
    int Step,                    // 1-based, for bias correction
    float Beta1 = 0.9f,
    float Beta2 = 0.95f,         // 0.95 rather than 0.999: steadier for large-batch LM training (GPT-3)
    float Epsilon = 1e-8f,
    float WeightDecay = 0.1f);   // applied to matrices only; callers pass 0 for biases, gains and norms
