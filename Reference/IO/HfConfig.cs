using System.Text;
using System.Text.Json;
using Llm.Models;

namespace Llm.IO;

/// <summary>
/// config.json as Hugging Face's config class of the model's family writes it (GPT2Config, LlamaConfig/MistralConfig,
/// BloomConfig, GPTNeoXConfig), so a saved folder loads with <c>AutoModelForCausalLM.from_pretrained</c>, plus our
/// field "llm_tokenizer" naming the tokenizer the vocabulary belongs to ("byte" or "gpt2") and, only for catalogue
/// choices the family's config cannot say, "llm_decoder" (see HfFamilies.cs). <see cref="Tokenizer"/> is null for a
/// config that does not record one (a hub download).
/// </summary>
public sealed partial record HfConfig(DecoderConfig Model, string? Tokenizer) : IModelConfigFile
{
    public const string TokenizerField = "llm_tokenizer";
    /// <summary>GPT-2's &lt;|endoftext|&gt;, its bos and eos token.</summary>
    public const int Gpt2EndOfText = 50256;

    /// <summary>Creates or replaces <paramref name="path"/> atomically.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

    public static HfConfig Load(string path)
    {
        string json;
        try { json = File.ReadAllText(path, Encoding.UTF8); }
        catch (FileNotFoundException e) { throw new FileNotFoundException($"{path}: config.json not found", path, e); }
        return Parse(json, path);
    }

    public string ToJson()
    {
        var m = Model.Validate();
        return WriteJson(m, (w, model) => WriteFamily(w, model), Tokenizer);
    }

    private void WriteGpt2(Utf8JsonWriter w, DecoderConfig m)
    {
            w.WriteString("model_type", "gpt2");
            w.WriteStartArray("architectures"); w.WriteStringValue("GPT2LMHeadModel"); w.WriteEndArray();
            w.WriteNumber("vocab_size", m.VocabSize);
            w.WriteNumber("n_positions", m.ContextLength);
            w.WriteNumber("n_ctx", m.ContextLength);         // legacy alias of n_positions that older readers want
            w.WriteNumber("n_embd", m.Channels);
            w.WriteNumber("n_layer", m.Layers);
            w.WriteNumber("n_head", m.Heads);
            w.WriteNull("n_inner");                          // null = 4 · n_embd, the only MLP width we build
            w.WriteString("activation_function", "gelu_new"); // the tanh approximation of IBackend.Gelu
            // The float's shortest decimal (1e-05, not 9.99999974737875E-06): parses back to the same float.
            w.WriteNumber("layer_norm_epsilon", Shortest(m.LayerNormEpsilon));
            w.WriteNumber("initializer_range", 0.02);
            w.WriteNumber("resid_pdrop", Shortest(m.ResidualDropout));
            w.WriteNumber("embd_pdrop", Shortest(m.EmbeddingDropout));
            w.WriteNumber("attn_pdrop", Shortest(m.AttentionDropout));
            w.WriteBoolean("scale_attn_weights", true);
            w.WriteBoolean("tie_word_embeddings", true);      // the output head is wte
            if (Tokenizer is null or "gpt2" && m.VocabSize > Gpt2EndOfText)
            {
                w.WriteNumber("bos_token_id", Gpt2EndOfText);
                w.WriteNumber("eos_token_id", Gpt2EndOfText);
            }
    }

    /// <summary>A config.json's document, whose root must be an object; refuses anything else naming the file.</summary>
    internal static JsonDocument ParseObject(string json, string source)
    {
        JsonDocument document;
        try { document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON: {e.Message}", e); }
        if (document.RootElement.ValueKind == JsonValueKind.Object) return document;
        var kind = document.RootElement.ValueKind;
        document.Dispose();
        throw new InvalidDataException($"{source}: a JSON {kind}, expected an object");
    }

    /// <summary>Reads the fields we need and refuses settings this GPT-2 cannot represent: every field of Hugging
    /// Face's GPT2Config that changes what the model computes is honoured or refused by name, never ignored; fields
    /// that do not (use_cache, torch_dtype, initializer_range, ...) are tolerated. <paramref name="source"/> names the
    /// file in error messages.</summary>
    public static HfConfig Parse(string json, string source)
    {
        using (var document = ParseObject(json, source))
        {
            var root = document.RootElement;

            string? modelType = OptionalString(root, "model_type", source);
            var model = modelType switch
            {
                null or "gpt2" => ParseGpt2(root, source),
                "llama" or "mistral" => ParseLlama(root, source, mistral: modelType == "mistral"),
                "bloom" => ParseBloom(root, source),
                "gpt_neox" => ParseNeoX(root, source),
                "t5" => throw new InvalidDataException($"{source}: model_type \"t5\" is an encoder-decoder (T5ForConditionalGeneration), not a decoder: T5HfConfig and T5Checkpoint read it"),
                _ => throw new InvalidDataException($"{source}: model_type \"{modelType}\" is not supported (supported: gpt2, llama, mistral, bloom, gpt_neox)"),
            };
            model = ApplyExtension(root, model, source);
            try { model.Validate(); }
            catch (ArgumentException e) { throw new InvalidDataException($"{source}: {e.Message}", e); }
            return new HfConfig(model, OptionalString(root, TokenizerField, source));
        }
    }

    /// <summary>GPT2Config: every field that changes what the model computes is honoured or refused.</summary>
    private static DecoderConfig ParseGpt2(JsonElement root, string source)
    {
        string? activation = OptionalString(root, "activation_function", source);
        if (activation is not null and not "gelu_new" and not "gelu_pytorch_tanh")
            throw new InvalidDataException($"{source}: activation_function \"{activation}\" is not supported (supported: gelu_new, gelu_pytorch_tanh: the tanh approximation of GeLU that this library computes)");
        // Our attention is softmax(q·kᵀ / √head_size + causal mask) in every layer, computed in fp32.
        if (OptionalBool(root, "scale_attn_weights", source) == false)
            throw new InvalidDataException($"{source}: scale_attn_weights false is not supported (attention here always scales q·kᵀ by 1/√head_size)");
        if (OptionalBool(root, "scale_attn_by_inverse_layer_idx", source) == true)
            throw new InvalidDataException($"{source}: scale_attn_by_inverse_layer_idx true is not supported (attention here does not scale q·kᵀ by 1/(layer index + 1))");
        // reorder_and_upcast_attn only moves the 1/√head_size before the q·kᵀ product and computes it and the softmax
        // in fp32, a guard against fp16 overflow: our attention is fp32 throughout, so the function is the same.
        _ = OptionalBool(root, "reorder_and_upcast_attn", source);
        if (OptionalBool(root, "add_cross_attention", source) == true)
            throw new InvalidDataException($"{source}: add_cross_attention true is not supported (these blocks have no cross-attention to an encoder)");
        if (OptionalBool(root, "tie_word_embeddings", source) == false)
            throw new InvalidDataException($"{source}: tie_word_embeddings false is not supported (the output head is wte)");
        if (root.TryGetProperty("pruned_heads", out var pruned) && pruned.ValueKind == JsonValueKind.Object && pruned.EnumerateObject().Any())
            throw new InvalidDataException($"{source}: pruned_heads {pruned.GetRawText()} is not supported (every layer has all n_head heads)");
        // Dropout acts in training only; an absent field means none (GPT2Config's default would be 0.1).
        foreach (string dropout in new[] { "resid_pdrop", "embd_pdrop", "attn_pdrop" })
            if (OptionalNumber(root, dropout, source) is { } p && !(p >= 0 && p < 1))
                throw new InvalidDataException($"{source}: {dropout} {p} is not a dropout probability (in [0, 1))");

        int channels = RequiredInt(root, "n_embd", source);
        // n_ctx is the legacy name of n_positions; HF has written both.
        int context = root.TryGetProperty("n_positions", out _) ? RequiredInt(root, "n_positions", source) : RequiredInt(root, "n_ctx", source, alias: "n_positions");
        if (root.TryGetProperty("n_inner", out var inner) && inner.ValueKind != JsonValueKind.Null
            && RequiredInt(root, "n_inner", source) != 4 * channels)
            throw new InvalidDataException($"{source}: n_inner {inner.GetRawText()} is not 4 · n_embd = {4 * channels}; only that MLP width is supported");

        float eps = (float)(OptionalNumber(root, "layer_norm_epsilon", source) ?? 1e-5); // HF's default when absent

        var model = new DecoderConfig
        {
            VocabSize = RequiredInt(root, "vocab_size", source),
            ContextLength = context,
            Channels = channels,
            Layers = RequiredInt(root, "n_layer", source),
            Heads = RequiredInt(root, "n_head", source),
            LayerNormEpsilon = eps,
                ResidualDropout = (float)(OptionalNumber(root, "resid_pdrop", source) ?? 0),
                EmbeddingDropout = (float)(OptionalNumber(root, "embd_pdrop", source) ?? 0),
                AttentionDropout = (float)(OptionalNumber(root, "attn_pdrop", source) ?? 0),
        };
        return model;
    }

    internal static int RequiredInt(JsonElement root, string field, string source, string? alias = null)
    {
        if (!root.TryGetProperty(field, out var e))
            throw new InvalidDataException($"{source}: missing required field \"{alias ?? field}\"");
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int value))
            throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not an integer");
        return value;
    }

    /// <summary>A finite JSON number, or null when the field is absent or null.</summary>
    internal static double? OptionalNumber(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        return e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out double value) && double.IsFinite(value) ? value
            : throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not a number");
    }

    /// <summary>true or false, or null when the field is absent or null; a string "false" or a 0 is refused, since
    /// reading it either way could silently change the model.</summary>
    internal static bool? OptionalBool(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not true or false"),
        };
    }

    internal static string? OptionalString(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.String)
            throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not a string");
        try { return e.GetString(); }
        catch (InvalidOperationException) // System.Text.Json will not decode a lone surrogate escape such as "\ud800"
        {
            throw new InvalidDataException($"{source}: field \"{field}\" is {e.GetRawText()}, not valid Unicode");
        }
    }
}
