using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Llm.Models;

namespace Llm.IO;

// config.json of the Hugging Face families beside GPT-2: LlamaConfig (and MistralConfig), BloomConfig, GPTNeoXConfig.
// Each field that changes what the model computes is honoured or refused by name; the defaults of absent fields are
// the config class's own, so a folder computes here what it computes in transformers.
public sealed partial record HfConfig
{
    /// <summary>Our field holding the catalogue choices the family's config cannot say (PaLM's parallel LayerNorm
    /// block in the LLaMA naming, GLM's DeepNorm in GPT-2's), as DecoderConfig property names; absent for every real
    /// hub config, so that transformers reads the rest as its own.</summary>
    public const string DecoderField = "llm_decoder";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>The float's shortest decimal (1e-05, not 9.99999974737875E-06): parses back to the same float.</summary>
    internal static double Shortest(float value) => double.Parse(value.ToString("R", Invariant), Invariant);

    private delegate void FamilyWriter(Utf8JsonWriter w, DecoderConfig m);

    /// <summary>The family's fields, then llm_tokenizer, then llm_decoder with what parsing the family's fields alone
    /// would get wrong: so parse(write(c)) == c for every config.</summary>
    private static string WriteJson(DecoderConfig m, FamilyWriter family, string? tokenizer)
    {
        string Write(IReadOnlyList<PropertyInfo> extension)
        {
            var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                family(w, m);
                if (tokenizer is not null) w.WriteString(TokenizerField, tokenizer);
                if (extension.Count > 0)
                {
                    w.WriteStartObject(DecoderField);
                    foreach (var p in extension) WriteValue(w, p.Name, p.GetValue(m));
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
        }
        string plain = Write([]);
        var implied = Parse(plain, "config.json").Model;
        var differing = CatalogueFields.Where(p => !Equals(p.GetValue(m), p.GetValue(implied))).ToList();
        return differing.Count == 0 ? plain : Write(differing);
    }

    private void WriteFamily(Utf8JsonWriter w, DecoderConfig m)
    {
        switch (m.Naming)
        {
            case WeightNaming.Gpt2: WriteGpt2(w, m); break;
            case WeightNaming.Llama: WriteLlama(w, m); break;
            case WeightNaming.Bloom: WriteBloom(w, m); break;
            default: WriteNeoX(w, m); break;
        }
    }

    // ---- LLaMA / Mistral ---------------------------------------------------------------------------------------------

    private static void WriteLlama(Utf8JsonWriter w, DecoderConfig m)
    {
        bool mistral = m.Window > 0;   // LlamaConfig has no sliding window; MistralConfig is LLaMA's with one
        WriteOpening(w, mistral ? "mistral" : "llama", mistral ? "MistralForCausalLM" : "LlamaForCausalLM", m);
        w.WriteNumber("intermediate_size", m.FfnWidth);
        w.WriteNumber("num_hidden_layers", m.Layers);
        w.WriteNumber("num_attention_heads", m.Heads);
        w.WriteNumber("num_key_value_heads", m.KeyValueHeads);
        w.WriteString("hidden_act", m.Activation switch { Activation.GeGlu => "gelu", Activation.ReGlu => "relu", _ => "silu" });
        w.WriteNumber("max_position_embeddings", m.ContextLength);
        w.WriteNumber("rms_norm_eps", Shortest(m.LayerNormEpsilon));
        w.WriteNumber("rope_theta", Shortest(m.RopeTheta));
        w.WriteNull("rope_scaling");
        if (mistral) w.WriteNumber("sliding_window", m.Window);
        else
        {
            w.WriteBoolean("attention_bias", m.Bias);
            w.WriteBoolean("mlp_bias", m.Bias);
            w.WriteNumber("pretraining_tp", 1);
        }
        w.WriteNumber("attention_dropout", 0.0);
        w.WriteNumber("initializer_range", 0.02);
        w.WriteBoolean("tie_word_embeddings", m.TiedEmbeddings);
    }

    /// <summary>LlamaConfig / MistralConfig → RMSNorm pre-norm, gated FFN of intermediate_size, rotary on the whole head.</summary>
    private static DecoderConfig ParseLlama(JsonElement root, string source, bool mistral)
    {
        int channels = RequiredInt(root, "hidden_size", source), heads = RequiredInt(root, "num_attention_heads", source);
        int kv = OptionalInt(root, "num_key_value_heads", source) ?? heads;
        if (OptionalInt(root, "head_dim", source) is { } headDim && headDim * heads != channels)
            throw new InvalidDataException($"{source}: head_dim {headDim} is not hidden_size / num_attention_heads = {channels}/{heads}; only that head size is supported");
        string act = OptionalString(root, "hidden_act", source) ?? "silu";
        var activation = act switch
        {
            "silu" => Activation.SwiGlu,   // down(silu(gate(x)) ⊙ up(x))
            "gelu" => Activation.GeGlu,    // exact erf GeLU in the gate
            "relu" => Activation.ReGlu,
            _ => throw new InvalidDataException($"{source}: hidden_act \"{act}\" is not supported (supported: silu, gelu, relu)"),
        };
        RefuseRopeScaling(root, source);
        double theta = RopeThetaOf(root, source, "rope_theta", 10000);
        // MistralAttention's projections have no bias field; LLaMA's attention_bias and mlp_bias are one choice here
        bool bias = false;
        if (!mistral)
        {
            bool attentionBias = OptionalBool(root, "attention_bias", source) ?? false, mlpBias = OptionalBool(root, "mlp_bias", source) ?? false;
            if (attentionBias != mlpBias)
                throw new InvalidDataException($"{source}: attention_bias {Lower(attentionBias)} with mlp_bias {Lower(mlpBias)} is not supported (the biases of every linear layer are one choice here: both true or both false)");
            bias = attentionBias;
        }
        // pretraining_tp > 1 splits each matmul into slices whose results are summed: the same function
        if (OptionalInt(root, "pretraining_tp", source) is < 1 and var tp)
            throw new InvalidDataException($"{source}: pretraining_tp {tp} must be at least 1");
        CheckProbability(root, source, "attention_dropout");
        int window = mistral ? OptionalInt(root, "sliding_window", source) ?? 0 : 0;
        if (window < 0) throw new InvalidDataException($"{source}: sliding_window {window} must be positive or null");
        return new DecoderConfig
        {
            VocabSize = RequiredInt(root, "vocab_size", source),
            ContextLength = OptionalInt(root, "max_position_embeddings", source) ?? (mistral ? 4096 * 32 : 2048),
            Layers = RequiredInt(root, "num_hidden_layers", source),
            Heads = heads,
            KvHeads = kv == heads ? null : kv,
            Channels = channels,
            Hidden = RequiredInt(root, "intermediate_size", source),
            LayerNormEpsilon = (float)(OptionalNumber(root, "rms_norm_eps", source) ?? 1e-6),
            Norm = NormKind.RmsNorm,
            Bias = bias,
            Activation = activation,
            Positions = PositionKind.Rope,
            RopeTheta = (float)theta,
            Window = window,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? false,
            Naming = WeightNaming.Llama,
        };
    }

    // ---- BLOOM -------------------------------------------------------------------------------------------------------

    private static void WriteBloom(Utf8JsonWriter w, DecoderConfig m)
    {
        WriteOpening(w, "bloom", "BloomForCausalLM", m);
        w.WriteNumber("n_layer", m.Layers);
        w.WriteNumber("n_head", m.Heads);
        w.WriteNumber("layer_norm_epsilon", Shortest(m.LayerNormEpsilon));
        w.WriteBoolean("apply_residual_connection_post_layernorm", false);
        w.WriteNumber("hidden_dropout", 0.0);
        w.WriteNumber("attention_dropout", 0.0);
        w.WriteNumber("pretraining_tp", 1);
        w.WriteBoolean("slow_but_exact", false);
        w.WriteNumber("initializer_range", 0.02);
        w.WriteBoolean("tie_word_embeddings", m.TiedEmbeddings);
        w.WriteNumber("seq_length", m.ContextLength);   // not a BloomConfig field (ALiBi has no table): kept as an attribute
    }

    /// <summary>BloomConfig → ALiBi, LayerNorm after the embedding, tanh GeLU (bloom_gelu_forward), 4C MLP, tied head.</summary>
    private static DecoderConfig ParseBloom(JsonElement root, string source)
    {
        // n_embed is BloomConfig's legacy alias of hidden_size and wins when given, as in its __init__
        int channels = OptionalInt(root, "n_embed", source) ?? RequiredInt(root, "hidden_size", source);
        int heads = OptionalInt(root, "n_head", source) ?? RequiredInt(root, "num_attention_heads", source, alias: "n_head");
        if (OptionalBool(root, "apply_residual_connection_post_layernorm", source) == true)
            throw new InvalidDataException($"{source}: apply_residual_connection_post_layernorm true is not supported (the residual here is the block's input, before its LayerNorm)");
        if (OptionalInt(root, "num_key_value_heads", source) is { } kv && kv != heads)
            throw new InvalidDataException($"{source}: num_key_value_heads {kv} is not supported: BLOOM's fused per-head query_key_value has one key and value per head (n_head {heads})");
        if (OptionalInt(root, "pretraining_tp", source) is < 1 and var tp)
            throw new InvalidDataException($"{source}: pretraining_tp {tp} must be at least 1");
        _ = OptionalBool(root, "slow_but_exact", source);   // only how the tp slices are summed
        CheckProbability(root, source, "hidden_dropout");
        CheckProbability(root, source, "attention_dropout");
        return new DecoderConfig
        {
            VocabSize = RequiredInt(root, "vocab_size", source),
            ContextLength = OptionalInt(root, "seq_length", source) ?? 2048,   // only bounds T: ALiBi extrapolates
            Layers = OptionalInt(root, "n_layer", source) ?? RequiredInt(root, "num_hidden_layers", source, alias: "n_layer"),
            Heads = heads,
            Channels = channels,
            LayerNormEpsilon = (float)(OptionalNumber(root, "layer_norm_epsilon", source) ?? 1e-5),
            Activation = Activation.GeluTanh,
            Positions = PositionKind.Alibi,
            EmbeddingNorm = true,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? true,
            Naming = WeightNaming.Bloom,
        };
    }

    // ---- GPT-NeoX ----------------------------------------------------------------------------------------------------

    private static void WriteNeoX(Utf8JsonWriter w, DecoderConfig m)
    {
        WriteOpening(w, "gpt_neox", "GPTNeoXForCausalLM", m);
        w.WriteNumber("intermediate_size", m.FfnWidth);
        w.WriteNumber("num_hidden_layers", m.Layers);
        w.WriteNumber("num_attention_heads", m.Heads);
        w.WriteString("hidden_act", m.Activation switch { Activation.GeluTanh => "gelu_new", Activation.Relu => "relu", _ => "gelu" });
        w.WriteNumber("rotary_pct", Shortest(m.RotaryFraction));
        w.WriteNumber("rotary_emb_base", Shortest(m.RopeTheta));
        w.WriteNull("rope_scaling");
        w.WriteNumber("max_position_embeddings", m.ContextLength);
        w.WriteNumber("layer_norm_eps", Shortest(m.LayerNormEpsilon));
        w.WriteBoolean("use_parallel_residual", m.ParallelBlock);
        w.WriteBoolean("attention_bias", true);
        w.WriteNumber("hidden_dropout", 0.0);
        w.WriteNumber("attention_dropout", 0.0);
        w.WriteNumber("initializer_range", 0.02);
        w.WriteBoolean("tie_word_embeddings", m.TiedEmbeddings);
    }

    /// <summary>GPTNeoXConfig → LayerNorm, rotary on the first rotary_pct of each head, parallel residual, embed_out.</summary>
    private static DecoderConfig ParseNeoX(JsonElement root, string source)
    {
        int channels = RequiredInt(root, "hidden_size", source), heads = RequiredInt(root, "num_attention_heads", source);
        string act = OptionalString(root, "hidden_act", source) ?? "gelu";
        var activation = act switch
        {
            "gelu" => Activation.GeluExact,                                // ACT2FN["gelu"]: x·Φ(x), erf
            "gelu_new" or "gelu_pytorch_tanh" => Activation.GeluTanh,      // 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
            "relu" => Activation.Relu,
            _ => throw new InvalidDataException($"{source}: hidden_act \"{act}\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)"),
        };
        if (OptionalBool(root, "attention_bias", source) == false)
            throw new InvalidDataException($"{source}: attention_bias false is not supported (GPT-NeoX's linear layers and LayerNorms all have biases here)");
        if (OptionalInt(root, "num_key_value_heads", source) is { } kv && kv != heads)
            throw new InvalidDataException($"{source}: num_key_value_heads {kv} is not supported: GPT-NeoX's fused per-head query_key_value has one key and value per head (num_attention_heads {heads})");
        RefuseRopeScaling(root, source);
        double pct = OptionalNumber(root, "rotary_pct", source) ?? 0.25;
        // rotary_ndims = int(head_size · rotary_pct), and rotate_half needs it even
        int hs = heads > 0 ? channels / heads : 0, rotary = (int)(hs * pct);
        if (rotary % 2 != 0)
            throw new InvalidDataException($"{source}: rotary_pct {pct} gives {rotary} rotary dimensions of head size {hs}: rotate_half needs an even number");
        double theta = RopeThetaOf(root, source, "rotary_emb_base", 10000);
        CheckProbability(root, source, "hidden_dropout");
        CheckProbability(root, source, "attention_dropout");
        int inner = RequiredInt(root, "intermediate_size", source);
        var config = new DecoderConfig
        {
            VocabSize = RequiredInt(root, "vocab_size", source),
            ContextLength = OptionalInt(root, "max_position_embeddings", source) ?? 2048,
            Layers = RequiredInt(root, "num_hidden_layers", source),
            Heads = heads,
            Channels = channels,
            Hidden = inner == 4 * channels ? null : inner,
            LayerNormEpsilon = (float)(OptionalNumber(root, "layer_norm_eps", source) ?? 1e-5),
            Activation = activation,
            ParallelBlock = OptionalBool(root, "use_parallel_residual", source) ?? true,
            Positions = PositionKind.Rope,
            RopeTheta = (float)theta,
            RotaryFraction = (float)pct,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? false,
            Naming = WeightNaming.NeoX,
        };
        if (config.Heads > 0 && config.Channels % config.Heads == 0 && config.RotaryDims != rotary)
            throw new InvalidDataException($"{source}: rotary_pct {pct} gives {rotary} rotary dimensions in double precision but {config.RotaryDims} as a float; not supported");
        return config;
    }

    // ---- shared fields -----------------------------------------------------------------------------------------------

    /// <summary>The keys each family's config.json opens with: which model, then the vocabulary and width.</summary>
    private static void WriteOpening(Utf8JsonWriter w, string modelType, string architecture, DecoderConfig m)
    {
        w.WriteString("model_type", modelType);
        w.WriteStartArray("architectures"); w.WriteStringValue(architecture); w.WriteEndArray();
        w.WriteNumber("vocab_size", m.VocabSize);
        w.WriteNumber("hidden_size", m.Channels);
    }

    private static void RefuseRopeScaling(JsonElement root, string source)
    {
        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
            throw new InvalidDataException($"{source}: rope_scaling {scaling.GetRawText()} is not supported (only unscaled RoPE: θ^(−2i/d) at every position)");
    }

    /// <summary>θ from the family's field, or from transformers v5's rope_parameters, which must be the default rope_type.</summary>
    private static double RopeThetaOf(JsonElement root, string source, string field, double fallback)
    {
        double? theta = OptionalNumber(root, field, source);
        if (field != "rope_theta" && OptionalNumber(root, "rope_theta", source) is { } other)
        {
            if (theta is { } t && t != other)
                throw new InvalidDataException($"{source}: {field} {t} and rope_theta {other} disagree");
            theta = other;
        }
        if (root.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object)
        {
            string? type = rp.TryGetProperty("rope_type", out var rt) && rt.ValueKind == JsonValueKind.String ? rt.GetString() : "default";
            if (type != "default")
                throw new InvalidDataException($"{source}: rope_parameters.rope_type \"{type}\" is not supported (only \"default\", unscaled RoPE)");
            if (OptionalNumber(rp, "rope_theta", source) is { } t) theta = t;
        }
        return theta ?? fallback;
    }

    private static void CheckProbability(JsonElement root, string source, string field)
    {
        if (OptionalNumber(root, field, source) is { } p && !(p >= 0 && p <= 1))
            throw new InvalidDataException($"{source}: {field} {p} is not a probability (0 to 1)");
    }

    internal static int? OptionalInt(JsonElement root, string field, string source) =>
        !root.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null ? null : RequiredInt(root, field, source);

    private static string Lower(bool b) => b ? "true" : "false";

    // ---- llm_decoder ---------------------------------------------------------------------------------------------------

    /// <summary>The DecoderConfig properties llm_decoder may set: every init-settable number, flag and choice.</summary>
    private static readonly IReadOnlyList<PropertyInfo> CatalogueFields = typeof(DecoderConfig)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.CanWrite && p.Name != nameof(DecoderConfig.Naming)
            && (p.PropertyType == typeof(int) || p.PropertyType == typeof(int?) || p.PropertyType == typeof(float) || p.PropertyType == typeof(double?)
                || p.PropertyType == typeof(bool) || p.PropertyType.IsEnum || p.PropertyType == typeof(MoeConfig)))
        .ToList();

    private static void WriteValue(Utf8JsonWriter w, string name, object? value)
    {
        switch (value)
        {
            case null: w.WriteNull(name); break;
            case int i: w.WriteNumber(name, i); break;
            case float f: w.WriteNumber(name, Shortest(f)); break;
            case double d: w.WriteNumber(name, d); break;
            case bool b: w.WriteBoolean(name, b); break;
            case MoeConfig moe: WriteMoe(w, name, moe); break;
            default: w.WriteString(name, value.ToString()); break;   // an enum by name
        }
    }

    private static DecoderConfig ApplyExtension(JsonElement root, DecoderConfig model, string source)
    {
        if (!root.TryGetProperty(DecoderField, out var ext) || ext.ValueKind == JsonValueKind.Null) return model;
        if (ext.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{source}: {DecoderField} is {ext.GetRawText()}, not an object");
        model = model with { };   // a copy of our own to set properties on
        foreach (var field in ext.EnumerateObject())
        {
            var p = CatalogueFields.FirstOrDefault(f => f.Name == field.Name)
                ?? throw new InvalidDataException($"{source}: {DecoderField}.{field.Name} is not a decoder option (known: {string.Join(", ", CatalogueFields.Select(f => f.Name))})");
            var v = field.Value;
            string where = $"{source}: {DecoderField}.{field.Name} is {v.GetRawText()}";
            object? value = p.PropertyType switch
            {
                var t when (t == typeof(int?) || t == typeof(double?) || t == typeof(MoeConfig)) && v.ValueKind == JsonValueKind.Null => null,
                var t when t == typeof(MoeConfig) => ReadMoe(v, where),
                var t when t == typeof(double?) => v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()) ? v.GetDouble()
                    : throw new InvalidDataException($"{where}, not a number"),
                var t when t == typeof(int) || t == typeof(int?) => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i
                    : throw new InvalidDataException($"{where}, not an integer"),
                var t when t == typeof(float) => v.ValueKind == JsonValueKind.Number && double.IsFinite(v.GetDouble()) ? (float)v.GetDouble()
                    : throw new InvalidDataException($"{where}, not a number"),
                var t when t == typeof(bool) => v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean()
                    : throw new InvalidDataException($"{where}, not true or false"),
                var t => v.ValueKind == JsonValueKind.String && Enum.TryParse(t, v.GetString(), ignoreCase: false, out var e) && Enum.IsDefined(t, e!) ? e
                    : throw new InvalidDataException($"{where}, not one of {string.Join(", ", Enum.GetNames(t))}"),
            };
            p.SetValue(model, value);
        }
        return model;
    }

    /// <summary>llm_decoder.Moe: every MoeConfig field by its property name (NormalizeGates may be null: k ≥ 2 decides).</summary>
    internal static void WriteMoe(Utf8JsonWriter w, string name, MoeConfig moe)
    {
        w.WriteStartObject(name);
        w.WriteNumber(nameof(MoeConfig.Experts), moe.Experts);
        w.WriteNumber(nameof(MoeConfig.TopK), moe.TopK);
        w.WriteNumber(nameof(MoeConfig.CapacityFactor), moe.CapacityFactor);
        w.WriteNumber(nameof(MoeConfig.EvalCapacityFactor), moe.EvalCapacityFactor);
        w.WriteNumber(nameof(MoeConfig.Every), moe.Every);
        w.WriteNumber(nameof(MoeConfig.BalanceCoefficient), Shortest(moe.BalanceCoefficient));
        w.WriteNumber(nameof(MoeConfig.ZLossCoefficient), Shortest(moe.ZLossCoefficient));
        if (moe.NormalizeGates is bool normalize) w.WriteBoolean(nameof(MoeConfig.NormalizeGates), normalize);
        else w.WriteNull(nameof(MoeConfig.NormalizeGates));
        w.WriteEndObject();
    }

    internal static MoeConfig ReadMoe(JsonElement v, string where)
    {
        if (v.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where}, not an object of MoE fields");
        var moe = new MoeConfig();
        foreach (var f in v.EnumerateObject())
        {
            var x = f.Value;
            string at = $"{where}: {f.Name} = {x.GetRawText()}";
            int Int() => x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out int i) ? i : throw new InvalidDataException($"{at}, not an integer");
            double Number() => x.ValueKind == JsonValueKind.Number && double.IsFinite(x.GetDouble()) ? x.GetDouble() : throw new InvalidDataException($"{at}, not a number");
            moe = f.Name switch
            {
                nameof(MoeConfig.Experts) => moe with { Experts = Int() },
                nameof(MoeConfig.TopK) => moe with { TopK = Int() },
                nameof(MoeConfig.CapacityFactor) => moe with { CapacityFactor = Number() },
                nameof(MoeConfig.EvalCapacityFactor) => moe with { EvalCapacityFactor = Number() },
                nameof(MoeConfig.Every) => moe with { Every = Int() },
                nameof(MoeConfig.BalanceCoefficient) => moe with { BalanceCoefficient = (float)Number() },
                nameof(MoeConfig.ZLossCoefficient) => moe with { ZLossCoefficient = (float)Number() },
                nameof(MoeConfig.NormalizeGates) => moe with
                {
                    NormalizeGates = x.ValueKind switch
                    {
                        JsonValueKind.Null => null,
                        JsonValueKind.True or JsonValueKind.False => x.GetBoolean(),
                        _ => throw new InvalidDataException($"{at}, not true, false or null"),
                    },
                },
                _ => throw new InvalidDataException($"{at}: not an MoE field (known: Experts, TopK, CapacityFactor, EvalCapacityFactor, Every, BalanceCoefficient, ZLossCoefficient, NormalizeGates)"),
            };
        }
        return moe;
    }
}
