using System.Text.Json.Nodes;
using Llm.Autograd;
using Llm.Checks;
using Llm.Common;
using Llm.Conformance.Harness;
using Llm.Conformance.Vulkan;
using Llm.Cpu;
using Llm.Inference;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Xunit;
using static Llm.Conformance.Model.EncoderDecoderTests;

namespace Llm.Conformance.Model;

/// <summary>
/// Switch Transformer's shape: T5 with mixture-of-experts FFNs in every other block of both stacks. Its whole-model
/// fp64 gradients (cross-entropy and the MoE auxiliary losses) match finite differences with the routing unchanged by
/// every perturbation, every subject computes the definition, one expert with room for every token is the dense T5,
/// cached generation equals uncached, training agrees between the Reference and Vulkan and learns, and checkpoints and
/// configs round-trip (and a config that disagrees with the MoE tensors is refused naming the tensor).
/// </summary>
public sealed class SwitchT5Tests
{
    // Micro, Setup, Draw, Build and Ids are EncoderDecoderTests': the same micro sizes and random weights (gains near 1).

    /// <summary>switch-t5-micro's MoE (4 experts, top-1, every other FFN) at awkward sizes, and a gated untied top-2 variant
    /// with every FFN MoE. The finite differences' forwards do not record, which takes the eval capacity: here the training one.</summary>
    public static IReadOnlyDictionary<string, EncoderDecoderConfig> Configs { get; } = new Dictionary<string, EncoderDecoderConfig>
    {
        ["switch-t5-micro"] = Micro(EncoderDecoderConfig.SwitchT5Micro) with { Moe = EncoderDecoderConfig.SwitchT5Micro.Moe! with { EvalCapacityFactor = 1.25 } },
        ["gegelu-untied-top2-every"] = Micro(EncoderDecoderConfig.SwitchT5Micro) with
        {
            Activation = Activation.GeGluTanh, TiedEmbeddings = false,
            Moe = new MoeConfig { Experts = 3, TopK = 2, Every = 1, CapacityFactor = 1.25, EvalCapacityFactor = 1.25 },
        },
    };

    public static TheoryData<string> Names => [.. Configs.Keys];

    /// <summary>As EncoderDecoderTests': 1e-6 NMSE, 1e-3 of (|b| + RMS) per element (compounded f32 error of ~60 ops).</summary>
    private static readonly Tolerance ModelTolerance = new(1e-6, 1e-3, "a 2+2-layer Switch encoder-decoder step: compounded f32 error");

    /// <summary>One step's values: the cross-entropy per target then every auxiliary loss's elements; their seeds (the
    /// batch's dLosses, each auxiliary's weight); and the routing slots of every MoE block. Backward (when asked) seeds
    /// L = Σ dLoss_n·ce_n + Σ_aux weight·Σ value, as the Trainer does, into freshly zeroed gradients.</summary>
    private static (double[] Values, double[] Seeds, int[] Routing, string[] AuxNames) Step(EncoderDecoder model, Setup s, bool backward)
    {
        var backend = model.Backend;
        var dtype = model.Parameters.DType;
        using var tape = new Tape(backend, recording: backward);
        var output = model.Forward(tape, new TokenBatch(s.Inputs, s.Targets, s.B, s.T) { EncoderInputs = s.Source, EncoderLength = s.Te });
        var losses = tape.CrossEntropy(output.Logits, Ids(backend, s.Targets, s.B, s.T));
        var routing = output.RoutingSlots.SelectMany(slots => { var host = new int[slots.Length]; backend.Download<int>(slots, host); return host; }).ToArray();
        var values = OpCheck.Download(backend, losses.Value).Concat(output.Auxiliary.SelectMany(a => OpCheck.Download(backend, a.Value.Value))).ToArray();
        var seeds = s.DLosses.Concat(output.Auxiliary.SelectMany(a => Enumerable.Repeat((double)a.Weight, a.Value.Value.Length))).ToArray();
        if (backward)
        {
            model.Parameters.ZeroGrad();
            var dLosses = backend.Allocate(dtype, [s.B * s.T]);
            OpCheck.UploadFloats(backend, dLosses, s.DLosses);
            var all = new List<(Var, Tensor)> { (losses, dLosses) };
            foreach (var aux in output.Auxiliary)
            {
                var seed = backend.Allocate(dtype, aux.Value.Shape);
                backend.Fill(seed, aux.Weight);
                all.Add((aux.Value, seed));
            }
            tape.Backward(all);
        }
        return (values, seeds, routing, [.. output.Auxiliary.Select(a => a.Name)]);
    }

    /// <summary>The MoE blocks report their losses under distinct tags per stack, and their routing slots.</summary>
    [Fact]
    public void Each_moe_block_reports_its_losses_and_slots_under_its_stacks_tag()
    {
        var config = Configs["switch-t5-micro"];
        var s = Draw(config, 2, 6, 5, 3);
        var (_, _, routing, names) = Step(Build(config, Oracle.Backend, DType.F64, s.Weights), s, backward: false);
        Assert.Equal(["balance.enc.1", "z.enc.1", "balance.dec.1", "z.dec.1"], names);
        Assert.Equal(2 * 6 + 2 * 5, routing.Length);   // top-1: one slot per token of each MoE block
    }

    /// <summary>fp64 on the definition: every parameter tensor's gradient (routers and stacked experts included) of the
    /// cross-entropy plus the balance and z losses matches central differences at 6 coordinates (relative 1e-6), and no
    /// perturbation changes the routing (across a flipped choice or a drop a difference is no derivative).</summary>
    [Theory, MemberData(nameof(Names))]
    public void GradientsMatchFiniteDifferences(string name)
    {
        var config = Configs[name];
        var s = Draw(config, 2, 6, 5, 17);
        var model = Build(config, Oracle.Backend, DType.F64, s.Weights);
        var (_, seeds, routing, _) = Step(model, s, backward: true);
        var rng = new Rng(0xF00D);
        foreach (var p in model.Parameters.All)
        {
            double[] x = Oracle.Read(p.Value), analytic = Oracle.Read(p.Grad!);
            if (!p.Name.EndsWith(".k.bias")) Assert.True(analytic.Any(g => g != 0), $"{name}: {p.Name} received no gradient");
            double[] Forward(double[] xs)
            {
                Oracle.Write(p.Value, xs);
                var (values, _, moved, _) = Step(model, s, backward: false);
                Oracle.Write(p.Value, x);
                Assert.True(moved.SequenceEqual(routing), $"{name}: perturbing {p.Name} changed the MoE routing, so its finite differences are not a derivative");
                return values;
            }
            FiniteDifferences.Check(name + " backward", p.Name, name, x, Forward, seeds, analytic, rng, maxCoords: 6);
        }
    }

    /// <summary>Every subject (F32) routes as the definition does and computes its losses (auxiliary ones included) and
    /// gradients from the same weights.</summary>
    [Theory, MemberData(nameof(Names))]
    public void EverySubjectMatchesTheDefinition(string name)
    {
        var config = Configs[name];
        var s = Draw(config, 2, 7, 6, 23);
        var oracle = Build(config, Oracle.Backend, DType.F64, s.Weights);
        var (oracleValues, _, oracleRouting, _) = Step(oracle, s, backward: true);
        foreach (var subject in Backends.Subjects)
        {
            var model = Build(config, subject.Backend, subject.DType, s.Weights);
            var (values, _, routing, _) = Step(model, s, backward: true);
            Assert.True(routing.SequenceEqual(oracleRouting), $"{name} on {subject.Name}: the routing differs from the definition's");
            Compare.Check(Backends.Context, name + " forward", subject.Name, "losses", [values.Length], values, oracleValues, ModelTolerance, name);
            foreach (var (p, q) in model.Parameters.All.Zip(oracle.Parameters.All))
            {
                double scale = p.Name.EndsWith(".k.bias") ? Rms(Oracle.Read(oracle.Parameters[p.Name[..^"bias".Length] + "weight"].Grad!)) : 0;
                Compare.Check(Backends.Context, name + " backward", subject.Name, "d" + p.Name, p.Grad!.Shape,
                    OpCheck.Download(subject.Backend, p.Grad!), Oracle.Read(q.Grad!), ModelTolerance, name, scale: scale);
            }
        }
    }

    private static double Rms(double[] xs) => Math.Sqrt(xs.Average(x => x * x));

    /// <summary>
    /// The identity: one expert (its softmax gate is exactly 1, top-1 gates are not renormalised) with capacity for every
    /// token (factor 1: ⌈N/1⌉ = N) in every block is the dense T5 whose DenseReluDense holds that expert's matrices
    /// (transposed: nn.Linear's [out, in] against the stacked [E, in, out]); the router's values do not matter. fp64, to
    /// 1e-12 relative: only the matmul's grouping separates the two.
    /// </summary>
    [Theory]
    [InlineData(Activation.Relu)]
    [InlineData(Activation.GeGluTanh)]
    public void One_expert_with_room_for_every_token_is_the_dense_T5(Activation activation)
    {
        var dense = Micro(EncoderDecoderConfig.T5Micro) with { Activation = activation };
        var moe = dense with { Moe = new MoeConfig { Experts = 1, TopK = 1, Every = 1, CapacityFactor = 1, EvalCapacityFactor = 1 } };
        var backend = Oracle.Backend;
        var t5 = new EncoderDecoder(backend, dense, DType.F64);
        t5.InitializeWeights(3);
        var switchT5 = new EncoderDecoder(backend, moe, DType.F64);
        switchT5.InitializeWeights(4);
        int copied = 0;
        foreach (var p in switchT5.Parameters.All)
        {
            if (t5.Parameters.Contains(p.Name)) { backend.Copy(t5.Parameters[p.Name].Value, p.Value); copied++; continue; }
            if (p.Name.Contains(".mlp.router.")) continue;
            string denseName = p.Name.Replace(".mlp.experts.", ".DenseReluDense.");
            var from = t5.Parameters[denseName].Value;                                  // [out, in]
            int rows = from.Shape[0], cols = from.Shape[1];
            double[] src = Oracle.Read(from), dst = new double[src.Length];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++) dst[j * rows + i] = src[i * cols + j];    // → [1, in, out]
            Oracle.Write(p.Value, dst);
            copied++;
        }
        Assert.Equal(t5.Parameters.All.Count, copied);

        int B = 2, Te = 6, T = 5;
        var rng = new Rng(9);
        var source = Ids(backend, Values.Ids(rng, B * Te, 13), B, Te);
        var target = Ids(backend, Values.Ids(rng, B * T, 13), B, T);
        foreach (bool recording in new[] { false, true })   // eval and training capacity: both N
        {
            using var tape = new Tape(backend, recording: recording);
            var a = Oracle.Read(t5.Forward(tape, source, target).Value);
            var b = Oracle.Read(switchT5.Forward(tape, source, target).Value);
            double scale = Rms(a);
            for (int i = 0; i < a.Length; i++)
                Assert.True(Math.Abs(a[i] - b[i]) <= 1e-12 * scale, $"{activation} logit {i}: dense {a[i]:R} vs one expert {b[i]:R}");
        }
    }

    /// <summary>The cached decoder routes one token per step (B·1 rows): with an eval capacity that drops nothing
    /// (factor E: ⌈N·E/E⌉ = N) its greedy tokens and logits equal the uncached forward's, to KvCacheTests' tolerance.</summary>
    [SkippableTheory]
    [InlineData("cpu-fast")]
    [InlineData("vulkan")]
    public void CachedGenerationEqualsUncached(string subject)
    {
        var found = Backends.Subjects.SingleOrDefault(s => s.Name == subject);
        Skip.If(found is null, $"subject {subject} is not available");
        var config = EncoderDecoderConfig.SwitchT5Micro with { ContextLength = 16, VocabSize = 29 };
        config = config with { Moe = config.Moe! with { EvalCapacityFactor = config.Moe!.Experts } };
        var model = new EncoderDecoder(found!.Backend, config);
        model.InitializeWeights(11);
        int[] source = [3, 7, 2, 9, 14, 5];
        List<float[]> cachedLogits = [], fullLogits = [];
        var cached = Seq2SeqGenerator.Run(model, source, 12, new Sampler(new SamplingOptions { Temperature = 0 }), null, cached: true, cachedLogits);
        var full = Seq2SeqGenerator.Run(model, source, 12, new Sampler(new SamplingOptions { Temperature = 0 }), null, cached: false, fullLogits);
        Assert.Equal(12, cached.Count);
        Assert.Equal(full, cached);
        var tolerance = new Tolerance(1e-8, 1e-4, "cached vs full decoder: the same ops, rows grouped differently");
        for (int i = 0; i < cached.Count; i++)
            Compare.Check(Backends.Context, "switch cached decode", subject, $"logits of step {i}", [cachedLogits[i].Length],
                cachedLogits[i].Select(x => (double)x).ToArray(), fullLogits[i].Select(x => (double)x).ToArray(), tolerance, config);
    }

    // ---- training -----------------------------------------------------------------------------------------------------

    [Fact]
    public void Training_on_the_reference_lowers_the_loss()
    {
        var losses = EncoderDecoderTests.Train(new CpuBackend(), EncoderDecoderConfig.SwitchT5Micro);
        Assert.True(EncoderDecoderTests.Learned(losses, 0.5), $"10 steps should lower the loss: {string.Join(", ", losses.Select(l => l.ToString("F4")))}");
    }

    /// <summary>10 Trainer steps of switch-t5-micro (cross-entropy + balance + z losses) on Vulkan follow the Reference
    /// to 1e-4 relative per step, as the dense T5 does (VulkanEncoderDecoderTests), and learn.</summary>
    [SkippableFact]
    public void Ten_steps_on_Vulkan_match_the_reference()
    {
        using var vk = VulkanTestDevice.Open();
        var config = EncoderDecoderConfig.SwitchT5Micro;
        var reference = EncoderDecoderTests.Train(new CpuBackend(), config);
        var vulkan = EncoderDecoderTests.Train(vk, config);
        VulkanTestDevice.AssertClean(vk);
        for (int s = 0; s < reference.Count; s++)
        {
            double relative = Math.Abs(vulkan[s] - reference[s]) / Math.Abs(reference[s]);
            Assert.True(relative < 1e-4, $"step {s + 1}: Vulkan loss {vulkan[s]:R} vs Reference {reference[s]:R} (relative {relative:E2} ≥ 1e-4)");
        }
        Assert.True(EncoderDecoderTests.Learned(reference, 0.5), $"switch-t5-micro should learn: {string.Join(", ", reference)}");
    }

    // ---- configs and checkpoints --------------------------------------------------------------------------------------

    [Theory]
    [InlineData("switch-t5-tiny")]
    [InlineData("switch-t5-micro")]
    public void Presets_round_trip_through_llm_encoder_decoder(string preset)
    {
        var config = EncoderDecoderConfig.FromPreset(preset);
        Assert.NotNull(config.Moe);
        string json = new T5HfConfig(config, "byte").ToJson();
        Assert.NotNull(JsonNode.Parse(json)![T5HfConfig.ExtensionField]!["Moe"]);
        var parsed = T5HfConfig.Parse(json, preset).Model;
        Assert.Equal(config, parsed);
        Assert.Equal(json, new T5HfConfig(parsed, "byte").ToJson());
        var odd = config with { Moe = config.Moe! with { TopK = 2, CapacityFactor = 1.1, BalanceCoefficient = 0.02f, NormalizeGates = false } };
        Assert.Equal(odd, T5HfConfig.Parse(new T5HfConfig(odd, null).ToJson(), preset).Model);
    }

    [Fact]
    public void Moe_weights_are_named_and_shaped_as_stacked_experts()
    {
        var config = EncoderDecoderConfig.SwitchT5Micro;   // C 16, F 32, 4 experts, blocks 1 MoE
        var shapes = config.Weights().ToDictionary(w => w.Name, w => w.Shape);
        Assert.Equal([4, 16], shapes["encoder.block.1.layer.1.mlp.router.classifier.weight"]);
        Assert.Equal([4, 16, 32], shapes["encoder.block.1.layer.1.mlp.experts.wi.weight"]);
        Assert.Equal([4, 32, 16], shapes["decoder.block.1.layer.2.mlp.experts.wo.weight"]);
        Assert.Contains("encoder.block.0.layer.1.DenseReluDense.wi.weight", shapes.Keys);
        Assert.DoesNotContain("encoder.block.1.layer.1.DenseReluDense.wi.weight", shapes.Keys);
        var gated = (config with { Activation = Activation.GeGluTanh }).Weights().Select(w => w.Name).ToHashSet();
        Assert.Contains("decoder.block.1.layer.2.mlp.experts.wi_0.weight", gated);
        Assert.Contains("decoder.block.1.layer.2.mlp.experts.wi_1.weight", gated);
        var e = Assert.Throws<ArgumentException>(() => (EncoderDecoderConfig.T5Micro with { DecoderLayers = 1, Moe = new MoeConfig { Every = 2 } }).Validate());
        Assert.Contains("num_decoder_layers", e.Message);
    }

    /// <summary>SwitchTransformersPreTrainedModel._init_weights: router ~ N(0, 1), experts' wi and wo ~ N(0, C^−½) (sample
    /// standard deviations of tiny's 8·128·512 expert elements within 2%; the router's 8·128 within 10%).</summary>
    [Fact]
    public void Initialisation_is_switch_transformers()
    {
        var config = EncoderDecoderConfig.SwitchT5Tiny;
        var backend = new CpuBackend();
        var model = new EncoderDecoder(backend, config);
        model.InitializeWeights(5);
        double Std(string name) { var p = model.Parameters[name].Value; var h = new float[p.Length]; backend.Download<float>(p, h); return Math.Sqrt(h.Average(x => (double)x * x)); }
        Assert.InRange(Std("encoder.block.1.layer.1.mlp.router.classifier.weight"), 0.9, 1.1);
        Assert.InRange(Std("encoder.block.1.layer.1.mlp.experts.wi.weight") * Math.Sqrt(128), 0.98, 1.02);
        Assert.InRange(Std("decoder.block.1.layer.2.mlp.experts.wo.weight") * Math.Sqrt(128), 0.98, 1.02);
        Assert.InRange(Std("decoder.block.0.layer.2.DenseReluDense.wo.weight") * Math.Sqrt(512), 0.98, 1.02);   // the dense wo: T5's d_ff^−½
    }

    [Fact]
    public void Checkpoint_save_then_load_gives_identical_logits_and_refuses_a_config_that_disagrees()
    {
        var backend = new CpuBackend();
        var config = EncoderDecoderConfig.SwitchT5Micro;
        var model = new EncoderDecoder(backend, config);
        model.InitializeWeights(8);
        string dir = Path.Combine(Path.GetTempPath(), "llm-switch-t5-" + Guid.NewGuid().ToString("N"));
        try
        {
            string folder = Path.Combine(dir, "model");
            T5Checkpoint.Save(folder, new T5HfConfig(config, "byte"), model.Parameters);
            var (loadedConfig, parameters, _, _) = T5Checkpoint.Load(folder, backend);
            Assert.Equal(config, loadedConfig);
            var loaded = new EncoderDecoder(loadedConfig, parameters);
            Assert.Equal(model.Parameters.DownloadValues(), loaded.Parameters.DownloadValues());
            float[] Logits(EncoderDecoder m)
            {
                using var tape = new Tape(backend, recording: false);
                var rng = new Rng(2);
                var logits = m.Forward(tape, Ids(backend, Values.Ids(rng, 2 * 9, 64), 2, 9), Ids(backend, Values.Ids(rng, 2 * 7, 64), 2, 7)).Value;
                var host = new float[logits.Length];
                backend.Download<float>(logits, host);
                return host;
            }
            Assert.Equal(Logits(model), Logits(loaded));

            // config.json against the MoE tensors: each disagreement names the field and the tensor
            string configPath = Path.Combine(folder, Checkpoint.ConfigFile);
            string original = File.ReadAllText(configPath);
            void Refused(Func<EncoderDecoderConfig, EncoderDecoderConfig> edit, string why)
            {
                File.WriteAllText(configPath, new T5HfConfig(edit(config), "byte").ToJson());
                var e = Assert.Throws<InvalidDataException>(() => T5Checkpoint.Load(folder, backend));
                Assert.Contains(why, e.Message);
                Assert.Contains("config.json", e.Message);
            }
            Refused(c => c with { Moe = null }, "has the MoE router encoder.block.1.layer.1.mlp.router.classifier.weight");
            Refused(c => c with { Moe = c.Moe! with { Every = 1 } }, "has the dense encoder.block.0.layer.1.DenseReluDense.wi.weight");
            Refused(c => c with { Moe = c.Moe! with { Experts = 8 } }, "says moe.experts 8, d_model 16, but");
            File.WriteAllText(configPath, original);
            Assert.Equal(config, T5Checkpoint.Load(folder, backend).Config);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
