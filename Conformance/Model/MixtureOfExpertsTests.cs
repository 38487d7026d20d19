using Llm.Autograd;
using Llm.Checks;
using Llm.Common;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Model;

/// <summary>The MoE layer's identities in F64 on the definition, its config's round trip, and determinism.</summary>
public class MixtureOfExpertsTests
{
    private const int N = 10, C = 6, F = 8;

    private static Var Param(Rng rng, params int[] shape) =>
        new(Oracle.Tensor(Values.Normal(rng, Tensor.ElementCount(shape), 0.5), shape), requiresGrad: false);

    private static double[] DenseFfn(Tape tape, Var x, Var up, Var down) => Oracle.Read(tape.MatMul(tape.Gelu(tape.MatMul(x, up)), down).Value);

    /// <summary>One expert, capacity ≥ N: every token goes to it with gate softmax over one = 1 exactly, so the layer is the
    /// dense FFN with the same matrices: the same dot products in the same order (bound 1e-12 for any reordering).</summary>
    [Fact]
    public void One_expert_with_room_for_every_token_is_the_dense_ffn()
    {
        var rng = new Rng(5);
        using var tape = new Tape(Oracle.Backend, recording: false);
        var x = Param(rng, N, C);
        var moe = new MoeConfig { Experts = 1, TopK = 1, EvalCapacityFactor = 1.0 };
        var w = new MoeWeights(Param(rng, 1, C), Param(rng, 1, C, F), null, Param(rng, 1, F, C));
        var y = MixtureOfExperts.Forward(tape, x, w, moe, tape.Gelu, new List<AuxiliaryLoss>(), new List<Tensor>(), 0);
        var dense = DenseFfn(tape, x, new Var(w.Up.Value.Reshape(C, F)), new Var(w.Down.Value.Reshape(F, C)));
        var actual = Oracle.Read(y.Value);
        for (int i = 0; i < actual.Length; i++) Assert.True(Math.Abs(actual[i] - dense[i]) <= 1e-12, $"[{i}] {actual[i]} vs dense {dense[i]}");
    }

    /// <summary>k = E with a zero router: every prob is 1/E, the normalized gates 1/E, every token reaches every expert
    /// (capacity ≥ N): the output is the mean of the E dense FFNs (bound 1e-12).</summary>
    [Fact]
    public void Top_all_with_equal_gates_is_the_mean_of_the_experts()
    {
        const int E = 3;
        var rng = new Rng(9);
        using var tape = new Tape(Oracle.Backend, recording: false);
        var x = Param(rng, N, C);
        var moe = new MoeConfig { Experts = E, TopK = E, EvalCapacityFactor = 1.0 };
        var w = new MoeWeights(new Var(Oracle.Zeros(E, C)), Param(rng, E, C, F), null, Param(rng, E, F, C));
        var slots = new List<Tensor>();
        var y = Oracle.Read(MixtureOfExperts.Forward(tape, x, w, moe, tape.Gelu, new List<AuxiliaryLoss>(), slots, 0).Value);
        var mean = new double[N * C];
        for (int e = 0; e < E; e++)
        {
            var up = new Var(w.Up.Value.Reshape(E * C * F).Slice(e * C * F, [C, F]));
            var down = new Var(w.Down.Value.Reshape(E * F * C).Slice(e * F * C, [F, C]));
            var d = DenseFfn(tape, x, up, down);
            for (int i = 0; i < mean.Length; i++) mean[i] += d[i] / E;
        }
        for (int i = 0; i < y.Length; i++) Assert.True(Math.Abs(y[i] - mean[i]) <= 1e-12, $"[{i}] {y[i]} vs mean {mean[i]}");
        var s = new int[N * E];
        Oracle.Backend.Download<int>(slots.Single(), s);
        Assert.DoesNotContain(-1, s);   // nothing dropped
    }

    /// <summary>A switch-tiny config survives config.json: written with llm_decoder.Moe, read back equal.</summary>
    [Theory]
    [InlineData("switch-tiny")]
    [InlineData("gshard-tiny")]
    public void Moe_presets_round_trip_through_config_json(string preset)
    {
        var config = DecoderConfig.FromPreset(preset);
        var json = new HfConfig(config, "byte").ToJson();
        Assert.Contains("\"Moe\"", json);
        Assert.Equal(config, HfConfig.Parse(json, "config.json").Model);
    }

    /// <summary>A switch-micro checkpoint (config.json with llm_decoder.Moe, the router and experts' tensors) loads back
    /// as the same model with the same weights.</summary>
    [Fact]
    public void Switch_checkpoint_loads_back_as_the_same_model()
    {
        var backend = new Llm.Cpu.CpuBackend();
        var config = DecoderConfig.FromPreset("switch-micro");
        var model = new Decoder(backend, config);
        model.InitializeWeights(8);
        string run = Path.Combine(Path.GetTempPath(), "llm-moe-" + Guid.NewGuid().ToString("N"));
        try
        {
            Checkpoint.Save(run, 5, model.ConfigFile("byte"), model.Parameters);
            var (loaded, _) = Decoder.Load(run, backend);
            Assert.Equal(config, loaded.Config);
            Assert.Contains(loaded.Parameters.All, p => p.Name == "h.1.mlp.router.weight");
            Assert.Contains(loaded.Parameters.All, p => p.Name == "h.1.mlp.experts.c_fc.weight" && p.Value.Shape.SequenceEqual([4, 16, 64]));
            Assert.Equal(model.Parameters.DownloadValues(), loaded.Parameters.DownloadValues());
        }
        finally { if (Directory.Exists(run)) Directory.Delete(run, true); }
    }

    [Fact]
    public void Moe_config_fields_are_validated_by_name()
    {
        var bad = DecoderConfig.Micro with { Moe = new MoeConfig { Experts = 4, TopK = 5 } };
        Assert.Contains("moe.top_k", Assert.Throws<ArgumentException>(() => bad.Validate()).Message);
        bad = DecoderConfig.Micro with { Moe = new MoeConfig { CapacityFactor = 0 } };
        Assert.Contains("moe.capacity_factor", Assert.Throws<ArgumentException>(() => bad.Validate()).Message);
    }

    /// <summary>Two CPU forward+backward steps of switch-micro from the same weights give identical losses and gradients.</summary>
    [Fact]
    public void Switch_steps_are_deterministic()
    {
        float[] Run()
        {
            var backend = new Llm.Cpu.CpuBackend();
            var model = new Decoder(backend, DecoderConfig.FromPreset("switch-micro"));
            model.InitializeWeights(3);
            using var tape = new Tape(backend);
            var ids = tape.Ids(Enumerable.Range(0, 32).Select(i => i * 7 % 256).ToArray(), [2, 16]);
            var logits = model.Forward(tape, ids);
            var losses = tape.CrossEntropy(logits, ids);
            var d = backend.Allocate(DType.F32, [32]);
            backend.Fill(d, 1);
            model.Parameters.ZeroGrad();
            tape.Backward(losses, d);
            var grads = model.Parameters.All.SelectMany(p => { var g = new float[p.Grad!.Length]; backend.Download<float>(p.Grad!, g); return g; });
            var l = new float[32];
            backend.Download<float>(losses.Value, l);
            return [.. l, .. grads];
        }
        Assert.Equal(Run(), Run());
    }
}

/// <summary>The layer alone in F64: the tape's gradient of Σ w⊙y with respect to x, the router and the experts against
/// central differences (with the balance and z losses in the objective), for Switch (k = 1, raw gates) and GShard (k = 2, normalized), with drops (factor 0.5 and 1.25).</summary>
public class MixtureOfExpertsGradientTests
{
    [Theory]
    [InlineData(1, false, 1.25)]
    [InlineData(1, false, 0.5)]
    [InlineData(2, true, 1.25)]
    [InlineData(2, false, 0.5)]
    public void Layer_gradients_match_finite_differences(int k, bool normalize, double factor)
    {
        // the finite differences run with recording off, which takes the eval capacity: both factors are the same here
        const int N = 9, C = 5, F = 7, E = 4;
        var rng = new Rng(11);
        var moe = new MoeConfig { Experts = E, TopK = k, CapacityFactor = factor, EvalCapacityFactor = factor, NormalizeGates = normalize, BalanceCoefficient = 0.3f, ZLossCoefficient = 0.2f };
        Var P(params int[] shape) => new(Oracle.Tensor(Values.Normal(rng, Tensor.ElementCount(shape), 0.7), shape), requiresGrad: true);
        var x = P(N, C);
        var w = new MoeWeights(P(E, C), P(E, C, F), null, P(E, F, C));
        var wy = Values.Normal(rng, N * C);
        var dy = Oracle.Tensor(wy, N, C);
        double[] weights = [];   // L = Σ wy⊙y + Σ_aux weight·Σ value: wy, then each auxiliary element's weight
        (double[] Y, int[] Experts) Run(bool backward)
        {
            using var tape = new Tape(Oracle.Backend, recording: backward);
            foreach (var v in new[] { x, w.Router, w.Up, w.Down }) v.Grad = null;
            var slots = new List<Tensor>();
            var aux = new List<AuxiliaryLoss>();
            var y = MixtureOfExperts.Forward(tape, x, w, moe, tape.Gelu, aux, slots, 0);
            var s = new int[N * k];
            Oracle.Backend.Download<int>(slots[0], s);
            Assert.Equal(2, aux.Count);   // balance and z
            weights = [.. wy, .. aux.SelectMany(a => Enumerable.Repeat((double)a.Weight, a.Value.Value.Length))];
            if (backward)
                tape.Backward([(y, dy), .. aux.Select(a => { var g = Oracle.Zeros(a.Value.Shape); Oracle.Backend.Fill(g, a.Weight); return (a.Value, g); })]);
            return ([.. Oracle.Read(y.Value), .. aux.SelectMany(a => Oracle.Read(a.Value.Value))], s);
        }
        var (_, routing) = Run(backward: false);
        Run(backward: true);
        var grads = new[] { x, w.Router, w.Up, w.Down }.Select(v => Oracle.Read(v.Grad!)).ToArray();
        foreach (var (v, g, name) in new[] { (x, grads[0], "x"), (w.Router, grads[1], "router"), (w.Up, grads[2], "up"), (w.Down, grads[3], "down") })
        {
            var x0 = Oracle.Read(v.Value);
            double[] Forward(double[] xs)
            {
                Oracle.Write(v.Value, xs);
                var (y, s) = Run(backward: false);
                Oracle.Write(v.Value, x0);
                Assert.Equal(routing, s);   // no step flips a routing decision
                return y;
            }
            FiniteDifferences.Check($"moe k={k}", name, $"k={k} normalize={normalize} factor={factor}", x0, Forward, weights, g, rng, maxCoords: 25);
        }
    }
}
