using Llm.Tensors;

namespace Llm.Models;

/// <summary>
/// An encoder-decoder transformer (Raffel et al. 2020, T5): a bidirectional encoder and a causal decoder whose blocks
/// add cross-attention over the encoder's output, with T5's relative position bias. Fields are named as Hugging Face's
/// T5Config names them (in the comments); the defaults are t5-small's. Parameter names are
/// T5ForConditionalGeneration's, so checkpoints load and save as the hub's.
/// </summary>
public sealed record EncoderDecoderConfig
{
    public int VocabSize { get; init; } = 32128;      // vocab_size: 32,000 SentencePiece pieces + 100 sentinels, padded to 128
    public int ContextLength { get; init; } = 512;    // the longest encoder or decoder sequence (relative positions need no table)
    public int Channels { get; init; } = 512;         // d_model
    public int Heads { get; init; } = 8;              // num_heads
    public int HeadSize { get; init; } = 64;          // d_kv: Heads·HeadSize need not equal Channels
    public int Hidden { get; init; } = 2048;          // d_ff
    public int EncoderLayers { get; init; } = 6;      // num_layers
    public int DecoderLayers { get; init; } = 6;      // num_decoder_layers
    public int RelativeBuckets { get; init; } = 32;   // relative_attention_num_buckets
    public int RelativeMaxDistance { get; init; } = 128; // relative_attention_max_distance: beyond it, one bucket
    public float LayerNormEpsilon { get; init; } = 1e-6f; // layer_norm_epsilon

    public NormKind Norm { get; init; } = NormKind.RmsNorm;           // T5's LayerNorm is RMS-style: no mean, no bias
    public NormPlacement Placement { get; init; } = NormPlacement.Pre;
    public bool Bias { get; init; }                                   // T5 has no biases
    public Activation Activation { get; init; } = Activation.Relu;    // feed_forward_proj: "relu" (T5) or "gated-gelu" = GeGluTanh (v1.1)
    public float Dropout { get; init; }                               // dropout_rate (T5 trains with 0.1; 0 here for CPU demos)
    public bool TiedEmbeddings { get; init; } = true;                 // tie_word_embeddings: the head is shared, output scaled by d^−½
    /// <summary>Mixture-of-experts FFNs (Switch Transformer, Fedus et al. 2021, is this T5 with them): null = every FFN
    /// dense (T5); otherwise block l of each stack (encoder and decoder, counted separately) has the MoE FFN where
    /// <see cref="MoeConfig.IsMoeLayer"/> says (Switch: every other one), with the config's activation and d_ff.</summary>
    public MoeConfig? Moe { get; init; }

    public int PadToken { get; init; }                                // pad_token_id, also decoder_start_token_id
    public int EosToken { get; init; } = 1;                           // eos_token_id
    public int DecoderStartToken { get; init; }                       // decoder_start_token_id

    // ---- derived -----------------------------------------------------------------------------------------------------
    public int InnerWidth => Heads * HeadSize;                        // inner_dim of q, k, v and o
    public bool Gated => Activation is Activation.Glu or Activation.Bilinear or Activation.ReGlu or Activation.GeGlu
        or Activation.GeGluTanh or Activation.SwiGlu;

    // ---- presets -----------------------------------------------------------------------------------------------------

    /// <summary>t5-small (60M): 6 + 6 layers, d 512, ReLU FFN 2048, tied head.</summary>
    public static EncoderDecoderConfig T5Small { get; } = new();
    /// <summary>google/t5-v1_1-small's shape: GEGLU (tanh GeLU) FFN 1024, 8 + 8 layers, 6 heads, untied head.</summary>
    public static EncoderDecoderConfig T5V11Small { get; } = new()
    {
        Channels = 512, Heads = 6, HeadSize = 64, Hidden = 1024, EncoderLayers = 8, DecoderLayers = 8,
        Activation = Activation.GeGluTanh, TiedEmbeddings = false,
    };
    /// <summary>A CPU demo: byte vocabulary (+ sentinels), 2 + 2 layers of d 128; trains in minutes on 2 cores.</summary>
    public static EncoderDecoderConfig T5Tiny { get; } = new()
    {
        VocabSize = 256, ContextLength = 128, Channels = 128, Heads = 4, HeadSize = 32, Hidden = 512,
        EncoderLayers = 2, DecoderLayers = 2, RelativeBuckets = 32, RelativeMaxDistance = 128,
    };
    /// <summary>For unit tests and fp64 gradient checks.</summary>
    public static EncoderDecoderConfig T5Micro { get; } = new()
    {
        VocabSize = 64, ContextLength = 16, Channels = 16, Heads = 2, HeadSize = 8, Hidden = 32,
        EncoderLayers = 2, DecoderLayers = 2, RelativeBuckets = 8, RelativeMaxDistance = 16,
    };

    /// <summary>Switch Transformer's shape at t5-tiny's size: 8 experts, top-1, in every other FFN of both stacks.</summary>
    public static EncoderDecoderConfig SwitchT5Tiny { get; } = T5Tiny with { Moe = new MoeConfig { Experts = 8, TopK = 1, Every = 2 } };
    /// <summary>t5-micro with 4 experts, top-1, every other FFN: for unit tests and fp64 gradient checks.</summary>
    public static EncoderDecoderConfig SwitchT5Micro { get; } = T5Micro with { Moe = new MoeConfig { Experts = 4, TopK = 1, Every = 2 } };

    private static readonly Dictionary<string, EncoderDecoderConfig> Presets = new()
    {
        ["t5-small"] = T5Small, ["t5-v1_1-small"] = T5V11Small, ["t5-tiny"] = T5Tiny, ["t5-micro"] = T5Micro,
        ["switch-t5-tiny"] = SwitchT5Tiny, ["switch-t5-micro"] = SwitchT5Micro,
    };
    public static IReadOnlyList<string> PresetNames { get; } = [.. Presets.Keys];
    public static bool IsPreset(string name) => Presets.ContainsKey(name.ToLowerInvariant());
    public static EncoderDecoderConfig FromPreset(string name) => Presets.TryGetValue(name.ToLowerInvariant(), out var config) ? config
        : throw new ArgumentException($"unknown encoder-decoder preset '{name}'; known: {string.Join(", ", PresetNames)}");

    // ---- parameters: T5ForConditionalGeneration's names and nn.Linear [out, in] layouts -------------------------------

    /// <summary>Every parameter in checkpoint order. Attention: q, k, v [inner, C], o [C, inner]; the relative bias
    /// [buckets, NH] lives in block 0 of each stack and is shared by its layers. FFN: wi [F, C] (gated: wi_0 is the
    /// activated half, wi_1 the linear one), wo [C, F]. The tied head is shared.weight (no lm_head.weight). An MoE
    /// block's FFN is "mlp" in place of DenseReluDense: router.classifier [E, C] and the experts' bias-free matrices
    /// stacked [E, C, F] (wi, or wi_0 activated and wi_1 linear) and [E, F, C] (wo), each expert [in, out]. Hugging
    /// Face's SwitchTransformers stores each expert on its own (experts.expert_{j}.wi.weight [F, C]); ours are stacked
    /// so that one batched matmul runs every expert.</summary>
    public IEnumerable<NamedWeight> Weights()
    {
        int C = Channels, inner = InnerWidth, F = Hidden;
        yield return new("shared.weight", [VocabSize, C], ParameterRole.Embedding);
        foreach (var (stack, layers) in new[] { ("encoder", EncoderLayers), ("decoder", DecoderLayers) })
        {
            for (int l = 0; l < layers; l++)
            {
                string b = $"{stack}.block.{l}.layer";
                IEnumerable<NamedWeight> Attention(string prefix)
                {
                    yield return new($"{prefix}.q.weight", [inner, C], ParameterRole.Query, OutIn: true);
                    yield return new($"{prefix}.k.weight", [inner, C], ParameterRole.Key, OutIn: true);
                    yield return new($"{prefix}.v.weight", [inner, C], ParameterRole.Value, OutIn: true);
                    yield return new($"{prefix}.o.weight", [C, inner], ParameterRole.Out, OutIn: true);
                    if (Bias)
                        foreach (var (name, width) in new[] { ("q", inner), ("k", inner), ("v", inner), ("o", C) })
                            yield return new($"{prefix}.{name}.bias", [width], ParameterRole.Bias);
                }
                foreach (var w in Attention($"{b}.0.SelfAttention")) yield return w;
                if (l == 0) yield return new($"{b}.0.SelfAttention.relative_attention_bias.weight", [RelativeBuckets, Heads], ParameterRole.Position);
                foreach (var w in NormWeights($"{b}.0.layer_norm")) yield return w;
                int ffn = 1;
                if (stack == "decoder")
                {
                    foreach (var w in Attention($"{b}.1.EncDecAttention")) yield return w;
                    foreach (var w in NormWeights($"{b}.1.layer_norm")) yield return w;
                    ffn = 2;
                }
                if (Moe is { } moe && moe.IsMoeLayer(l))
                {
                    string m = $"{b}.{ffn}.mlp";
                    int E = moe.Experts;
                    yield return new($"{m}.router.classifier.weight", [E, C], ParameterRole.Router, OutIn: true);
                    if (Gated)
                    {
                        yield return new($"{m}.experts.wi_0.weight", [E, C, F], ParameterRole.Gate);
                        yield return new($"{m}.experts.wi_1.weight", [E, C, F], ParameterRole.Up);
                    }
                    else yield return new($"{m}.experts.wi.weight", [E, C, F], ParameterRole.Up);
                    yield return new($"{m}.experts.wo.weight", [E, F, C], ParameterRole.Down);
                    foreach (var w in NormWeights($"{b}.{ffn}.layer_norm")) yield return w;
                    continue;
                }
                string d = $"{b}.{ffn}.DenseReluDense";
                if (Gated)
                {
                    yield return new($"{d}.wi_0.weight", [F, C], ParameterRole.Gate, OutIn: true);
                    yield return new($"{d}.wi_1.weight", [F, C], ParameterRole.Up, OutIn: true);
                }
                else yield return new($"{d}.wi.weight", [F, C], ParameterRole.Up, OutIn: true);
                yield return new($"{d}.wo.weight", [C, F], ParameterRole.Down, OutIn: true);
                if (Bias)
                {
                    foreach (var half in Gated ? new[] { "wi_0", "wi_1" } : ["wi"]) yield return new($"{d}.{half}.bias", [F], ParameterRole.Bias);
                    yield return new($"{d}.wo.bias", [C], ParameterRole.Bias);
                }
                foreach (var w in NormWeights($"{b}.{ffn}.layer_norm")) yield return w;
            }
            foreach (var w in NormWeights($"{stack}.final_layer_norm")) yield return w;
        }
        if (!TiedEmbeddings) yield return new("lm_head.weight", [VocabSize, C], ParameterRole.Head, OutIn: true);
    }

    private IEnumerable<NamedWeight> NormWeights(string prefix)
    {
        yield return new($"{prefix}.weight", [Channels], ParameterRole.NormWeight);
        if (Norm == NormKind.LayerNorm && Bias) yield return new($"{prefix}.bias", [Channels], ParameterRole.NormBias);
    }

    public IEnumerable<ParameterSpec> ParameterSpecs() => Weights().Select(w => new ParameterSpec(w.Name, w.Shape, w.Decay));
    public long ParameterCount() => ParameterSpecs().Sum(s => (long)Tensor.ElementCount(s.Shape));

    /// <summary>Throws with the offending field when the numbers or choices cannot form a model.</summary>
    public EncoderDecoderConfig Validate()
    {
        foreach (var (name, value) in new[] { ("vocab_size", VocabSize), ("n_positions", ContextLength), ("d_model", Channels), ("num_heads", Heads),
                     ("d_kv", HeadSize), ("d_ff", Hidden), ("num_layers", EncoderLayers), ("num_decoder_layers", DecoderLayers),
                     ("relative_attention_num_buckets", RelativeBuckets), ("relative_attention_max_distance", RelativeMaxDistance) })
            if (value <= 0) throw new ArgumentException($"{name} must be positive, got {value}");
        if (RelativeBuckets < 4) throw new ArgumentException($"relative_attention_num_buckets must be ≥ 4 (half exact, half log-spaced, both directions), got {RelativeBuckets}");
        if (!(LayerNormEpsilon > 0)) throw new ArgumentException($"layer_norm_epsilon must be positive, got {LayerNormEpsilon}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"dropout_rate must lie in [0, 1), got {Dropout}");
        if (Placement == NormPlacement.Sandwich) throw new ArgumentException("the encoder-decoder takes pre or post norms");
        if (Moe is { } moe)
        {
            moe.Validate(EncoderLayers, deepNorm: false, "num_layers");
            moe.Validate(DecoderLayers, deepNorm: false, "num_decoder_layers");
        }
        foreach (var (name, id) in new[] { ("pad_token_id", PadToken), ("eos_token_id", EosToken), ("decoder_start_token_id", DecoderStartToken) })
            if (id < 0 || id >= VocabSize) throw new ArgumentException($"{name} {id} is outside the vocabulary of {VocabSize}");
        return this;
    }
}
