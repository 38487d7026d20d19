using Llm.Autograd;
using Llm.Tensors;

namespace Llm.Models;

// Shapes: N = B·T tokens, C channels, E experts, k choices per token, cap = capacity per expert, F expert FFN width.

/// <summary>
/// A mixture-of-experts FFN in every <see cref="Every"/>-th layer (Switch Transformer: Fedus et al. 2021; GShard: Lepikhin
/// et al. 2020; GLaM: Du et al. 2021). Experts are FFNs of the decoder's activation (gated ones too) and width, with no
/// biases (Switch, GShard, GLaM and Mixtral have none). capacity = ⌈k·N·factor/E⌉ (rounded up, at least 1 token).
/// </summary>
public sealed record MoeConfig
{
    public int Experts { get; init; } = 8;                 // E: Switch-Base has 128; 8 keeps the tiny model's parameters small
    public int TopK { get; init; } = 1;                    // 1 = Switch (one expert per token), 2 = GShard/GLaM
    public double CapacityFactor { get; init; } = 1.25;    // training: Switch's 1.25 drops few tokens at little padding cost
    public double EvalCapacityFactor { get; init; } = 2.0; // evaluation: Switch's 2.0, more room so that fewer tokens drop
    public int Every { get; init; } = 2;                   // layer l is MoE when (l + 1) % Every == 0: GShard/Switch "every other"
    public float BalanceCoefficient { get; init; } = 0.01f;  // Switch's α for the load-balancing loss E·Σ_e f_e·P_e
    public float ZLossCoefficient { get; init; } = 0.001f;   // ST-MoE's router z-loss mean (log Σ e^logits)²
    public bool? NormalizeGates { get; init; }             // gates / Σ of the k chosen; null = true for k ≥ 2 (GShard), false for Switch

    public bool Normalize => NormalizeGates ?? TopK >= 2;

    /// <summary>Whether layer <paramref name="layer"/> (0-based) of a stack (the decoder, or either stack of an encoder-decoder) has the MoE FFN.</summary>
    public bool IsMoeLayer(int layer) => (layer + 1) % Every == 0;

    /// <summary>Tokens each expert takes: ⌈k·N·factor/E⌉, at least 1.</summary>
    public int Capacity(int tokens, bool training) =>
        Math.Max(1, (int)Math.Ceiling(TopK * (double)tokens * (training ? CapacityFactor : EvalCapacityFactor) / Experts));

    /// <summary>Throws naming the field when the numbers cannot form a layer.</summary>
    public void Validate(DecoderConfig decoder) => Validate(decoder.Layers, decoder.DeepNorm);

    /// <summary>As above for a stack of <paramref name="layers"/> blocks (each stack of an encoder-decoder is checked
    /// on its own; <paramref name="layersField"/> names its config field).</summary>
    public void Validate(int layers, bool deepNorm, string layersField = "n_layer")
    {
        if (Experts < 1) throw new ArgumentException($"moe.experts must be ≥ 1, got {Experts}");
        if (TopK < 1 || TopK > Experts) throw new ArgumentException($"moe.top_k must lie in [1, experts = {Experts}], got {TopK}");
        if (TopK > 8) throw new ArgumentException($"moe.top_k must be ≤ 8 (the Vulkan router's limit), got {TopK}");
        if (!(CapacityFactor > 0) || double.IsInfinity(CapacityFactor)) throw new ArgumentException($"moe.capacity_factor must be positive, got {CapacityFactor}");
        if (!(EvalCapacityFactor > 0) || double.IsInfinity(EvalCapacityFactor)) throw new ArgumentException($"moe.eval_capacity_factor must be positive, got {EvalCapacityFactor}");
        if (Every < 1) throw new ArgumentException($"moe.every must be ≥ 1, got {Every}");
        if (!(BalanceCoefficient >= 0)) throw new ArgumentException($"moe.balance_coefficient must be ≥ 0, got {BalanceCoefficient}");
        if (!(ZLossCoefficient >= 0)) throw new ArgumentException($"moe.z_loss_coefficient must be ≥ 0, got {ZLossCoefficient}");
        if (deepNorm) throw new ArgumentException("moe: DeepNorm's initialisation is defined for 2-D matrices, not the experts' [E, in, out]");
        if (layers < Every) throw new ArgumentException($"moe.every = {Every} exceeds {layersField} = {layers}: no layer would be MoE");
    }
}

/// <summary>One MoE layer's parameters: router [E, C] (logits = x·routerᵀ), experts' Up and Gate [E, C, F], Down [E, F, C].</summary>
public sealed record MoeWeights(Var Router, Var Up, Var? Gate, Var Down);

/// <summary>The MoE FFN's forward: route, gather per expert, one batched matmul per expert matrix, scatter back by the gates.</summary>
public static class MixtureOfExperts
{
    /// <summary>
    /// x [N, C] → [N, C]. logits = x·routerᵀ [N, E]; (probs, lse) = softmax; top-k route with the training or eval capacity;
    /// dispatch → [E, cap, C]; act(·Up) (⊙ ·Gate) ·Down batched over E; combine. Adds Switch's balance loss
    /// E·Σ_e load_e·mean_n probs[n, e] and the z-loss mean_n lse² to <paramref name="auxiliary"/>, the slots to <paramref name="slots"/>.
    /// </summary>
    public static Var Forward(Tape tape, Var x, MoeWeights w, MoeConfig moe, Func<Var, Var> activate,
        ICollection<AuxiliaryLoss> auxiliary, ICollection<Tensor> slots, int layer) =>
        Forward(tape, x, w, moe, activate, auxiliary, slots, layer.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>As above; <paramref name="layer"/> tags the losses' names (balance.{layer}, z.{layer}), e.g. "enc.1" or "dec.1".</summary>
    public static Var Forward(Tape tape, Var x, MoeWeights w, MoeConfig moe, Func<Var, Var> activate,
        ICollection<AuxiliaryLoss> auxiliary, ICollection<Tensor> slots, string layer)
    {
        int n = x.Shape[0], c = x.Shape[1], e = moe.Experts;
        var logits = tape.MatMul(x, w.Router, transB: true);                                 // [N, E]
        var (probs, lse) = tape.Softmax(logits);                                             // [N, E], [N]
        int capacity = moe.Capacity(n, tape.Recording);
        var routing = tape.MoeRoute(probs, moe.TopK, capacity, moe.Normalize);
        var dispatched = tape.Reshape(tape.MoeDispatch(x, routing.Slots, e * capacity), e, capacity, c);   // [E, cap, C]
        var up = tape.MatMul(dispatched, w.Up);                                              // [E, cap, F]
        var hidden = w.Gate is { } gate ? tape.Multiply(activate(tape.MatMul(dispatched, gate)), up) : activate(up);
        var expertOut = tape.MatMul(hidden, w.Down);                                         // [E, cap, C]
        var y = tape.MoeCombine(tape.Reshape(expertOut, e * capacity, c), routing.Slots, routing.Gates);   // [N, C]

        if (n > 0 && moe.BalanceCoefficient > 0)
        {
            // Σ_n probs[n]·load = N·Σ_e load_e·mean_n probs[n, e]; weight α·E/N makes the sum Switch's α·E·Σ_e f_e·P_e
            var balance = tape.MatMul(probs, new Var(routing.Load.Reshape(e, 1)));        // [N, 1]
            auxiliary.Add(new AuxiliaryLoss($"balance.{layer}", balance, moe.BalanceCoefficient * e / n));
        }
        if (n > 0 && moe.ZLossCoefficient > 0)
            auxiliary.Add(new AuxiliaryLoss($"z.{layer}", tape.Multiply(lse, lse), moe.ZLossCoefficient / n));   // [N]: lse²
        slots.Add(routing.Slots);
        return y;
    }
}
