using System.Text;
using System.Text.Json;
using Llm.Models;

namespace Llm.IO;

/// <summary>
/// config.json of an encoder-decoder as Hugging Face's T5Config writes it (model_type "t5",
/// T5ForConditionalGeneration), so a saved folder loads with <c>T5ForConditionalGeneration.from_pretrained</c>, plus
/// our "llm_tokenizer" (as <see cref="HfConfig"/>) and, only for catalogue choices T5Config cannot say (the norm kind,
/// its placement, biases), "llm_encoder_decoder". Every T5Config field that changes what the model computes is
/// honoured or refused by name; the defaults of absent optional fields are T5Config's own (dropout_rate 0.1,
/// layer_norm_epsilon 1e-6, relative_attention_max_distance 128, tie_word_embeddings true, ...), so a hub folder
/// computes here what it computes in transformers. <see cref="Tokenizer"/> is null when the config records none.
/// </summary>
public sealed record T5HfConfig(EncoderDecoderConfig Model, string? Tokenizer) : IModelConfigFile
{
    public const string ExtensionField = "llm_encoder_decoder";

    /// <summary>Creates or replaces <paramref name="path"/> atomically.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    public static T5HfConfig Load(string path)
    {
        string json;
        try { json = File.ReadAllText(path, Encoding.UTF8); }
        catch (FileNotFoundException e) { throw new FileNotFoundException($"{path}: config.json not found", path, e); }
        return Parse(json, path);
    }

    // ---- feed_forward_proj -------------------------------------------------------------------------------------------

    /// <summary>T5Config splits feed_forward_proj at "-": "gated-ACT" is a gated FFN act(x·wi_0) ⊙ (x·wi_1), a bare
    /// "ACT" one act(x·wi); ACT is a key of transformers' ACT2FN, except that "gated-gelu" means gelu_new (T5Config
    /// rewrites it so). Only the ACT2FN functions the catalogue computes exactly are accepted.</summary>
    private static readonly Dictionary<string, Activation> Plain = new()
    {
        ["relu"] = Activation.Relu,
        ["gelu"] = Activation.GeluExact,                // GELUActivation: x·Φ(x), erf
        ["gelu_python"] = Activation.GeluExact,         // the same erf GeLU written in Python
        ["gelu_new"] = Activation.GeluTanh,             // 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
        ["gelu_pytorch_tanh"] = Activation.GeluTanh,    // the same tanh approximation in torch
        ["silu"] = Activation.Swish,                    // x·σ(x)
        ["swish"] = Activation.Swish,
    };

    private static readonly Dictionary<string, Activation> GatedActs = new()
    {
        ["gelu"] = Activation.GeGluTanh,                // T5Config: feed_forward_proj "gated-gelu" → dense_act_fn "gelu_new"
        ["gelu_new"] = Activation.GeGluTanh,
        ["gelu_pytorch_tanh"] = Activation.GeGluTanh,
        ["gelu_python"] = Activation.GeGlu,             // the only gated spelling of the exact erf GeLU
        ["relu"] = Activation.ReGlu,
        ["silu"] = Activation.SwiGlu,
        ["swish"] = Activation.SwiGlu,
        ["sigmoid"] = Activation.Glu,
        ["linear"] = Activation.Bilinear,
    };

    /// <summary>The feed_forward_proj that parses back to <paramref name="activation"/>.</summary>
    private static string FeedForwardProj(Activation activation) => activation switch
    {
        Activation.Relu => "relu",
        Activation.GeluExact => "gelu",
        Activation.GeluTanh => "gelu_new",
        Activation.Swish => "silu",
        Activation.Glu => "gated-sigmoid",
        Activation.Bilinear => "gated-linear",
        Activation.ReGlu => "gated-relu",
        Activation.GeGlu => "gated-gelu_python",
        Activation.GeGluTanh => "gated-gelu",
        Activation.SwiGlu => "gated-silu",
        _ => throw new ArgumentException($"activation {activation} has no T5Config feed_forward_proj"),
    };

    /// <summary>feed_forward_proj → (activation, dense_act_fn, is_gated_act) as T5Config derives them.</summary>
    private static (Activation Activation, string DenseActFn, bool Gated) ParseFeedForward(string proj, string source)
    {
        string[] parts = proj.Split('-');
        bool gated = parts[0] == "gated";
        if (parts.Length > 2 || parts.Length == 2 && !gated)
            throw new InvalidDataException($"{source}: feed_forward_proj \"{proj}\" is not of the form \"ACT\" or \"gated-ACT\" (as T5Config requires)");
        string act = parts[^1];
        string dense = proj == "gated-gelu" ? "gelu_new" : act;
        var table = gated ? GatedActs : Plain;
        if (!table.TryGetValue(act, out var activation))
            throw new InvalidDataException($"{source}: feed_forward_proj \"{proj}\" is not supported (supported: {string.Join(", ", Plain.Keys.Concat(GatedActs.Keys.Select(k => "gated-" + k)))})");
        return (activation, dense, gated);
    }

    // ---- writing -----------------------------------------------------------------------------------------------------

    public string ToJson()
    {
        var m = Model.Validate();
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("model_type", "t5");
            w.WriteStartArray("architectures"); w.WriteStringValue("T5ForConditionalGeneration"); w.WriteEndArray();
            w.WriteNumber("vocab_size", m.VocabSize);
            w.WriteNumber("d_model", m.Channels);
            w.WriteNumber("d_kv", m.HeadSize);
            w.WriteNumber("d_ff", m.Hidden);
            w.WriteNumber("num_layers", m.EncoderLayers);
            w.WriteNumber("num_decoder_layers", m.DecoderLayers);
            w.WriteNumber("num_heads", m.Heads);
            w.WriteNumber("relative_attention_num_buckets", m.RelativeBuckets);
            w.WriteNumber("relative_attention_max_distance", m.RelativeMaxDistance);
            w.WriteNumber("dropout_rate", HfConfig.Shortest(m.Dropout));
            w.WriteNumber("layer_norm_epsilon", HfConfig.Shortest(m.LayerNormEpsilon));
            w.WriteNumber("initializer_factor", 1.0);
            string proj = FeedForwardProj(m.Activation);
            var (_, dense, gated) = ParseFeedForward(proj, "config.json");
            w.WriteString("feed_forward_proj", proj);
            w.WriteString("dense_act_fn", dense);         // what T5Config derives from feed_forward_proj; its save_pretrained writes both
            w.WriteBoolean("is_gated_act", gated);
            w.WriteBoolean("tie_word_embeddings", m.TiedEmbeddings);
            w.WriteBoolean("is_encoder_decoder", true);
            w.WriteNumber("pad_token_id", m.PadToken);
            w.WriteNumber("eos_token_id", m.EosToken);
            w.WriteNumber("decoder_start_token_id", m.DecoderStartToken);
            w.WriteNumber("n_positions", m.ContextLength);   // not a T5Config argument (relative positions need no table): kept as an attribute, as t5-small's own config.json has it
            w.WriteBoolean("use_cache", true);
            if (Tokenizer is not null) w.WriteString(HfConfig.TokenizerField, Tokenizer);
            var t5 = new EncoderDecoderConfig();
            if (m.Norm != t5.Norm || m.Placement != t5.Placement || m.Bias != t5.Bias || m.Moe is not null)
            {
                w.WriteStartObject(ExtensionField);
                if (m.Norm != t5.Norm) w.WriteString(nameof(m.Norm), m.Norm.ToString());
                if (m.Placement != t5.Placement) w.WriteString(nameof(m.Placement), m.Placement.ToString());
                if (m.Bias != t5.Bias) w.WriteBoolean(nameof(m.Bias), m.Bias);
                if (m.Moe is { } moe) HfConfig.WriteMoe(w, nameof(m.Moe), moe);   // as llm_decoder.Moe writes it
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    // ---- reading -----------------------------------------------------------------------------------------------------

    /// <summary>Reads T5Config's fields; <paramref name="source"/> names the file in error messages. Fields that do
    /// not change the function (initializer_factor, use_cache, torch_dtype, transformers_version,
    /// task_specific_params, classifier_dropout, ...) are tolerated.</summary>
    public static T5HfConfig Parse(string json, string source)
    {
        using (var document = HfConfig.ParseObject(json, source))
        {
            var root = document.RootElement;
            string? modelType = HfConfig.OptionalString(root, "model_type", source);
            if (modelType != "t5")
                throw new InvalidDataException($"{source}: model_type {(modelType is null ? "is missing" : $"\"{modelType}\" is not supported")} (an encoder-decoder config.json needs model_type \"t5\")");
            if (root.TryGetProperty("architectures", out var arch) && arch.ValueKind == JsonValueKind.Array)
                foreach (var a in arch.EnumerateArray())
                    if (a.ValueKind != JsonValueKind.String || a.GetString() is not ("T5ForConditionalGeneration" or "T5WithLMHeadModel" or "T5Model"))
                        throw new InvalidDataException($"{source}: architectures entry {a.GetRawText()} is not supported (supported: T5ForConditionalGeneration, its old name T5WithLMHeadModel, T5Model)");
            if (HfConfig.OptionalBool(root, "is_encoder_decoder", source) == false)
                throw new InvalidDataException($"{source}: is_encoder_decoder false is not supported (this is T5's encoder and decoder)");
            if (HfConfig.OptionalBool(root, "is_decoder", source) == true)
                throw new InvalidDataException($"{source}: is_decoder true is not supported (a T5 config describes the whole encoder-decoder)");

            string proj = HfConfig.OptionalString(root, "feed_forward_proj", source) ?? "relu";
            var (activation, dense, gated) = ParseFeedForward(proj, source);
            // save_pretrained writes T5Config's derived attributes too; PretrainedConfig would set them over the derived
            // ones, so a disagreement would make transformers compute something else than feed_forward_proj says
            if (HfConfig.OptionalString(root, "dense_act_fn", source) is { } givenDense && givenDense != dense)
                throw new InvalidDataException($"{source}: dense_act_fn \"{givenDense}\" disagrees with feed_forward_proj \"{proj}\" (which gives \"{dense}\")");
            if (HfConfig.OptionalBool(root, "is_gated_act", source) is { } givenGated && givenGated != gated)
                throw new InvalidDataException($"{source}: is_gated_act {(givenGated ? "true" : "false")} disagrees with feed_forward_proj \"{proj}\"");
            foreach (string dropout in new[] { "dropout_rate", "classifier_dropout" })
                if (HfConfig.OptionalNumber(root, dropout, source) is { } p && !(p >= 0 && p < 1))
                    throw new InvalidDataException($"{source}: {dropout} {p} is not a dropout probability (in [0, 1))");

            int encoderLayers = HfConfig.RequiredInt(root, "num_layers", source);
            int pad = HfConfig.OptionalInt(root, "pad_token_id", source) ?? 0;
            var model = new EncoderDecoderConfig
            {
                VocabSize = HfConfig.RequiredInt(root, "vocab_size", source),
                ContextLength = HfConfig.OptionalInt(root, "n_positions", source) ?? 512,
                Channels = HfConfig.RequiredInt(root, "d_model", source),
                Heads = HfConfig.RequiredInt(root, "num_heads", source),
                HeadSize = HfConfig.RequiredInt(root, "d_kv", source),
                Hidden = HfConfig.RequiredInt(root, "d_ff", source),
                EncoderLayers = encoderLayers,
                DecoderLayers = HfConfig.OptionalInt(root, "num_decoder_layers", source) ?? encoderLayers,   // T5Config: None → num_layers
                RelativeBuckets = HfConfig.OptionalInt(root, "relative_attention_num_buckets", source) ?? 32,
                RelativeMaxDistance = HfConfig.OptionalInt(root, "relative_attention_max_distance", source) ?? 128,
                LayerNormEpsilon = (float)(HfConfig.OptionalNumber(root, "layer_norm_epsilon", source) ?? 1e-6),
                Activation = activation,
                Dropout = (float)(HfConfig.OptionalNumber(root, "dropout_rate", source) ?? 0.1),
                TiedEmbeddings = HfConfig.OptionalBool(root, "tie_word_embeddings", source) ?? true,
                PadToken = pad,
                EosToken = HfConfig.OptionalInt(root, "eos_token_id", source) ?? 1,
                // T5's _shift_right starts the decoder with decoder_start_token_id; every T5 on the hub sets it to pad
                DecoderStartToken = HfConfig.OptionalInt(root, "decoder_start_token_id", source) ?? pad,
            };
            model = ApplyExtension(root, model, source);
            try { model.Validate(); }
            catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
            return new T5HfConfig(model, HfConfig.OptionalString(root, HfConfig.TokenizerField, source));
        }
    }

    /// <summary>llm_encoder_decoder: {"Norm": "LayerNorm"|"RmsNorm", "Placement": "Pre"|"Post", "Bias": bool, "Moe": {MoeConfig's
    /// fields, as llm_decoder.Moe} or null}. A config with Moe describes a Switch Transformer-shaped T5 whose MoE tensors
    /// (…mlp.router, …mlp.experts, stacked) T5ForConditionalGeneration does not have.</summary>
    private static EncoderDecoderConfig ApplyExtension(JsonElement root, EncoderDecoderConfig model, string source)
    {
        if (!root.TryGetProperty(ExtensionField, out var ext) || ext.ValueKind == JsonValueKind.Null) return model;
        if (ext.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{source}: {ExtensionField} is {ext.GetRawText()}, not an object");
        foreach (var field in ext.EnumerateObject())
        {
            var v = field.Value;
            string where = $"{source}: {ExtensionField}.{field.Name} is {v.GetRawText()}";
            T Choice<T>() where T : struct, Enum =>
                v.ValueKind == JsonValueKind.String && Enum.TryParse<T>(v.GetString(), ignoreCase: false, out var e) && Enum.IsDefined(e) ? e
                    : throw new InvalidDataException($"{where}, not one of {string.Join(", ", Enum.GetNames<T>())}");
            model = field.Name switch
            {
                nameof(EncoderDecoderConfig.Norm) => model with { Norm = Choice<NormKind>() },
                nameof(EncoderDecoderConfig.Placement) => model with { Placement = Choice<NormPlacement>() },
                nameof(EncoderDecoderConfig.Bias) => model with
                {
                    Bias = v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw new InvalidDataException($"{where}, not true or false"),
                },
                nameof(EncoderDecoderConfig.Moe) => model with { Moe = v.ValueKind == JsonValueKind.Null ? null : HfConfig.ReadMoe(v, where) },
                _ => throw new InvalidDataException($"{source}: {ExtensionField}.{field.Name} is not an encoder-decoder option (known: Norm, Placement, Bias, Moe)"),
            };
        }
        return model;
    }
}
