using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Llm.Autograd;
using Llm.Common;
using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Models;
using Llm.Tensors;

namespace Llm.Conformance.Model;

/// <summary>A whole decoder step at a micro size of one preset (or catalogue mix): B×T tokens, about one target in five
/// ignored; prefix-decoder models get a random prefix per sequence.</summary>
public sealed record ModelCase(string Preset, int B, int T, int Seed)
{
    /// <summary>Every dimension distinct and awkward (V prime, C = 2·8) so a transposed or swapped axis shows.</summary>
    private static DecoderConfig Micro(DecoderConfig c, int heads = 2, int? kvHeads = null) => c with
    {
        VocabSize = 13, ContextLength = 7, Layers = 2, Heads = heads, KvHeads = kvHeads, Channels = 16, Hidden = c.Gated ? 20 : 24,
    };

    /// <summary>The six presets, and mixes of the options no preset takes.</summary>
    public static IReadOnlyDictionary<string, DecoderConfig> Configs { get; } = new Dictionary<string, DecoderConfig>
    {
        ["gpt2"] = Micro(DecoderConfig.Gpt2) with { Channels = 12 },
        ["llama"] = Micro(DecoderConfig.Llama7B, heads: 4, kvHeads: 2),
        ["bloom"] = Micro(DecoderConfig.Bloom560M, heads: 3) with { Channels = 12 },   // 3 heads: ALiBi's slopes for a non-power of two
        ["neox"] = Micro(DecoderConfig.Pythia160M),
        ["palm"] = Micro(DecoderConfig.Palm8B, kvHeads: 1),
        ["glm"] = Micro(DecoderConfig.Glm10B),
        ["sandwich-sinusoidal-glu"] = Micro(DecoderConfig.Gpt2) with
            { Placement = NormPlacement.Sandwich, Positions = PositionKind.Sinusoidal, Activation = Activation.Glu, EmbeddingNorm = true },
        ["post-relu-window"] = Micro(DecoderConfig.Gpt2) with
            { Placement = NormPlacement.Post, Activation = Activation.Relu, Positions = PositionKind.None, Window = 3, TiedEmbeddings = false },
        ["reglu-bilinear-sparse"] = Micro(DecoderConfig.Llama7B, heads: 4, kvHeads: 1) with
            { Activation = Activation.ReGlu, Norm = NormKind.LayerNorm, Bias = true, Sparse = SparsePattern.Fixed, SparseStride = 3, SparseSummary = 1 },
        ["bilinear-swish-strided"] = Micro(DecoderConfig.Gpt2) with
            { Activation = Activation.Bilinear, Norm = NormKind.RmsNorm, Sparse = SparsePattern.Strided, SparseStride = 2 },
        ["swish-alibi"] = Micro(DecoderConfig.Gpt2) with { Activation = Activation.Swish, SwishBeta = 1.702f, Positions = PositionKind.Alibi, ParallelBlock = true },
        // mixtures of experts in layer 1 (switch-micro / gshard-micro's choices): the CE's gradient flows through the gates into the router
        // (the finite differences' forwards do not record, which takes the eval capacity: here it is the training one)
        ["switch-micro"] = Micro(DecoderConfig.Gpt2) with { Moe = DecoderConfig.FromPreset("switch-micro").Moe! with { EvalCapacityFactor = 1.25 } },
        ["gshard-micro"] = Micro(DecoderConfig.Llama7B) with { Moe = DecoderConfig.FromPreset("gshard-micro").Moe! with { EvalCapacityFactor = 1.25 } },
    };

    public DecoderConfig Config => Configs[Preset];

    public override string ToString() => $"{Preset}(V=13, ctx=7, L=2, NH={Config.Heads}, NKV={Config.KeyValueHeads}, C={Config.Channels}) tokens[{B},{T}] seed={Seed}";

    public static Arbitrary<ModelCase> Arbitrary() => Arb.From(
        from preset in Gen.Elements(Configs.Keys.ToArray())
        from b in Gen.Choose(1, 3)
        from t in Gen.Choose(1, 7)
        from seed in Dims.Seed
        select new ModelCase(preset, b, t, seed),
        c => Dims.Shrink(c, [c.B, c.T], d => c with { B = d[0], T = d[1] }));
}

/// <summary>
/// The model composed from the ops: (1) in F64 on the definition, the tape's gradient of L = Σ w_n·loss_n with
/// respect to every parameter tensor matches central differences (relative 1e-6); (2) each subject backend in
/// F32 computes the same losses and gradients as the F64 definition from the same weights.
/// </summary>
[Properties(Arbitrary = [typeof(ModelCase)], QuietOnSuccess = true)]
public class GradientCheckTests
{
    /// <summary>Two blocks of LayerNorm → attention/MLP → residual compound the per-op f32 errors (≤ ~1e-10 NMSE each
    /// in practice) through ~20 ops; gradients of small parameters (biases of late layers) also pass through
    /// cancellations. 1e-6 (relative error 1e-3) still fails on any wrong op or wiring (≥ 1e-2); per element 1e-3 of
    /// (|b| + RMS), ≥ 10× the worst seen.</summary>
    private static readonly Tolerance ModelTolerance = new(1e-6, 1e-3, "a 2-layer decoder step: compounded f32 error of ~20 ops");

    private sealed record Setup(int[] Tokens, int[] Targets, double[] Weights, double[] DLosses, int[]? Prefix);

    private static Setup Draw(ModelCase c)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = c.B * c.T, v = c.Config.VocabSize;
        var tokens = Values.Ids(rng, n, v);
        var targets = Enumerable.Range(0, n).Select(_ => rng.NextInt(5) == 0 ? -1 : rng.NextInt(v)).ToArray();
        // All parameters random, not GPT-2's init: zero biases and unit gains would hide a swapped gain/bias gradient.
        long count = c.Config.ParameterCount();
        var weights = Values.Normal(rng, (int)count, 0.3);
        var dLosses = Values.Normal(rng, n);
        int[]? prefix = c.Config.Visibility == Visibility.Prefix ? [.. Enumerable.Range(0, c.B).Select(_ => rng.NextInt(c.T + 1))] : null;
        return new(tokens, targets, weights, dLosses, prefix);
    }

    private static Decoder Build(ModelCase c, IBackend backend, DType dtype, double[] weights)
    {
        var model = new Decoder(backend, c.Config, dtype);
        // norm gains near 1 (weights are N(0, 0.3)): the realistic regime, still not exactly 1.
        var host = (double[])weights.Clone();
        var gains = WeightNames.For(c.Config).Weights(c.Config).Where(w => w.Role == ParameterRole.NormWeight).Select(w => w.Name).ToHashSet();
        foreach (var p in model.Parameters.All.Where(p => gains.Contains(p.Name)))
            for (int i = 0; i < p.Value.Length; i++) host[p.Offset + i] += 1.0;
        OpCheck.UploadFloats(backend, model.Parameters.Arenas.Single().Values, host);  // one arena: offsets are global
        return model;
    }

    private static Tensor IdTensor(IBackend backend, int[] ids, params int[] shape)
    {
        var t = backend.Allocate(DType.I32, shape);
        backend.Upload<int>(ids, t);
        return t;
    }

    /// <summary>Forward and (when dLosses is given) backward into freshly zeroed gradients; returns the losses.</summary>
    private static double[] Step(Decoder model, ModelCase c, Setup s, bool backward) => Step(model, c, s, backward, out _);

    /// <summary>As above, with every MoE layer's routing slots [N, k] (expert and position of each choice, −1 dropped).</summary>
    private static double[] Step(Decoder model, ModelCase c, Setup s, bool backward, out int[] routing)
    {
        var backend = model.Backend;
        var dtype = model.Parameters.DType;
        using var tape = new Tape(backend, recording: backward);  // one tape per (B, T) step: nothing carries over
        var output = model.Forward(tape, new Llm.Text.TokenBatch(s.Tokens, s.Targets, c.B, c.T) { PrefixLengths = s.Prefix });
        var losses = tape.CrossEntropy(output.Logits, IdTensor(backend, s.Targets, c.B, c.T));
        routing = [.. output.RoutingSlots.SelectMany(slots => { var host = new int[slots.Length]; backend.Download<int>(slots, host); return host; })];
        if (backward)
        {
            model.Parameters.ZeroGrad();
            var dLosses = backend.Allocate(dtype, [c.B * c.T]);
            OpCheck.UploadFloats(backend, dLosses, s.DLosses);
            tape.Backward(losses, dLosses);
        }
        return OpCheck.Download(backend, losses.Value);
    }

    public static Xunit.TheoryData<string> Presets => [.. ModelCase.Configs.Keys];

    /// <summary>Each preset and catalogue mix at least once, whatever the random draws below pick.</summary>
    [Xunit.Theory, Xunit.MemberData(nameof(Presets))]
    public void EveryPresetsGradientsMatchFiniteDifferences(string preset) => GradientsMatchFiniteDifferences(new ModelCase(preset, 2, 5, 7));

    [Xunit.Theory, Xunit.MemberData(nameof(Presets))]
    public void EveryPresetOnEverySubjectMatchesTheDefinition(string preset) => SubjectsMatchTheDefinition(new ModelCase(preset, 2, 6, 11));

    [Property(MaxTest = 8)]
    public void GradientsMatchFiniteDifferences(ModelCase c)
    {
        var s = Draw(c);
        var model = Build(c, Oracle.Backend, DType.F64, s.Weights);
        Step(model, c, s, backward: true, out var routing);
        var rng = new Rng((ulong)c.Seed ^ 0xF00D);
        foreach (var p in model.Parameters.All)
        {
            double[] x = Oracle.Read(p.Value), analytic = Oracle.Read(p.Grad!);
            double[] Forward(double[] xs)
            {
                Oracle.Write(p.Value, xs);
                var losses = Step(model, c, s, backward: false, out var moved);
                Oracle.Write(p.Value, x);
                // MoE routing is piecewise constant: a difference across a flipped choice or a drop is no derivative
                Xunit.Assert.True(moved.SequenceEqual(routing), $"{c}: perturbing {p.Name} changed the MoE routing, so its finite differences are not a derivative");
                return losses;
            }
            FiniteDifferences.Check(c.Preset + " backward", p.Name, c, x, Forward, s.DLosses, analytic, rng, maxCoords: 6);
        }
    }

    [Property(MaxTest = 8)]
    public void SubjectsMatchTheDefinition(ModelCase c)
    {
        var s = Draw(c);
        var oracle = Build(c, Oracle.Backend, DType.F64, s.Weights);
        var oracleLosses = Step(oracle, c, s, backward: true);
        foreach (var subject in Backends.Subjects)
        {
            var model = Build(c, subject.Backend, subject.DType, s.Weights);
            var losses = Step(model, c, s, backward: true);
            Compare.Check(Backends.Context, c.Preset + " forward", subject.Name, "losses", [c.B, c.T], losses, oracleLosses, ModelTolerance, c);
            foreach (var (p, q) in model.Parameters.All.Zip(oracle.Parameters.All))
                Compare.Check(Backends.Context, c.Preset + " backward", subject.Name, "d" + p.Name, p.Grad!.Shape,
                    OpCheck.Download(subject.Backend, p.Grad!), Oracle.Read(q.Grad!), ModelTolerance, c);
        }
    }
}
