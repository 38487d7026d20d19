using Llm.Tensors;

namespace Llm.Models;

/// <summary>LayerNorm (mean and variance, gain and bias) or RMSNorm (root mean square, gain only; Zhang &amp; Sennrich 2019).</summary>
public enum NormKind { LayerNorm, RmsNorm }

/// <summary>Where a block's norms sit. Pre: x + f(norm(x)) (GPT-2). Post: norm(x + f(x)) (the original Transformer, and
/// with DeepNorm's α: norm(α·x + f(x))). Sandwich: x + norm'(f(norm(x))) (CogView, NormFormer).</summary>
public enum NormPlacement { Pre, Post, Sandwich }

/// <summary>The FFN's activation. Gated forms use two input matrices: act(x·W) ⊙ (x·V) (Shazeer 2020, "GLU variants").</summary>
public enum Activation
{
    Relu, GeluExact, GeluTanh, Swish,
    Glu,        // σ(xW) ⊙ xV
    Bilinear,   // xW ⊙ xV
    ReGlu,      // relu(xW) ⊙ xV
    GeGlu,      // gelu(xW) ⊙ xV, exact erf GeLU
    GeGluTanh,  // gelu_tanh(xW) ⊙ xV: T5 v1.1's "gated-gelu" (HF's gelu_new)
    SwiGlu,     // swish_β(xW) ⊙ xV (LLaMA, PaLM)
}

/// <summary>None; learned absolute (GPT-2); sinusoidal (Vaswani et al.); ALiBi score biases (Press et al., BLOOM);
/// rotary (Su et al.; LLaMA, GPT-NeoX).</summary>
public enum PositionKind { None, Learned, Sinusoidal, Alibi, Rope }

/// <summary>Whose names and layouts the parameters take, so that checkpoints load and save as their own families do.</summary>
public enum WeightNaming
{
    Gpt2,    // wte, h.{l}.attn.c_attn (Conv1D [in, out], q|k|v blocked), ln_1, mlp.c_fc …
    Llama,   // model.embed_tokens, model.layers.{l}.self_attn.q_proj (nn.Linear [out, in]) …, lm_head
    Bloom,   // word_embeddings(+_layernorm), h.{l}.self_attention.query_key_value ([out, in], per-head q|k|v) …
    NeoX,    // gpt_neox.embed_in, gpt_neox.layers.{l}.attention.query_key_value (per-head q|k|v) …, embed_out
}

/// <summary>Which DeepNet constants a DeepNorm model takes (Wang et al. 2022, Table 1).</summary>
public enum DeepNormKind { DecoderOnly, EncoderOnly, EncoderDecoderEncoder, EncoderDecoderDecoder }

/// <summary>
/// A decoder-only transformer as a set of catalogue choices (survey §2.2), named as Hugging Face names them where a
/// name exists. The defaults are GPT-2's; the presets below pick the rest.
/// </summary>
public sealed record DecoderConfig
{
    public int VocabSize { get; init; } = 50257;     // n_vocab: 50,000 BPE merges + 256 bytes + <|endoftext|>
    public int ContextLength { get; init; } = 1024;  // n_positions: rows of a learned or sinusoidal table, RoPE/ALiBi's limit
    public int Layers { get; init; } = 12;           // n_layer
    public int Heads { get; init; } = 12;            // n_head; Channels must divide by it
    public int? KvHeads { get; init; }               // num_key_value_heads: null = Heads (multi-head); 1 = multi-query
    public int Channels { get; init; } = 768;        // n_embd
    public int? Hidden { get; init; }                // FFN width: null = 4C, or for gated FFNs 2/3·4C rounded up to MultipleOf
    public int MultipleOf { get; init; } = 256;      // LLaMA's multiple_of for the default gated width
    public float LayerNormEpsilon { get; init; } = 1e-5f;  // ε of every norm: layer_norm_epsilon / rms_norm_eps

    public NormKind Norm { get; init; } = NormKind.LayerNorm;
    public NormPlacement Placement { get; init; } = NormPlacement.Pre;
    public bool DeepNorm { get; init; }              // post-norm with the residual scaled by α and DeepNet's init gains β
    public DeepNormKind DeepNormKind { get; init; } = DeepNormKind.DecoderOnly;
    public double? DeepNormAlpha { get; init; }      // the residual's α; null = DeepNet's for DeepNormKind
    public bool EmbeddingNorm { get; init; }         // a norm right after the embedding (BLOOM's word_embeddings_layernorm)
    public bool Bias { get; init; } = true;          // biases of every linear layer and LayerNorm (PaLM and LLaMA have none)

    public Activation Activation { get; init; } = Activation.GeluTanh;   // GPT-2's "gelu_new"
    public float SwishBeta { get; init; } = 1f;      // β of Swish / SwiGLU: 1 is SiLU
    public bool ParallelBlock { get; init; }         // x + attn(norm₁(x)) + ffn(norm₂(x)) (GPT-J, GPT-NeoX, PaLM)

    public PositionKind Positions { get; init; } = PositionKind.Learned;
    public float RopeTheta { get; init; } = 10000f;  // rope_theta
    public float RotaryFraction { get; init; } = 1f; // rotary_pct: GPT-NeoX rotates the first quarter of each head

    public Visibility Visibility { get; init; } = Visibility.Causal;   // Prefix: GLM/UniLM's prefix decoder
    public int Window { get; init; }                 // sliding_window: 0 = none (Mistral uses 4096)
    public SparsePattern Sparse { get; init; } = SparsePattern.None;   // Child et al.'s strided or fixed patterns
    public int SparseStride { get; init; } = 128;
    public int SparseSummary { get; init; } = 8;

    public float EmbeddingDropout { get; init; }     // embd_pdrop: dropout of the embedding's output, in training only
    public float ResidualDropout { get; init; }      // resid_pdrop: dropout of each attention and FFN output before its residual add
    public float AttentionDropout { get; init; }     // attn_pdrop: dropout of the attention probabilities (inside the attention op)

    public bool TiedEmbeddings { get; init; } = true; // the output projection is the token embedding's transpose
    public WeightNaming Naming { get; init; } = WeightNaming.Gpt2;
    public MoeConfig? Moe { get; init; }             // null = dense; else every Moe.Every-th FFN is a mixture of experts

    // ---- derived ---------------------------------------------------------------------------------------------------

    public int HeadSize => Channels / Heads;
    public int KeyValueHeads => KvHeads ?? Heads;
    public bool Gated => Activation is Activation.Glu or Activation.Bilinear or Activation.ReGlu or Activation.GeGlu or Activation.GeGluTanh or Activation.SwiGlu;
    /// <summary>The FFN width: 4C, or LLaMA's 2/3·4C rounded up to MultipleOf for the gated forms (same parameter count).</summary>
    public int FfnWidth => Hidden ?? (Gated ? (8 * Channels / 3 + MultipleOf - 1) / MultipleOf * MultipleOf : 4 * Channels);
    /// <summary>Dimensions of each head that rotate: RotaryFraction·hs, even.</summary>
    public int RotaryDims => Positions == PositionKind.Rope ? (int)(RotaryFraction * HeadSize) / 2 * 2 : 0;
    /// <summary>The width of the fused q|k|v projection: (NH + 2·NKV)·hs.</summary>
    public int QkvWidth => (Heads + 2 * KeyValueHeads) * HeadSize;

    /// <summary>DeepNet's (α, β) for this config: the residual's scale and the init gain of v, out and the FFN.</summary>
    public (double Alpha, double Beta) DeepNormConstants(int decoderLayers = 0)
    {
        double n = Layers, m = decoderLayers;
        return DeepNormKind switch
        {
            DeepNormKind.DecoderOnly or DeepNormKind.EncoderOnly => (Math.Pow(2 * n, 0.25), Math.Pow(8 * n, -0.25)),
            DeepNormKind.EncoderDecoderEncoder => (0.81 * Math.Pow(Math.Pow(n, 4) * m, 1.0 / 16), 0.87 * Math.Pow(Math.Pow(n, 4) * m, -1.0 / 16)),
            _ => (Math.Pow(3 * n, 0.25), Math.Pow(12 * n, -0.25)),
        };
    }

    // ---- presets ---------------------------------------------------------------------------------------------------

    /// <summary>124M parameters: the smallest released GPT-2.</summary>
    public static DecoderConfig Gpt2 { get; } = new();
    /// <summary>A CPU demo and test model: ~0.8M parameters with the byte tokenizer, trains in minutes on 2 cores.</summary>
    public static DecoderConfig Tiny { get; } = new() { VocabSize = 256, ContextLength = 64, Layers = 4, Heads = 4, Channels = 128 };
    /// <summary>Even smaller, for unit tests and gradient checks.</summary>
    public static DecoderConfig Micro { get; } = new() { VocabSize = 256, ContextLength = 16, Layers = 2, Heads = 2, Channels = 16 };

    /// <summary>LLaMA 7B (Touvron et al. 2023): RMSNorm pre-norm, SwiGLU (hidden 11008), RoPE, no biases, untied head.</summary>
    public static DecoderConfig Llama7B { get; } = new()
    {
        VocabSize = 32000, ContextLength = 2048, Layers = 32, Heads = 32, Channels = 4096, Hidden = 11008, LayerNormEpsilon = 1e-6f,
        Norm = NormKind.RmsNorm, Bias = false, Activation = Activation.SwiGlu, Positions = PositionKind.Rope, TiedEmbeddings = false,
        Naming = WeightNaming.Llama,
    };
    /// <summary>BLOOM-560M (BigScience 2022): ALiBi, an embedding LayerNorm, GeLU, tied head.</summary>
    public static DecoderConfig Bloom560M { get; } = new()
    {
        VocabSize = 250880, ContextLength = 2048, Layers = 24, Heads = 16, Channels = 1024, Positions = PositionKind.Alibi,
        EmbeddingNorm = true, Naming = WeightNaming.Bloom,
    };
    /// <summary>Pythia-160M (GPT-NeoX; Biderman et al. 2023): parallel block, rotary on a quarter of each head, untied head.</summary>
    public static DecoderConfig Pythia160M { get; } = new()
    {
        VocabSize = 50304, ContextLength = 2048, Layers = 12, Heads = 12, Channels = 768, Activation = Activation.GeluExact,
        ParallelBlock = true, Positions = PositionKind.Rope, RotaryFraction = 0.25f, TiedEmbeddings = false, Naming = WeightNaming.NeoX,
    };
    /// <summary>PaLM 8B's shape (Chowdhery et al. 2022): parallel block, SwiGLU, multi-query, RoPE, no biases.</summary>
    public static DecoderConfig Palm8B { get; } = new()
    {
        VocabSize = 256000, ContextLength = 2048, Layers = 32, Heads = 16, KvHeads = 1, Channels = 4096, Hidden = 16384,
        Norm = NormKind.LayerNorm, Bias = false, Activation = Activation.SwiGlu, ParallelBlock = true, Positions = PositionKind.Rope,
        Naming = WeightNaming.Llama,
    };
    /// <summary>GLM-130B's choices (Zeng et al. 2022) at GLM-10B's shape: DeepNorm post-norm, prefix decoder, GeGLU, RoPE.</summary>
    public static DecoderConfig Glm10B { get; } = new()
    {
        VocabSize = 50304, ContextLength = 1024, Layers = 48, Heads = 64, Channels = 4096, Placement = NormPlacement.Post, DeepNorm = true,
        Activation = Activation.GeGlu, Positions = PositionKind.Rope, Visibility = Visibility.Prefix,
    };

    /// <summary>The CPU-sized form of a family's choices: 4 layers, 128 channels, the byte vocabulary.</summary>
    private static DecoderConfig TinyOf(DecoderConfig big, int heads = 4, int? kvHeads = null) => big with
    {
        VocabSize = 256, ContextLength = 64, Layers = 4, Heads = heads, KvHeads = kvHeads, Channels = 128,
        Hidden = big.Gated ? 352 : null,   // 352 = 2/3·4C rounded up to 32; null = 4C = 512, as the family's config says it
    };

    private static readonly Dictionary<string, DecoderConfig> Presets = new()
    {
        ["gpt2"] = Gpt2, ["tiny"] = Tiny, ["micro"] = Micro, ["gpt2-tiny"] = Tiny,
        ["llama"] = Llama7B, ["llama-tiny"] = TinyOf(Llama7B, heads: 4, kvHeads: 2),
        ["bloom"] = Bloom560M, ["bloom-tiny"] = TinyOf(Bloom560M),
        ["neox"] = Pythia160M, ["neox-tiny"] = TinyOf(Pythia160M),
        ["palm"] = Palm8B, ["palm-tiny"] = TinyOf(Palm8B, kvHeads: 1),
        ["glm"] = Glm10B, ["glm-tiny"] = TinyOf(Glm10B),
        // Switch (top-1) and GShard (top-2) at the tiny shape: 8 experts in every other layer; micro ones for gradient checks
        ["switch-tiny"] = Tiny with { Moe = new MoeConfig() },
        ["gshard-tiny"] = Tiny with { Moe = new MoeConfig { TopK = 2 } },
        ["switch-micro"] = Micro with { Moe = new MoeConfig { Experts = 4 } },
        ["gshard-micro"] = Micro with { Moe = new MoeConfig { Experts = 4, TopK = 2 } },
    };

    public static IReadOnlyList<string> PresetNames { get; } = [.. Presets.Keys];

    /// <summary>A preset by name; the vocabulary follows the tokenizer when it is given.</summary>
    public static DecoderConfig FromPreset(string name) => Presets.TryGetValue(name.ToLowerInvariant(), out var config) ? config
        : throw new ArgumentException($"unknown preset '{name}'; known: {string.Join(", ", PresetNames)}");

    // ---- validation and parameters -----------------------------------------------------------------------------------

    /// <summary>Throws with the offending field when the numbers or choices cannot form a model.</summary>
    public DecoderConfig Validate()
    {
        if (VocabSize <= 0) throw new ArgumentException($"vocab_size must be positive, got {VocabSize}");
        if (ContextLength <= 0) throw new ArgumentException($"n_positions must be positive, got {ContextLength}");
        if (Layers <= 0) throw new ArgumentException($"n_layer must be positive, got {Layers}");
        if (Heads <= 0 || Channels <= 0 || Channels % Heads != 0)
            throw new ArgumentException($"n_embd ({Channels}) must be a positive multiple of n_head ({Heads})");
        if (KeyValueHeads <= 0 || Heads % KeyValueHeads != 0)
            throw new ArgumentException($"num_key_value_heads ({KeyValueHeads}) must divide n_head ({Heads})");
        if (FfnWidth <= 0) throw new ArgumentException($"the FFN width (intermediate_size) must be positive, got {FfnWidth}");
        if (!(LayerNormEpsilon > 0)) throw new ArgumentException($"layer_norm_epsilon must be positive, got {LayerNormEpsilon}");
        if (DeepNorm && Placement != NormPlacement.Post) throw new ArgumentException("DeepNorm is a post-norm: set Placement = Post");
        if (Positions == PositionKind.Rope && (RotaryFraction <= 0 || RotaryFraction > 1 || RotaryDims == 0))
            throw new ArgumentException($"rotary_pct {RotaryFraction} gives {RotaryDims} rotary dimensions of head size {HeadSize}: needs at least 2");
        if (!(RopeTheta > 1)) throw new ArgumentException($"rope_theta must exceed 1, got {RopeTheta}");
        if (Window < 0) throw new ArgumentException($"sliding_window must be ≥ 0, got {Window}");
        if (Sparse != SparsePattern.None && (SparseStride < 1 || Sparse == SparsePattern.Fixed && (SparseSummary < 1 || SparseSummary > SparseStride)))
            throw new ArgumentException($"sparse stride {SparseStride} and summary {SparseSummary} need 1 ≤ summary ≤ stride");
        foreach (var (name, p) in new[] { ("embd_pdrop", EmbeddingDropout), ("resid_pdrop", ResidualDropout), ("attn_pdrop", AttentionDropout) })
            if (!(p >= 0 && p < 1)) throw new ArgumentException($"{name} must lie in [0, 1), got {p}");
        if (SwishBeta <= 0 || !float.IsFinite(SwishBeta)) throw new ArgumentException($"the Swish β must be positive, got {SwishBeta}");
        Moe?.Validate(this);
        WeightNames.For(this).Check(this);
        return this;
    }

    /// <summary>The parameter tensors in this config's naming and layout. Decay marks the matrices that AdamW's weight
    /// decay applies to.</summary>
    public IEnumerable<ParameterSpec> ParameterSpecs() => WeightNames.For(this).Specs(this);

    public long ParameterCount() => ParameterSpecs().Sum(s => (long)Tensor.ElementCount(s.Shape));
}

/// <summary>Name, shape and weight-decay flag of one parameter tensor.</summary>
public sealed record ParameterSpec(string Name, int[] Shape, bool Decay);
