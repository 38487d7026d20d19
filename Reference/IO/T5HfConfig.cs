using System.Globalization;
using System.Text;
using System.Text.Json;
using Llm.Models;

namespace Llm.IO;

/// <summary>
/// The config.json of an encoder-decoder checkpoint: Hugging Face's T5Config fields (so T5ForConditionalGeneration
/// reads it), llm_tokenizer when one is named, and llm_encoder_decoder with the catalogue choices T5Config cannot say
/// (norm kind, placement, biases) when they differ from T5's. Minimal: written, not parsed (the loader is another part).
/// </summary>
public sealed record T5HfConfig(EncoderDecoderConfig Model, string? Tokenizer) : IModelConfigFile
{
    public void Save(string path) => AtomicFile.WriteAllText(path, ToJson());

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
            w.WriteNumber("n_positions", m.ContextLength);
            w.WriteNumber("d_model", m.Channels);
            w.WriteNumber("d_kv", m.HeadSize);
            w.WriteNumber("d_ff", m.Hidden);
            w.WriteNumber("num_layers", m.EncoderLayers);
            w.WriteNumber("num_decoder_layers", m.DecoderLayers);
            w.WriteNumber("num_heads", m.Heads);
            w.WriteNumber("relative_attention_num_buckets", m.RelativeBuckets);
            w.WriteNumber("relative_attention_max_distance", m.RelativeMaxDistance);
            w.WriteNumber("dropout_rate", Shortest(m.Dropout));
            w.WriteNumber("layer_norm_epsilon", Shortest(m.LayerNormEpsilon));
            w.WriteNumber("initializer_factor", 1.0);
            w.WriteString("feed_forward_proj", FeedForwardProj(m.Activation));
            w.WriteBoolean("is_encoder_decoder", true);
            w.WriteBoolean("tie_word_embeddings", m.TiedEmbeddings);
            w.WriteBoolean("use_cache", true);
            w.WriteNumber("pad_token_id", m.PadToken);
            w.WriteNumber("eos_token_id", m.EosToken);
            w.WriteNumber("decoder_start_token_id", m.DecoderStartToken);
            if (Tokenizer is not null) w.WriteString(HfConfig.TokenizerField, Tokenizer);
            if (m.Norm != NormKind.RmsNorm || m.Placement != NormPlacement.Pre || m.Bias)
            {
                w.WriteStartObject("llm_encoder_decoder");
                w.WriteString("norm", m.Norm.ToString());
                w.WriteString("placement", m.Placement.ToString());
                w.WriteBoolean("bias", m.Bias);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>T5Config's feed_forward_proj: an ACT2FN name, "gated-" before it for the gated FFN ("gated-gelu" is
    /// T5 v1.1's tanh GeLU, which T5Config maps to gelu_new).</summary>
    public static string FeedForwardProj(Activation activation) => activation switch
    {
        Activation.Relu => "relu",
        Activation.GeluExact => "gelu",
        Activation.GeluTanh => "gelu_new",
        Activation.Swish => "silu",
        Activation.ReGlu => "gated-relu",
        Activation.GeGlu => "gated-gelu_python",
        Activation.GeGluTanh => "gated-gelu",
        Activation.SwiGlu => "gated-silu",
        Activation.Glu => "gated-sigmoid",
        Activation.Bilinear => "gated-linear",
        _ => throw new ArgumentException($"activation {activation} has no T5Config feed_forward_proj"),
    };

    private static double Shortest(float value) => double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}
