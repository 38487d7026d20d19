using System.Text.Json.Nodes;
using Llm.Autograd;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.IO;

/// <summary>config.json fields that change what GPT-2 computes: each is honoured, or refused with a message naming
/// it, never ignored.</summary>
public sealed class HfConfigTests : IDisposable
{
    private const string Source = "cfg/config.json";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-config-tests-" + Guid.NewGuid().ToString("N"));
    private readonly CpuBackend _cpu = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    /// <summary>Micro's config.json with <paramref name="field"/> set to the JSON <paramref name="value"/>.</summary>
    private static string MicroWith(string field, string value)
    {
        var root = JsonNode.Parse(new HfConfig(DecoderConfig.Micro, "byte").ToJson())!.AsObject();
        root[field] = JsonNode.Parse(value);
        return root.ToJsonString();
    }

    [Theory]
    [InlineData("scale_attn_weights", "false", "1/√head_size")]
    [InlineData("scale_attn_by_inverse_layer_idx", "true", "1/(layer index + 1)")]
    [InlineData("add_cross_attention", "true", "cross-attention")]
    [InlineData("tie_word_embeddings", "false", "the output head is wte")]
    [InlineData("activation_function", "\"gelu\"", "supported: gelu_new, gelu_pytorch_tanh")]
    [InlineData("activation_function", "\"relu\"", "supported: gelu_new, gelu_pytorch_tanh")]
    [InlineData("activation_function", "\"silu\"", "supported: gelu_new, gelu_pytorch_tanh")]
    [InlineData("n_inner", "32", "4 · n_embd = 64")]
    [InlineData("n_inner", "\"64\"", "not an integer")]
    [InlineData("pruned_heads", """{"0": [1]}""", "all n_head heads")]
    [InlineData("layer_norm_epsilon", "\"1e-5\"", "not a number")]
    [InlineData("layer_norm_epsilon", "0", "must be positive")]
    [InlineData("resid_pdrop", "1.5", "not a dropout probability")]
    [InlineData("attn_pdrop", "\"0.1\"", "not a number")]
    public void Settings_this_model_cannot_compute_are_refused_by_name(string field, string value, string why)
    {
        var e = Assert.Throws<InvalidDataException>(() => HfConfig.Parse(MicroWith(field, value), Source));
        Assert.Contains(Source, e.Message);
        Assert.Contains(field, e.Message);
        Assert.Contains(why, e.Message);
        SafeTensorsIntegrityTests.AssertNoDotNetText(e.Message);
    }

    [Theory]
    [InlineData("scale_attn_weights")]
    [InlineData("scale_attn_by_inverse_layer_idx")]
    [InlineData("reorder_and_upcast_attn")]
    [InlineData("add_cross_attention")]
    [InlineData("tie_word_embeddings")]
    public void Boolean_fields_refuse_anything_but_true_or_false(string field)
    {
        foreach (string value in new[] { "\"false\"", "\"true\"", "0", "1", "[]" })
        {
            var e = Assert.Throws<InvalidDataException>(() => HfConfig.Parse(MicroWith(field, value), Source));
            Assert.Contains($"field \"{field}\" is {value}, not true or false", e.Message);
        }
    }

    [Theory]
    [InlineData("scale_attn_weights", "true")]
    [InlineData("scale_attn_by_inverse_layer_idx", "false")]
    [InlineData("reorder_and_upcast_attn", "true")]  // fp32 attention either way: the same function
    [InlineData("reorder_and_upcast_attn", "false")]
    [InlineData("add_cross_attention", "false")]
    [InlineData("tie_word_embeddings", "true")]
    [InlineData("activation_function", "\"gelu_pytorch_tanh\"")]
    [InlineData("n_inner", "64")]
    [InlineData("n_inner", "null")]
    [InlineData("pruned_heads", "{}")]
    public void Settings_that_match_this_model_are_accepted(string field, string value)
    {
        Assert.Equal(DecoderConfig.Micro, HfConfig.Parse(MicroWith(field, value), Source).Model);
    }

    [Fact]
    public void Dropout_probabilities_reach_the_model_and_round_trip()
    {
        var config = HfConfig.Parse(MicroWith("resid_pdrop", "0.1"), Source).Model;
        Assert.Equal(DecoderConfig.Micro with { ResidualDropout = 0.1f }, config);
        Assert.Equal(0.25f, HfConfig.Parse(MicroWith("embd_pdrop", "0.25"), Source).Model.EmbeddingDropout);
        Assert.Equal(0.125f, HfConfig.Parse(MicroWith("attn_pdrop", "0.125"), Source).Model.AttentionDropout);
        Assert.Equal(config, HfConfig.Parse(new HfConfig(config, "byte").ToJson(), Source).Model);
    }

    [Fact]
    public void Layer_norm_epsilon_reaches_the_model_and_changes_its_output()
    {
        var config = HfConfig.Parse(MicroWith("layer_norm_epsilon", "1e-06"), Source);
        Assert.Equal(1e-6f, config.Model.LayerNormEpsilon);
        Assert.Equal(config, HfConfig.Parse(config.ToJson(), Source)); // and is written back as it was read

        var model = new Decoder(_cpu, DecoderConfig.Micro);
        model.InitializeWeights(3);
        string folder = Path.Combine(_dir, "model");
        Checkpoint.SaveModel(folder, new HfConfig(DecoderConfig.Micro, "byte"), model.Parameters);
        var (atDefault, _) = Decoder.Load(folder, _cpu);
        File.WriteAllText(Path.Combine(folder, Checkpoint.ConfigFile), MicroWith("layer_norm_epsilon", "1e-06"));
        var (atSmall, _) = Decoder.Load(folder, _cpu);
        Assert.Equal(1e-5f, atDefault.Config.LayerNormEpsilon);
        Assert.Equal(1e-6f, atSmall.Config.LayerNormEpsilon);
        Assert.NotEqual(Logits(atDefault), Logits(atSmall)); // same weights: only the epsilon differs
    }

    private float[] Logits(Decoder model)
    {
        var tokens = _cpu.Allocate(DType.I32, [1, 8]);
        _cpu.Upload<int>(new[] { 1, 2, 3, 250, 100, 7, 0, 42 }, tokens);
        var logits = model.Forward(new Tape(_cpu, recording: false), tokens).Value;
        var host = new float[logits.Length];
        _cpu.Download<float>(logits, host);
        return host;
    }
}
