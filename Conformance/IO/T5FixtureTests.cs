// The encoder-decoder against Hugging Face's T5 formulas. Fixtures/hf/t5-relu/, t5-gated/ (config.json,
// model.safetensors, logits.safetensors with encoder_tokens [2, 7] I32, decoder_tokens [2, 5] I32 and logits [2, 5, 40]
// computed by torch in float64 from modeling_t5.py's formulas and rounded to f32 once) and Fixtures/hf/t5-buckets.json
// (T5Attention._relative_position_bucket over compute_bias's grid, in transformers' float32 arithmetic).
// Rerun the fixtures: /usr/bin/python3 Tools/fixtures/torch_t5_fixture.py. Before committing, the logits were checked
// against a second, scalar-loop forward written separately from the torch one (worst |Δ| 4.9e-8 relu, 2.1e-7 gated:
// the fixture's f32 rounding) and every bucket against a scalar float32 bucket function (no mismatch). The log-spaced
// buckets need transformers' float32 arithmetic: (long)(max_exact + (float)log((float)n / max_exact) /
// (float)log(max_distance / max_exact) · (num_buckets − max_exact)); the table's last three cases put distances on
// edges where the same formula in double gives another bucket (8 of their buckets differ), so a double version fails.
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

public sealed class T5FixtureTests(ITestOutputHelper output)
{
    /// <summary>
    /// |a − b| ≤ 1e-4·(|b| + rms(b)) per logit for the f32 forward against torch's float64 one. Derivation: the deepest
    /// path is 2 encoder + 3 decoder blocks, ~30 chained f32 ops, each a dot product of K ≤ 24 terms (d_ff 24, inner 24,
    /// d_model 16) with relative error ~√K·2⁻²⁴ ≈ 3e-7 of its scale; RMSNorm's 1/rms and the gated FFN's product of two
    /// projections amplify it a few times, T5's unscaled q·kᵀ (no 1/√d_kv) makes the softmax up to √8 ≈ 2.8× more
    /// sensitive than the decoders', and the random weights' gains (N(0, 1) embeddings, N(0, 1) untied head) carry it
    /// through both stacks: ≈ 30 · 3e-7 · 3 · 3 ≈ 1e-5; measured 7.0e-6 (relu, the worst of cpu-fast and lavapipe's
    /// variants) and 3.8e-6 (gated), so 1e-4 keeps a 14× margin. The F64 definition is held to 1e-7: only the fixture's
    /// own f32 rounding of the logits (≤ 2⁻²⁴ ≈ 6e-8 of |b|) separates it from torch's float64; measured 0.31 of it.
    /// </summary>
    private const double LogitTolerance = 1e-4;

    private readonly CpuBackend _cpu = new(fastPaths: true);

    public static TheoryData<string> Fixtures() => new() { "t5-relu", "t5-gated" };

    /// <summary>Every fixture on every subject backend (the CPU fast paths, and Vulkan's variants unless skipped).</summary>
    public static TheoryData<string, string> FixturesOnSubjects()
    {
        var data = new TheoryData<string, string>();
        foreach (var fixture in new[] { "t5-relu", "t5-gated" })
            foreach (var subject in Llm.Conformance.Harness.Backends.Subjects) data.Add(fixture, subject.Name);
        return data;
    }

    private static string FixtureFolder(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "hf", name);

    [Theory]
    [MemberData(nameof(FixturesOnSubjects))]
    public void Logits_match_the_Hugging_Face_forward(string fixture, string subject)
    {
        var backend = Llm.Conformance.Harness.Backends.Subjects.Single(s => s.Name == subject).Backend;
        var (config, parameters, _, _) = T5Checkpoint.Load(FixtureFolder(fixture), backend);
        AssertLogits(new EncoderDecoder(config, parameters), fixture, LogitTolerance);
    }

    /// <summary>The F64 definition (the scalar CPU oracle) on the same weights, so that a formula that differs from
    /// transformers' (a scaled score, a missing d^−½ on the tied head, a per-layer bias) fails here first.</summary>
    [Theory]
    [MemberData(nameof(Fixtures))]
    public void The_F64_definition_matches_the_Hugging_Face_forward(string fixture)
    {
        var (config, loaded, _, _) = T5Checkpoint.Load(FixtureFolder(fixture), _cpu);
        var oracle = new CpuBackend(fastPaths: false);
        var parameters = new ParameterSet(oracle, config.ParameterSpecs(), DType.F64);
        foreach (var p in parameters.All) oracle.UploadDoubles(OpCheck.Download(_cpu, loaded[p.Name].Value), p.Value);
        AssertLogits(new EncoderDecoder(config, parameters), fixture, 1e-7);
    }

    private void AssertLogits(EncoderDecoder model, string fixture, double tolerance)
    {
        using var file = SafeTensorsFile.Read(Path.Combine(FixtureFolder(fixture), "logits.safetensors"));
        var backend = model.Parameters.Backend;
        Tensor Ids(Tape tape, string name)
        {
            var shape = file.Info(name).Shape;
            var ids = new int[shape[0] * shape[1]];
            file.ReadInt32(name, ids);
            var t = tape.Temp(DType.I32, shape);
            backend.Upload<int>(ids, t);
            return t;
        }
        var expected = new double[file.Info("logits").ElementCount];
        file.ReadDouble("logits", expected);
        double[] actual;
        using (var tape = new Tape(backend))
            actual = OpCheck.Download(backend, model.Forward(tape, Ids(tape, "encoder_tokens"), Ids(tape, "decoder_tokens")).Value);
        double rms = Compare.Rms(expected);
        double worst = actual.Select((a, i) => Math.Abs(a - expected[i]) / (tolerance * (Math.Abs(expected[i]) + rms))).Max();
        output.WriteLine($"{fixture} {model.Parameters.DType}: worst logit error {worst:F3} of the bound {tolerance:E0}");
        Compare.Check(new CheckContext([]), "T5 forward", backend.Name, "logits", file.Info("logits").Shape, actual, expected,
            new Tolerance(4 * tolerance * tolerance, tolerance, $"{model.Parameters.DType} forward against torch float64"), fixture);
    }

    /// <summary>Every bucket of every case equal to transformers' (integers: exact). The cases cover both directions,
    /// decoding offsets over a cache, distances beyond max_distance, and bucket counts whose halves are odd.</summary>
    [Fact]
    public void Relative_buckets_match_transformers()
    {
        var cases = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "hf", "t5-buckets.json")))!["cases"]!.AsArray();
        Assert.NotEmpty(cases);
        foreach (var c in cases)
        {
            int tq = c!["query_length"]!.GetValue<int>(), tk = c["key_length"]!.GetValue<int>(), offset = c["query_offset"]!.GetValue<int>();
            bool bidirectional = c["bidirectional"]!.GetValue<bool>();
            int nb = c["num_buckets"]!.GetValue<int>(), maxd = c["max_distance"]!.GetValue<int>();
            var expected = c["buckets"]!.AsArray().Select(v => v!.GetValue<int>()).ToArray();
            Assert.Equal(tq * tk, expected.Length);
            var actual = EncoderDecoder.RelativeBuckets(tq, tk, offset, bidirectional, nb, maxd);
            for (int i = 0; i < expected.Length; i++)
                Assert.True(expected[i] == actual[i],
                    $"({tq}, {tk}, offset {offset}, {(bidirectional ? "bidirectional" : "causal")}, {nb} buckets, max {maxd}): query {i / tk} key {i % tk} has bucket {actual[i]}, transformers {expected[i]}");
        }
    }

    /// <summary>Loaded, saved by T5Checkpoint and loaded again, the model computes the same logits bit for bit.</summary>
    [Theory]
    [MemberData(nameof(Fixtures))]
    public void A_saved_and_reloaded_model_computes_the_same_logits(string fixture)
    {
        string dir = Path.Combine(Path.GetTempPath(), "llm-t5-fixture-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (config, parameters, _, _) = T5Checkpoint.Load(FixtureFolder(fixture), _cpu);
            T5Checkpoint.Save(dir, new T5HfConfig(config, null), parameters);
            var again = T5Checkpoint.Load(dir, _cpu);
            AssertLogits(new EncoderDecoder(again.Config, again.Parameters), fixture, LogitTolerance);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }
}
