// T5 folders as Hugging Face stores them: Fixtures/hf/t5-relu/ (tied head, ReLU FFN) and t5-gated/ (untied head,
// gated-gelu FFN), written by Tools/fixtures/torch_t5_fixture.py in T5ForConditionalGeneration's names and layouts.
// config.json parses to the EncoderDecoderConfig T5Config means and writes back to the same; weights load and save bit
// for bit; the forms transformers' saves take (embed_tokens aliases, a tied lm_head copy, the unused cross-attention
// bias of converted checkpoints, shards) load; wrong configs, shapes and aliases are refused by name. The logits
// against the torch forward are in T5FixtureTests.cs.pending (they need the EncoderDecoder model).
using System.Text.Json.Nodes;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.IO;

public sealed class T5CheckpointTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-t5-" + Guid.NewGuid().ToString("N"));
    private readonly CpuBackend _cpu = new(fastPaths: true);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string FixtureFolder(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "hf", name);

    public static TheoryData<string> Fixtures() => new() { "t5-relu", "t5-gated" };

    // ---- config.json -------------------------------------------------------------------------------------------------

    [Fact]
    public void The_fixture_configs_read_as_T5Config_means_them()
    {
        var relu = T5HfConfig.Load(Path.Combine(FixtureFolder("t5-relu"), "config.json"));
        Assert.Null(relu.Tokenizer);
        Assert.Equal(new EncoderDecoderConfig
        {
            VocabSize = 40, ContextLength = 64, Channels = 16, Heads = 3, HeadSize = 8, Hidden = 24, EncoderLayers = 2, DecoderLayers = 3,
            RelativeBuckets = 8, RelativeMaxDistance = 20, LayerNormEpsilon = 1e-6f, Activation = Activation.Relu, Dropout = 0.1f,
            TiedEmbeddings = true, PadToken = 0, EosToken = 1, DecoderStartToken = 0,
        }, relu.Model);
        var gated = T5HfConfig.Load(Path.Combine(FixtureFolder("t5-gated"), "config.json")).Model;
        Assert.Equal(relu.Model with { Activation = Activation.GeGluTanh, TiedEmbeddings = false, Dropout = 0, LayerNormEpsilon = 1e-5f }, gated);
        Assert.Equal(24, gated.InnerWidth);   // num_heads · d_kv ≠ d_model
    }

    [Fact]
    public void Absent_fields_take_T5Configs_defaults()
    {
        var model = T5HfConfig.Parse("""{"model_type": "t5", "vocab_size": 100, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 3, "num_heads": 4}""", "c.json").Model;
        Assert.Equal(3, model.DecoderLayers);            // num_decoder_layers None → num_layers
        Assert.Equal(32, model.RelativeBuckets);
        Assert.Equal(128, model.RelativeMaxDistance);
        Assert.Equal(1e-6f, model.LayerNormEpsilon);
        Assert.Equal(0.1f, model.Dropout);               // T5Config's dropout_rate
        Assert.Equal(Activation.Relu, model.Activation);
        Assert.True(model.TiedEmbeddings);
        Assert.Equal(512, model.ContextLength);
        Assert.Equal((0, 1, 0), (model.PadToken, model.EosToken, model.DecoderStartToken));
        Assert.Equal(model with { }, new EncoderDecoderConfig
        {
            VocabSize = 100, Channels = 32, HeadSize = 8, Hidden = 64, EncoderLayers = 3, DecoderLayers = 3, Heads = 4, Dropout = 0.1f,
        });
    }

    /// <summary>The hub's t5-small and google/t5-v1_1-small config.json files as served (older saves: no
    /// feed_forward_proj or num_decoder_layers in t5-small's, output_past and task_specific_params tolerated).</summary>
    [Fact]
    public void The_hub_t5_small_configs_read_as_the_presets()
    {
        const string t5Small = """
            {"architectures": ["T5WithLMHeadModel"], "d_ff": 2048, "d_kv": 64, "d_model": 512, "decoder_start_token_id": 0,
             "dropout_rate": 0.1, "eos_token_id": 1, "initializer_factor": 1.0, "is_encoder_decoder": true, "layer_norm_epsilon": 1e-06,
             "model_type": "t5", "n_positions": 512, "num_heads": 8, "num_layers": 6, "output_past": true, "pad_token_id": 0,
             "relative_attention_num_buckets": 32, "task_specific_params": {"summarization": {"early_stopping": true, "prefix": "summarize: "}},
             "vocab_size": 32128}
            """;
        Assert.Equal(EncoderDecoderConfig.T5Small with { Dropout = 0.1f }, T5HfConfig.Parse(t5Small, "t5-small").Model);
        const string v11 = """
            {"architectures": ["T5ForConditionalGeneration"], "d_ff": 1024, "d_kv": 64, "d_model": 512, "decoder_start_token_id": 0,
             "dropout_rate": 0.1, "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0, "is_encoder_decoder": true,
             "layer_norm_epsilon": 1e-06, "model_type": "t5", "num_decoder_layers": 8, "num_heads": 6, "num_layers": 8, "output_past": true,
             "pad_token_id": 0, "relative_attention_num_buckets": 32, "tie_word_embeddings": false, "vocab_size": 32128}
            """;
        Assert.Equal(EncoderDecoderConfig.T5V11Small with { Dropout = 0.1f }, T5HfConfig.Parse(v11, "t5-v1_1-small").Model);
    }

    public static TheoryData<string> Presets() => [.. EncoderDecoderConfig.PresetNames];

    [Theory]
    [MemberData(nameof(Presets))]
    public void Every_preset_round_trips_through_a_plain_T5_config(string preset)
    {
        var config = EncoderDecoderConfig.FromPreset(preset);
        string json = new T5HfConfig(config, "byte").ToJson();
        var parsed = T5HfConfig.Parse(json, preset);
        Assert.Equal(config, parsed.Model);
        Assert.Equal("byte", parsed.Tokenizer);
        if (config.Moe is null) Assert.DoesNotContain(T5HfConfig.ExtensionField, json);
        else Assert.Contains(T5HfConfig.ExtensionField, json);   // switch-t5-*: the MoE FFNs T5Config cannot say
        var node = JsonNode.Parse(json)!;
        Assert.Equal("t5", node["model_type"]!.GetValue<string>());
        Assert.Equal("T5ForConditionalGeneration", node["architectures"]![0]!.GetValue<string>());
        Assert.Equal(json, new T5HfConfig(parsed.Model, parsed.Tokenizer).ToJson());   // a second trip writes the same bytes
    }

    [Theory]
    [InlineData("relu", Activation.Relu)]
    [InlineData("gelu", Activation.GeluExact)]
    [InlineData("gelu_new", Activation.GeluTanh)]
    [InlineData("silu", Activation.Swish)]
    [InlineData("gated-gelu", Activation.GeGluTanh)]        // T5Config rewrites its dense_act_fn to gelu_new
    [InlineData("gated-gelu_new", Activation.GeGluTanh)]
    [InlineData("gated-gelu_python", Activation.GeGlu)]
    [InlineData("gated-relu", Activation.ReGlu)]
    [InlineData("gated-silu", Activation.SwiGlu)]
    [InlineData("gated-sigmoid", Activation.Glu)]
    [InlineData("gated-linear", Activation.Bilinear)]
    public void Feed_forward_proj_maps_to_the_catalogue_activation(string proj, Activation activation)
    {
        var model = ParseEdited("t5-relu", c => { c["feed_forward_proj"] = proj; c.Remove("dense_act_fn"); c.Remove("is_gated_act"); });
        Assert.Equal(activation, model.Activation);
        Assert.Equal(model, T5HfConfig.Parse(new T5HfConfig(model, null).ToJson(), "again").Model);
    }

    [Theory]
    [InlineData(NormKind.LayerNorm, NormPlacement.Pre, false)]
    [InlineData(NormKind.RmsNorm, NormPlacement.Post, false)]
    [InlineData(NormKind.LayerNorm, NormPlacement.Post, true)]
    [InlineData(NormKind.RmsNorm, NormPlacement.Pre, true)]
    public void Catalogue_choices_T5Config_lacks_round_trip_through_llm_encoder_decoder(NormKind norm, NormPlacement placement, bool bias)
    {
        var config = EncoderDecoderConfig.T5Micro with { Norm = norm, Placement = placement, Bias = bias, Dropout = 0.25f, LayerNormEpsilon = 3e-7f };
        string json = new T5HfConfig(config, null).ToJson();
        Assert.Equal(config, T5HfConfig.Parse(json, "ext").Model);
        var ext = JsonNode.Parse(json)![T5HfConfig.ExtensionField]!.AsObject();
        Assert.Equal(new[] { norm != NormKind.RmsNorm ? "Norm" : null, placement != NormPlacement.Pre ? "Placement" : null, bias ? "Bias" : null }.OfType<string>(),
            ext.Select(p => p.Key));   // only what differs from T5
    }

    [Fact]
    public void Save_replaces_the_file_and_load_reads_it_back()
    {
        Directory.CreateDirectory(_dir);
        string path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, "old");
        var config = new T5HfConfig(EncoderDecoderConfig.T5Tiny, "byte");
        config.Save(path);
        Assert.Equal(config, T5HfConfig.Load(path));
        Assert.Equal(config.ToJson(), File.ReadAllText(path));
        var e = Assert.Throws<FileNotFoundException>(() => T5HfConfig.Load(Path.Combine(_dir, "none.json")));
        Assert.Contains("none.json", e.Message);
    }

    [Theory]
    [InlineData("model_type", "\"bart\"", "model_type \"bart\"")]
    [InlineData("architectures", """["BartForConditionalGeneration"]""", "BartForConditionalGeneration")]
    [InlineData("feed_forward_proj", "\"gated-gelu_fast\"", "feed_forward_proj \"gated-gelu_fast\" is not supported")]
    [InlineData("feed_forward_proj", "\"tanh\"", "feed_forward_proj \"tanh\" is not supported")]
    [InlineData("feed_forward_proj", "\"relu-gated\"", "feed_forward_proj \"relu-gated\" is not of the form")]
    [InlineData("dense_act_fn", "\"gelu\"", "dense_act_fn \"gelu\" disagrees with feed_forward_proj \"relu\"")]
    [InlineData("is_gated_act", "true", "is_gated_act true disagrees")]
    [InlineData("is_encoder_decoder", "false", "is_encoder_decoder false")]
    [InlineData("is_decoder", "true", "is_decoder true")]
    [InlineData("d_model", "\"16\"", "field \"d_model\" is \"16\", not an integer")]
    [InlineData("num_heads", "0", "num_heads must be positive")]
    [InlineData("dropout_rate", "1.5", "dropout_rate 1.5")]
    [InlineData("tie_word_embeddings", "0", "field \"tie_word_embeddings\" is 0, not true or false")]
    [InlineData("pad_token_id", "40", "pad_token_id 40 is outside the vocabulary of 40")]
    [InlineData("relative_attention_num_buckets", "2", "relative_attention_num_buckets must be ≥ 4")]
    [InlineData("layer_norm_epsilon", "0", "layer_norm_epsilon must be positive")]
    [InlineData("llm_encoder_decoder", """{"Norm": "BatchNorm"}""", "llm_encoder_decoder.Norm is \"BatchNorm\", not one of LayerNorm, RmsNorm")]
    [InlineData("llm_encoder_decoder", """{"Placement": "Sandwich"}""", "the encoder-decoder takes pre or post norms")]
    [InlineData("llm_encoder_decoder", """{"Window": 4}""", "llm_encoder_decoder.Window is not an encoder-decoder option")]
    [InlineData("llm_encoder_decoder", """{"Bias": "yes"}""", "llm_encoder_decoder.Bias is \"yes\", not true or false")]
    public void Invalid_or_unsupported_fields_are_refused_naming_the_field_and_file(string field, string value, string why)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureFolder("t5-relu"), "config.json")))!.AsObject();
        json[field] = JsonNode.Parse(value);
        var e = Assert.Throws<InvalidDataException>(() => T5HfConfig.Parse(json.ToJsonString(), "t5/config.json"));
        Assert.Contains("t5/config.json", e.Message);
        Assert.Contains(why, e.Message);
    }

    [Theory]
    [InlineData("vocab_size")]
    [InlineData("d_model")]
    [InlineData("d_kv")]
    [InlineData("d_ff")]
    [InlineData("num_layers")]
    [InlineData("num_heads")]
    public void A_missing_size_is_refused_by_name(string field)
    {
        var e = Assert.Throws<InvalidDataException>(() => ParseEdited("t5-relu", c => c.Remove(field)));
        Assert.Contains($"missing required field \"{field}\"", e.Message);
    }

    [Fact]
    public void The_decoder_loader_points_a_T5_folder_to_the_T5_loader()
    {
        var e = Assert.Throws<InvalidDataException>(() => Checkpoint.LoadModel(FixtureFolder("t5-relu"), _cpu));
        Assert.Contains("T5Checkpoint", e.Message);
    }

    private static EncoderDecoderConfig ParseEdited(string fixture, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureFolder(fixture), "config.json")))!.AsObject();
        edit(json);
        return T5HfConfig.Parse(json.ToJsonString(), fixture).Model;
    }

    // ---- weights -----------------------------------------------------------------------------------------------------

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Load_then_save_is_bit_exact(string fixture)
    {
        string source = FixtureFolder(fixture), saved = Path.Combine(_dir, fixture);
        var (config, parameters, folder, tokenizer) = T5Checkpoint.Load(source, _cpu);
        Assert.Equal(Path.GetFullPath(source), folder);
        Assert.Null(tokenizer);
        Assert.Equal(config.ParameterSpecs().Select(s => s.Name), parameters.All.Select(p => p.Name));
        T5Checkpoint.Save(saved, new T5HfConfig(config, null), parameters);
        FixtureVariants.AssertSameTensors(Path.Combine(source, "model.safetensors"), Path.Combine(saved, "model.safetensors"));
        Assert.Equal(config, T5HfConfig.Load(Path.Combine(saved, "config.json")).Model);
        Assert.DoesNotContain(T5HfConfig.ExtensionField, File.ReadAllText(Path.Combine(saved, "config.json")));
        using var file = SafeTensorsFile.Read(Path.Combine(saved, "model.safetensors"));
        Assert.Contains("shared.weight", file.Names);
        Assert.DoesNotContain("encoder.embed_tokens.weight", file.Names);
        Assert.DoesNotContain("decoder.embed_tokens.weight", file.Names);
        Assert.Equal(!config.TiedEmbeddings, file.Names.Contains("lm_head.weight"));

        // and the saved folder loads to the same bytes again
        var again = T5Checkpoint.Load(saved, _cpu);
        T5Checkpoint.Save(Path.Combine(_dir, fixture + "-again"), new T5HfConfig(again.Config, null), again.Parameters);
        FixtureVariants.AssertSameTensors(Path.Combine(source, "model.safetensors"), Path.Combine(_dir, fixture + "-again", "model.safetensors"));
    }

    [Fact]
    public void A_run_folder_of_T5_steps_loads_its_latest_with_frozen_parameters()
    {
        var loaded = T5Checkpoint.Load(FixtureFolder("t5-gated"), _cpu);
        string run = Path.Combine(_dir, "run");
        Checkpoint.Save(run, 5, new T5HfConfig(loaded.Config, "byte"), loaded.Parameters);
        var back = T5Checkpoint.Load(run, _cpu, frozen: n => n.StartsWith("encoder.", StringComparison.Ordinal));
        Assert.Equal(Path.Combine(Path.GetFullPath(run), "step_000005"), back.Folder);
        Assert.Equal("byte", back.Tokenizer);
        Assert.All(back.Parameters.Trainable, p => Assert.False(p.Name.StartsWith("encoder.", StringComparison.Ordinal)));
        Assert.Contains(back.Parameters.Trainable, p => p.Name == "shared.weight");
        FixtureVariants.AssertSameTensors(Path.Combine(FixtureFolder("t5-gated"), "model.safetensors"), Path.Combine(back.Folder, "model.safetensors"));
    }

    [Fact]
    public void Embedding_aliases_and_a_tied_head_copy_load_as_the_one_shared_tensor()
    {
        var shared = Floats("t5-relu", "shared.weight");
        SafeTensorsEntry Copy(string name, float[] values) => SafeTensorsEntry.FromArray<float>(name, [40, 16], values);
        // transformers' older saves: all four names of the one tensor, plus the converted checkpoints' unused cross bias
        string folder = Variant("t5-relu", "all-names", extra: [Copy("encoder.embed_tokens.weight", shared), Copy("decoder.embed_tokens.weight", shared),
            Copy("lm_head.weight", shared), SafeTensorsEntry.FromArray<float>(T5Checkpoint.UnusedCrossBias, [8, 3], new float[24])]);
        AssertLoadsAsFixture(folder, "t5-relu");

        // only an alias, no shared.weight
        folder = Variant("t5-relu", "alias-only", rename: n => n == "shared.weight" ? "decoder.embed_tokens.weight" : n);
        AssertLoadsAsFixture(folder, "t5-relu");

        var other = shared.Select(v => v + 1f).ToArray();
        folder = Variant("t5-relu", "alias-differs", extra: [Copy("encoder.embed_tokens.weight", other)]);
        var e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("'encoder.embed_tokens.weight' differs from 'shared.weight'", e.Message);

        folder = Variant("t5-relu", "head-differs", extra: [Copy("lm_head.weight", other)]);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("'lm_head.weight' differs from 'shared.weight'", e.Message);
        Assert.Contains("tie_word_embeddings", e.Message);

        folder = Variant("t5-relu", "alias-shape", extra: [SafeTensorsEntry.FromArray<float>("encoder.embed_tokens.weight", [41, 16], new float[41 * 16])]);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("'encoder.embed_tokens.weight' has shape [41, 16]", e.Message);
    }

    [Fact]
    public void An_untied_model_needs_its_lm_head_and_a_tied_one_has_none()
    {
        string folder = Variant("t5-gated", "no-head", rename: n => n == "lm_head.weight" ? null : n);
        var e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("missing tensor 'lm_head.weight'", e.Message);
        Assert.Contains("tie_word_embeddings is false", e.Message);

        // an untied file read as tied: lm_head differs from shared
        folder = Variant("t5-gated", "read-tied", config: c => c["tie_word_embeddings"] = true);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("'lm_head.weight' differs from 'shared.weight'", e.Message);
    }

    [Fact]
    public void A_sharded_checkpoint_loads()
    {
        string folder = Path.Combine(_dir, "sharded");
        FixtureVariants.Shard(Path.Combine(FixtureFolder("t5-gated"), "model.safetensors"), folder,
            n => n.StartsWith("decoder.", StringComparison.Ordinal) || n == "lm_head.weight");
        File.Copy(Path.Combine(FixtureFolder("t5-gated"), "config.json"), Path.Combine(folder, "config.json"));
        AssertLoadsAsFixture(folder, "t5-gated");
    }

    [Fact]
    public void Config_fields_that_disagree_with_the_weights_are_named_with_the_tensor()
    {
        (string Field, object Value, string Why)[] cases =
        [
            ("num_layers", 3, "says num_layers 3, but"),
            ("num_decoder_layers", 2, "says num_decoder_layers 2, but"),
            ("d_model", 24, "says vocab_size 40, d_model 24, but"),
            ("vocab_size", 50, "says vocab_size 50, d_model 16, but"),
            ("d_ff", 32, "says d_ff 32, d_model 16, but"),
            ("relative_attention_num_buckets", 16, "says relative_attention_num_buckets 16, num_heads 3, but"),
            ("d_kv", 4, "says num_heads 3 · d_kv 4 = 12, d_model 16, but"),
            ("feed_forward_proj", "gated-relu", "encoder.block.0.layer.1.DenseReluDense.wi.weight: an FFN that is not gated"),
        ];
        foreach (var (field, value, why) in cases)
        {
            string folder = Variant("t5-relu", "config-" + field, config: c =>
            {
                c[field] = JsonValue.Create(value);
                if (field == "feed_forward_proj") { c.Remove("dense_act_fn"); c.Remove("is_gated_act"); }
            });
            var e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
            Assert.Contains(why, e.Message);
            Assert.Contains("config.json", e.Message);
        }
        string gated = Variant("t5-gated", "config-relu", config: c => { c["feed_forward_proj"] = "relu"; c.Remove("dense_act_fn"); c.Remove("is_gated_act"); });
        var g = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(gated, _cpu));
        Assert.Contains("wi_0.weight: a gated FFN's", g.Message);
    }

    [Fact]
    public void A_missing_unexpected_misshapen_or_non_float_tensor_is_refused_by_name()
    {
        string folder = Variant("t5-relu", "missing", rename: n => n == "decoder.block.2.layer.1.EncDecAttention.v.weight" ? null : n);
        var e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("missing tensor 'decoder.block.2.layer.1.EncDecAttention.v.weight'", e.Message);

        folder = Variant("t5-relu", "no-embedding", rename: n => n == "shared.weight" ? null : n);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("missing tensor 'shared.weight' (nor encoder.embed_tokens.weight, decoder.embed_tokens.weight)", e.Message);

        folder = Variant("t5-relu", "unexpected", extra: [SafeTensorsEntry.FromArray<float>("decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight", [8, 3], new float[24])]);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("unexpected tensor 'decoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight'", e.Message);

        const string k = "decoder.block.2.layer.1.EncDecAttention.k.weight";
        folder = Variant("t5-relu", "misshapen", rename: n => n == k ? null : n, extra: [SafeTensorsEntry.FromArray<float>(k, [24, 15], new float[24 * 15])]);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains($"'{k}' has shape [24, 15]", e.Message);
        Assert.Contains("[24, 16]", e.Message);

        const string norm = "encoder.final_layer_norm.weight";
        folder = Variant("t5-relu", "int", rename: n => n == norm ? null : n, extra: [SafeTensorsEntry.FromArray<int>(norm, [16], new int[16])]);
        e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains($"'{norm}' has dtype I32", e.Message);
    }

    [Fact]
    public void A_truncated_weights_file_is_refused_naming_it()
    {
        string folder = Variant("t5-relu", "truncated");
        string model = Path.Combine(folder, "model.safetensors");
        var bytes = File.ReadAllBytes(model);
        File.WriteAllBytes(model, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, _cpu));
        Assert.Contains("model.safetensors", e.Message);
    }

    // ---- helpers -----------------------------------------------------------------------------------------------------

    private void AssertLoadsAsFixture(string folder, string fixture)
    {
        var (config, parameters, _, _) = T5Checkpoint.Load(folder, _cpu);
        string saved = Path.Combine(_dir, Path.GetFileName(folder) + "-saved");
        T5Checkpoint.Save(saved, new T5HfConfig(config, null), parameters);
        FixtureVariants.AssertSameTensors(Path.Combine(FixtureFolder(fixture), "model.safetensors"), Path.Combine(saved, "model.safetensors"));
    }


    private static float[] Floats(string fixture, string tensor)
    {
        using var file = SafeTensorsFile.Read(Path.Combine(FixtureFolder(fixture), "model.safetensors"));
        var values = new float[file.Info(tensor).ElementCount];
        file.ReadFloat(tensor, values);
        return values;
    }

    /// <summary>The fixture's folder copied to a new one, its tensors renamed, dropped or added, its config edited.</summary>
    private string Variant(string fixture, string name, Func<string, string?>? rename = null,
        IEnumerable<SafeTensorsEntry>? extra = null, Action<JsonObject>? config = null) =>
        FixtureVariants.Variant(FixtureFolder(fixture), Path.Combine(_dir, name), rename, extra, config);
}
