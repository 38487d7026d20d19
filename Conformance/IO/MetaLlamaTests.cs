// Meta's LLaMA layout against Meta's own forward: Fixtures/meta/ (rerun: /usr/bin/python3 Tools/fixtures/torch_meta_fixture.py)
// holds params.json, consolidated.safetensors in Meta's names (f32, GQA, rope.freqs buffer) and logits.safetensors (a [2, 7]
// token batch and its logits from llama/model.py's forward with interleaved complex RoPE, computed by torch in float64 and
// rounded to f32 once). The folder is loaded (converted in memory to HF LLaMA, wq/wk rows permuted), run, compared element by
// element, saved in HF's layout and reloaded bit for bit; the permutation is shown to matter, and the refusals are checked.
using System.Text.Json.Nodes;
using Llm.Autograd;
using Llm.Checks;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;
using Xunit.Abstractions;

namespace Llm.Conformance.IO;

public sealed class MetaLlamaTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>
    /// |a − b| ≤ 1e-5·(|b| + rms(b)) per logit, as for the HF LLaMA fixture (same depth, dim 32, K ≤ 112-term dot
    /// products): ~20 chained f32 ops, each ~√K·2⁻²⁴ ≈ 6e-7 of its scale, amplified by RMSNorm's 1/rms and SwiGLU's
    /// product of two projections. Meta's RoPE turns the same float32 angles as ours (t·θ^(−2i/hs)), so the permutation
    /// adds no error: it only moves rows. Worst seen (cpu-fast): 0.16 of the bound; without the permutation the worst
    /// logit is ~3·10⁵ bounds off.
    /// </summary>
    private const double LogitTolerance = 1e-5;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-meta-" + Guid.NewGuid().ToString("N"));
    private readonly CpuBackend _cpu = new(fastPaths: true);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static string Fixture => Path.Combine(AppContext.BaseDirectory, "Fixtures", "meta");

    /// <summary>The forward's logits and the fixture's, and the worst error as a fraction of the bound.</summary>
    private static (double[] Actual, double[] Expected, int[] Shape, double Worst) Logits(Decoder model) =>
        LogitsFixture.Run(model, Path.Combine(Fixture, "logits.safetensors"), LogitTolerance);

    private void AssertLogits(Decoder model, string what)
    {
        var (actual, expected, shape, worst) = Logits(model);
        output.WriteLine($"{what}: worst logit error {worst:F3} of the bound {LogitTolerance:E0}");
        Compare.Check(new CheckContext([]), "Meta LLaMA forward", model.Backend.Name, "logits", shape, actual, expected,
            new Tolerance(4 * LogitTolerance * LogitTolerance, LogitTolerance, "F32 forward against Meta's llama/model.py in torch float64"), what);
    }

    [Fact]
    public void Logits_match_Metas_forward()
    {
        var (model, tokenizer) = Decoder.Load(Fixture, _cpu);
        Assert.Equal(WeightNaming.Llama, model.Config.Naming);
        Assert.Equal(112, model.Config.FfnWidth);           // 4·32 → 85 → int(1.3·85) = 110 → 112 (multiple_of 16)
        Assert.Equal(2, model.Config.KeyValueHeads);
        Assert.Equal(1000f, model.Config.RopeTheta);
        Assert.Equal(16, model.Config.ContextLength);
        Assert.Null(tokenizer);
        AssertLogits(model, "meta");
    }

    /// <summary>eval and sample resolve --checkpoint with ResolveModelFolder before loading: a Meta folder passes.</summary>
    [Fact]
    public void A_Meta_folder_resolves_as_a_model_folder() =>
        Assert.Equal(Path.GetFullPath(Fixture), Checkpoint.ResolveModelFolder(Fixture));

    [Fact]
    public void Saves_as_Hugging_Face_LLaMA_and_reloads_bit_exact()
    {
        var meta = Checkpoint.LoadModel(Fixture, _cpu);
        string saved = Path.Combine(_dir, "hf");
        Checkpoint.SaveModel(saved, meta.Config, meta.Parameters);
        Assert.True(File.Exists(Path.Combine(saved, Checkpoint.ConfigFile)));
        Assert.False(File.Exists(Path.Combine(saved, MetaLlama.ParamsFile)));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, Checkpoint.ConfigFile)))!.AsObject();
        Assert.Equal("llama", (string?)json["model_type"]);
        Assert.Equal(112, (int?)json["intermediate_size"]);
        Assert.Equal(2, (int?)json["num_key_value_heads"]);
        Assert.DoesNotContain(HfConfig.DecoderField, json.ToJsonString());   // a plain HF LLaMA config

        var hf = Checkpoint.LoadModel(saved, _cpu);
        Assert.Equal(meta.Config.Model, hf.Config.Model);
        foreach (var p in meta.Parameters.All)
            Assert.True(OpCheck.Download(_cpu, p.Value).AsSpan().SequenceEqual(OpCheck.Download(_cpu, hf.Parameters[p.Name].Value)),
                $"{p.Name} differs after the save as HF and reload");
        var a = Logits(new Decoder(meta.Config.Model, meta.Parameters)).Actual;
        var b = Logits(new Decoder(hf.Config.Model, hf.Parameters)).Actual;
        Assert.True(a.AsSpan().SequenceEqual(b), "the reloaded HF folder computes other logits");
    }

    /// <summary>Meta's wq/wk rows copied unpermuted into q_proj/k_proj: our rotate-half RoPE then pairs the wrong
    /// dimensions, and the logits leave the bound by orders of magnitude; so the test above sees the permutation.</summary>
    [Fact]
    public void Without_the_permutation_the_logits_differ()
    {
        var loaded = Checkpoint.LoadModel(Fixture, _cpu);
        var config = loaded.Config.Model;
        using (var file = SafeTensorsFile.Read(Path.Combine(Fixture, "consolidated.safetensors")))
            foreach (var (meta, hf, heads) in MetaLlama.NameMap(config))
                if (heads is not null)
                {
                    var rows = new float[file.Info(meta).ElementCount];
                    file.ReadFloat(meta, rows);
                    _cpu.Upload<float>(rows, loaded.Parameters[hf].Value);
                }
        double worst = Logits(new Decoder(config, loaded.Parameters)).Worst;
        output.WriteLine($"unpermuted: worst logit error {worst:F1} of the bound");
        Assert.True(worst > 100, $"without the permutation the worst logit error is only {worst:F2} of the bound: the fixture does not see the pairing");
    }

    /// <summary>The fixture split as Meta's model-parallel saves split it (wq, wk, wv, w1, w3, output by rows; wo, w2 and
    /// tok_embeddings by columns; norms copied) into consolidated.00 and .01: the same parameters, bit for bit.</summary>
    [Fact]
    public void Model_parallel_shards_join_into_the_same_parameters()
    {
        string folder = Path.Combine(_dir, "shards");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Fixture, MetaLlama.ParamsFile), Path.Combine(folder, MetaLlama.ParamsFile));
        var shards = new[] { new List<SafeTensorsEntry>(), new List<SafeTensorsEntry>() };
        using (var file = SafeTensorsFile.Read(Path.Combine(Fixture, "consolidated.safetensors")))
            foreach (string n in file.Names)
            {
                var shape = file.Info(n).Shape;
                var v = new float[file.Info(n).ElementCount];
                file.ReadFloat(n, v);
                int axis = shape.Length == 1 ? -1 : n.EndsWith("wo.weight") || n.EndsWith("w2.weight") || n.StartsWith("tok_embeddings") ? 1 : 0;
                for (int s = 0; s < 2; s++)
                {
                    if (axis < 0) { shards[s].Add(SafeTensorsEntry.FromArray<float>(n, shape, v)); continue; }
                    // shard 0 takes the first ⌊n/2⌋ along the axis, shard 1 the rest (the vocabulary of 61 splits unevenly)
                    int rows = shape[0], cols = shape[1], len = shape[axis], start = s == 0 ? 0 : len / 2, count = s == 0 ? len / 2 : len - len / 2;
                    int[] part = axis == 0 ? [count, cols] : [rows, count];
                    var slice = new float[part[0] * part[1]];
                    for (int r = 0; r < part[0]; r++)
                        for (int c = 0; c < part[1]; c++)
                            slice[r * part[1] + c] = axis == 0 ? v[(start + r) * cols + c] : v[r * cols + start + c];
                    shards[s].Add(SafeTensorsEntry.FromArray<float>(n, part, slice));
                }
            }
        for (int s = 0; s < 2; s++) SafeTensorsWriter.Write(Path.Combine(folder, $"consolidated.0{s}.safetensors"), shards[s]);

        var whole = Checkpoint.LoadModel(Fixture, _cpu);
        var joined = Checkpoint.LoadModel(folder, _cpu);
        foreach (var p in whole.Parameters.All)
            Assert.True(OpCheck.Download(_cpu, p.Value).AsSpan().SequenceEqual(OpCheck.Download(_cpu, joined.Parameters[p.Name].Value)),
                $"{p.Name} differs when joined from two shards");
    }

    [Theory]
    [InlineData(4096, 256, null, 11008)]    // Llama 2 7B
    [InlineData(4096, 1024, 1.3, 14336)]    // Llama 3 8B
    [InlineData(8192, 4096, 1.3, 28672)]    // Llama 2 70B
    [InlineData(32, 16, 1.3, 112)]          // the fixture
    public void The_FFN_width_follows_Metas_rule(int dim, int multipleOf, double? multiplier, int expected) =>
        Assert.Equal(expected, MetaLlama.FfnWidth(dim, multipleOf, multiplier));

    [Fact]
    public void Absent_optional_fields_take_ModelArgs_defaults()
    {
        var c = MetaLlama.ParseParams("""{"dim": 64, "n_layers": 1, "n_heads": 4, "vocab_size": 10, "multiple_of": 32, "norm_eps": 1e-6}""", "params.json");
        Assert.Equal(10000f, c.RopeTheta);
        Assert.Equal(4, c.KeyValueHeads);
        Assert.Equal(2048, c.ContextLength);
        Assert.Equal(192, c.FfnWidth);      // 256 → 170 → 192
    }

    // ---- refusals -------------------------------------------------------------------------------------------------

    [Fact]
    public void A_pickled_pth_folder_is_refused_naming_the_file()
    {
        string folder = Path.Combine(_dir, "pth");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Fixture, MetaLlama.ParamsFile), Path.Combine(folder, MetaLlama.ParamsFile));
        File.WriteAllBytes(Path.Combine(folder, "consolidated.00.pth"), [0x80, 0x02]);
        var e = Assert.Throws<NotSupportedException>(() => Decoder.Load(folder, _cpu));
        Assert.Contains("consolidated.00.pth", e.Message);
        Assert.Contains("convert it to safetensors", e.Message);
    }

    [Theory]
    [InlineData("dim")]
    [InlineData("n_layers")]
    [InlineData("n_heads")]
    [InlineData("vocab_size")]
    [InlineData("multiple_of")]
    [InlineData("norm_eps")]
    public void A_missing_params_field_is_named(string field)
    {
        string folder = Copy("missing-" + field, json => json.Remove(field));
        var e = Assert.Throws<InvalidDataException>(() => Decoder.Load(folder, _cpu));
        Assert.Contains(MetaLlama.ParamsFile, e.Message);
        Assert.Contains($"missing required field \"{field}\"", e.Message);
    }

    [Fact]
    public void Unknown_or_unsupported_params_fields_are_refused()
    {
        var e = Assert.Throws<InvalidDataException>(() => Decoder.Load(Copy("scaled", json => json["use_scaled_rope"] = true), _cpu));
        Assert.Contains("use_scaled_rope", e.Message);
        e = Assert.Throws<InvalidDataException>(() => Decoder.Load(Copy("moe", json => json["moe_args"] = 8), _cpu));
        Assert.Contains("\"moe_args\"", e.Message);
    }

    [Fact]
    public void A_wrong_tensor_shape_is_named()
    {
        // n_kv_heads 4 where the file's wk has 2 heads' rows: params.json and the weights disagree
        string folder = Copy("shape", json => json["n_kv_heads"] = 4);
        var e = Assert.Throws<InvalidDataException>(() => Decoder.Load(folder, _cpu));
        Assert.Contains("'layers.0.attention.wk.weight' has shape [16, 32]", e.Message);
        Assert.Contains("consolidated.safetensors", e.Message);
        Assert.Contains("[32, 32]", e.Message);
    }

    /// <summary>The fixture folder with its params.json edited.</summary>
    private string Copy(string name, Action<JsonObject> edit)
    {
        string folder = Path.Combine(_dir, name);
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Fixture, "consolidated.safetensors"), Path.Combine(folder, "consolidated.safetensors"));
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Fixture, MetaLlama.ParamsFile)))!.AsObject();
        edit(json);
        File.WriteAllText(Path.Combine(folder, MetaLlama.ParamsFile), json.ToJsonString());
        return folder;
    }
}
