namespace Llm.Models;

// Shapes: V vocab, C channels, F FFN width, W = (NH + 2·NKV)·hs the fused q|k|v width, ctx context length.

/// <summary>A parameter's role, which decides its initialisation and where the forward uses it.</summary>
public enum ParameterRole { Embedding, Position, Head, Query, Key, Value, Qkv, Out, Up, Gate, Down, NormWeight, NormBias, Bias, Router }

/// <summary>One parameter of a family's naming: its name, shape, role and whether its matrix is stored [out, in]
/// (nn.Linear, used as xWᵀ) or [in, out] (GPT-2's Conv1D, used as xW).</summary>
public sealed record NamedWeight(string Name, int[] Shape, ParameterRole Role, bool OutIn = false)
{
    /// <summary>Matrices (not norms or biases) take AdamW's weight decay.</summary>
    public bool Decay => Role is not (ParameterRole.NormWeight or ParameterRole.NormBias or ParameterRole.Bias);
}

/// <summary>Where the parameters of one block are, by role; null where the config has no such tensor.</summary>
public sealed record BlockNames(string Norm1, string? Norm2, string? PostNorm1, string? PostNorm2,
    string? Qkv, string? Query, string? Key, string? Value, string Out, string Up, string? Gate, string Down)
{
    /// <summary>The router of an MoE layer (then Up, Gate and Down name the experts' stacked matrices); null for a dense FFN.</summary>
    public string? Router { get; init; }
}

/// <summary>
/// How one checkpoint family names and lays out a decoder's parameters, so that a Hugging Face folder of that family
/// loads as it is and saves as it was. Each family lists its tensors for a config and refuses, naming the field, a
/// choice its layout cannot hold (BLOOM's and NeoX's fused per-head q|k|v has one k and v per head: no GQA).
/// </summary>
public abstract class WeightNames
{
    public static WeightNames For(DecoderConfig config) => config.Naming switch
    {
        WeightNaming.Gpt2 => Gpt2Names.Instance,
        WeightNaming.Llama => LlamaNames.Instance,
        WeightNaming.Bloom => BloomNames.Instance,
        _ => NeoXNames.Instance,
    };

    public abstract string TokenEmbedding { get; }
    public virtual string? PositionEmbedding(DecoderConfig c) => null;
    public abstract string? EmbeddingNorm(DecoderConfig c);
    public abstract BlockNames Block(DecoderConfig c, int layer);
    public abstract string FinalNorm { get; }
    public abstract string LmHead { get; }
    /// <summary>Whether matrices are stored [out, in] (nn.Linear).</summary>
    public abstract bool OutIn { get; }
    /// <summary>Whether a fused q|k|v is per head ([NH, 3, hs] along its outputs) rather than blocked (q, then k, then v).</summary>
    public virtual bool PerHeadQkv => false;

    /// <summary>Throws, naming the field, when the family's layout cannot hold a choice of the config.</summary>
    public virtual void Check(DecoderConfig c) { }

    /// <summary>Every parameter in the family's order (the order of its checkpoint files).</summary>
    public IEnumerable<NamedWeight> Weights(DecoderConfig c)
    {
        int C = c.Channels, F = c.FfnWidth, hs = c.HeadSize;
        bool normBias = c.Norm == NormKind.LayerNorm && c.Bias;
        IEnumerable<NamedWeight> Norm(string? name)
        {
            if (name is null) yield break;
            yield return new(name + ".weight", [C], ParameterRole.NormWeight);
            if (normBias) yield return new(name + ".bias", [C], ParameterRole.NormBias);
        }
        IEnumerable<NamedWeight> Linear(string? name, int inputs, int outputs, ParameterRole role)
        {
            if (name is null) yield break;
            yield return new(name + ".weight", OutIn ? [outputs, inputs] : [inputs, outputs], role, OutIn);
            if (c.Bias) yield return new(name + ".bias", [outputs], ParameterRole.Bias);
        }

        yield return new(TokenEmbedding, [c.VocabSize, C], ParameterRole.Embedding);
        if (PositionEmbedding(c) is { } wpe) yield return new(wpe, [c.ContextLength, C], ParameterRole.Position);
        foreach (var w in Norm(EmbeddingNorm(c))) yield return w;
        for (int l = 0; l < c.Layers; l++)
        {
            var b = BlockOf(c, l);
            foreach (var w in BlockOrder(c, b, Norm, Linear, C, F, hs)) yield return w;
        }
        foreach (var w in Norm(c.Placement == NormPlacement.Post ? null : FinalNorm)) yield return w;
        if (!c.TiedEmbeddings) yield return new(LmHead, [c.VocabSize, C], ParameterRole.Head, OutIn: true);
    }

    /// <summary>One block's tensors in the family's order; the default is GPT-2's (ln_1, attn, ln_2, mlp).</summary>
    protected virtual IEnumerable<NamedWeight> BlockOrder(DecoderConfig c, BlockNames b, Func<string?, IEnumerable<NamedWeight>> norm,
        Func<string?, int, int, ParameterRole, IEnumerable<NamedWeight>> linear, int C, int F, int hs)
    {
        foreach (var w in norm(b.Norm1)) yield return w;
        foreach (var w in linear(b.Qkv, C, c.QkvWidth, ParameterRole.Qkv)) yield return w;
        foreach (var w in linear(b.Query, C, c.Heads * hs, ParameterRole.Query)) yield return w;
        foreach (var w in linear(b.Key, C, c.KeyValueHeads * hs, ParameterRole.Key)) yield return w;
        foreach (var w in linear(b.Value, C, c.KeyValueHeads * hs, ParameterRole.Value)) yield return w;
        foreach (var w in linear(b.Out, C, C, ParameterRole.Out)) yield return w;
        foreach (var w in norm(b.PostNorm1)) yield return w;
        foreach (var w in norm(b.Norm2)) yield return w;
        foreach (var w in Ffn(c, b, linear, C, F)) yield return w;
        foreach (var w in norm(b.PostNorm2)) yield return w;
    }

    /// <summary>A block's FFN: dense (gate, up, down), or for an MoE layer the router [E, C] and the experts' stacked,
    /// bias-free matrices [E, C, F] (gate, up) and [E, F, C] (down), in every family's [in, out] per expert.</summary>
    protected static IEnumerable<NamedWeight> Ffn(DecoderConfig c, BlockNames b, Func<string?, int, int, ParameterRole, IEnumerable<NamedWeight>> linear, int C, int F)
    {
        if (b.Router is { } router)
        {
            int E = c.Moe!.Experts;
            yield return new(router + ".weight", [E, C], ParameterRole.Router, OutIn: true);
            if (b.Gate is { } gate) yield return new(gate + ".weight", [E, C, F], ParameterRole.Gate);
            yield return new(b.Up + ".weight", [E, C, F], ParameterRole.Up);
            yield return new(b.Down + ".weight", [E, F, C], ParameterRole.Down);
            yield break;
        }
        foreach (var w in linear(b.Gate, C, F, ParameterRole.Gate)) yield return w;
        foreach (var w in linear(b.Up, C, F, ParameterRole.Up)) yield return w;
        foreach (var w in linear(b.Down, F, C, ParameterRole.Down)) yield return w;
    }

    /// <summary>The block's names with its FFN made MoE where the config says: "….mlp.router", and the experts' matrices
    /// under "….mlp.experts." (h.{l}.mlp.experts.c_fc for GPT-2, model.layers.{l}.mlp.experts.up_proj for LLaMA).</summary>
    public BlockNames BlockOf(DecoderConfig c, int layer)
    {
        var b = Block(c, layer);
        if (c.Moe is not { } moe || !moe.IsMoeLayer(layer)) return b;
        static string Expert(string name) => name.Replace(".mlp.", ".mlp.experts.");
        int mlp = b.Up.IndexOf(".mlp.", StringComparison.Ordinal);
        if (mlp < 0) throw new ArgumentException($"moe: the FFN '{b.Up}' of this naming has no '.mlp.' module to hold experts");
        return b with { Router = b.Up[..mlp] + ".mlp.router", Up = Expert(b.Up), Gate = b.Gate is null ? null : Expert(b.Gate), Down = Expert(b.Down) };
    }

    public IEnumerable<ParameterSpec> Specs(DecoderConfig c) => Weights(c).Select(w => new ParameterSpec(w.Name, w.Shape, w.Decay));

    /// <summary>Whether the block has a second norm: all but the parallel block that shares one (none here: NeoX has two).</summary>
    protected static bool PostNorms(DecoderConfig c) => c.Placement == NormPlacement.Sandwich;
}

/// <summary>Hugging Face GPT-2 (GPT2LMHeadModel), extended for the choices GPT-2 never made: ln_emb, c_gate, ln_*_post,
/// lm_head. The checkpoints of every GPT-2 run so far are unchanged.</summary>
public sealed class Gpt2Names : WeightNames
{
    public static Gpt2Names Instance { get; } = new();
    public override string TokenEmbedding => "wte.weight";
    public override string? PositionEmbedding(DecoderConfig c) => c.Positions == PositionKind.Learned ? "wpe.weight" : null;
    public override string? EmbeddingNorm(DecoderConfig c) => c.EmbeddingNorm ? "ln_emb" : null;
    public override string FinalNorm => "ln_f";
    public override string LmHead => "lm_head.weight";
    public override bool OutIn => false;
    public override BlockNames Block(DecoderConfig c, int l) => new($"h.{l}.ln_1", $"h.{l}.ln_2",
        PostNorms(c) ? $"h.{l}.ln_1_post" : null, PostNorms(c) ? $"h.{l}.ln_2_post" : null,
        $"h.{l}.attn.c_attn", null, null, null, $"h.{l}.attn.c_proj", $"h.{l}.mlp.c_fc", c.Gated ? $"h.{l}.mlp.c_gate" : null, $"h.{l}.mlp.c_proj");
}

/// <summary>Hugging Face LLaMA (LlamaForCausalLM; also Mistral's GQA configs): separate q, k, v projections,
/// gate_proj/up_proj/down_proj, nn.Linear layouts.</summary>
public sealed class LlamaNames : WeightNames
{
    public static LlamaNames Instance { get; } = new();
    public override string TokenEmbedding => "model.embed_tokens.weight";
    public override string? EmbeddingNorm(DecoderConfig c) => c.EmbeddingNorm ? "model.embed_layernorm" : null;
    public override string FinalNorm => "model.norm";
    public override string LmHead => "lm_head.weight";
    public override bool OutIn => true;
    public override BlockNames Block(DecoderConfig c, int l)
    {
        string p = $"model.layers.{l}.";
        return new(p + "input_layernorm", p + "post_attention_layernorm",
            PostNorms(c) ? p + "post_attention_output_layernorm" : null, PostNorms(c) ? p + "post_mlp_output_layernorm" : null,
            null, p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj", p + "self_attn.o_proj",
            p + "mlp.up_proj", c.Gated ? p + "mlp.gate_proj" : null, p + "mlp.down_proj");
    }

    public override void Check(DecoderConfig c)
    {
        if (c.Positions == PositionKind.Learned)
            throw new ArgumentException("position_embedding_type: the LLaMA naming has no learned position table; use RoPE, ALiBi, sinusoidal or none");
    }
}

/// <summary>Hugging Face BLOOM (BloomForCausalLM): word_embeddings_layernorm, a fused per-head query_key_value.</summary>
public sealed class BloomNames : WeightNames
{
    public static BloomNames Instance { get; } = new();
    public override string TokenEmbedding => "word_embeddings.weight";
    public override string? EmbeddingNorm(DecoderConfig c) => c.EmbeddingNorm ? "word_embeddings_layernorm" : null;
    public override string FinalNorm => "ln_f";
    public override string LmHead => "lm_head.weight";
    public override bool OutIn => true;
    public override bool PerHeadQkv => true;
    public override BlockNames Block(DecoderConfig c, int l) => FusedBlock($"h.{l}.", "self_attention");

    /// <summary>A BLOOM or NeoX block under prefix <paramref name="p"/>: the two name the same modules, apart from the
    /// attention's.</summary>
    internal static BlockNames FusedBlock(string p, string attention) =>
        new(p + "input_layernorm", p + "post_attention_layernorm", null, null, p + attention + ".query_key_value", null, null, null,
            p + attention + ".dense", p + "mlp.dense_h_to_4h", null, p + "mlp.dense_4h_to_h");

    public override void Check(DecoderConfig c) => CheckFusedPerHead(c, "BLOOM");

    internal static void CheckFusedPerHead(DecoderConfig c, string family)
    {
        if (c.KeyValueHeads != c.Heads)
            throw new ArgumentException($"num_key_value_heads {c.KeyValueHeads}: {family}'s fused per-head query_key_value has one key and value per head ({c.Heads})");
        if (c.Gated) throw new ArgumentException($"hidden_act {c.Activation}: {family}'s MLP has no gate matrix");
        if (c.Placement == NormPlacement.Sandwich) throw new ArgumentException($"{family} has no sandwich norms");
        if (c.Positions == PositionKind.Learned) throw new ArgumentException($"{family} has no learned position table");
    }
}

/// <summary>Hugging Face GPT-NeoX (GPTNeoXForCausalLM, the Pythia suite): a fused per-head query_key_value, embed_out.</summary>
public sealed class NeoXNames : WeightNames
{
    public static NeoXNames Instance { get; } = new();
    public override string TokenEmbedding => "gpt_neox.embed_in.weight";
    public override string? EmbeddingNorm(DecoderConfig c) => c.EmbeddingNorm ? "gpt_neox.emb_layernorm" : null;
    public override string FinalNorm => "gpt_neox.final_layer_norm";
    public override string LmHead => "embed_out.weight";
    public override bool OutIn => true;
    public override bool PerHeadQkv => true;
    public override BlockNames Block(DecoderConfig c, int l) => BloomNames.FusedBlock($"gpt_neox.layers.{l}.", "attention");

    public override void Check(DecoderConfig c) => BloomNames.CheckFusedPerHead(c, "GPT-NeoX");
}
