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

/// <summary>A whole GPT-2 step on a tiny config: B×T tokens, about one target in five ignored.</summary>
public sealed record ModelCase(int B, int T, int Seed)
{
    /// <summary>Every dimension distinct and awkward (C = 2·6, V prime) so a transposed or swapped axis shows.</summary>
    public static DecoderConfig Config { get; } = new() { VocabSize = 13, ContextLength = 7, Layers = 2, Heads = 2, Channels = 12 };

    public override string ToString() => $"gpt2(V=13, ctx=7, L=2, NH=2, C=12) tokens[{B},{T}] seed={Seed}";

    public static Arbitrary<ModelCase> Arbitrary() => Arb.From(
        from b in Gen.Choose(1, 3)
        from t in Gen.Choose(1, Config.ContextLength)
        from seed in Dims.Seed
        select new ModelCase(b, t, seed),
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
    private static readonly Tolerance ModelTolerance = new(1e-6, 1e-3, "a 2-layer GPT-2 step: compounded f32 error of ~20 ops");

    private sealed record Setup(int[] Tokens, int[] Targets, double[] Weights, double[] DLosses);

    private static Setup Draw(ModelCase c)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = c.B * c.T, v = ModelCase.Config.VocabSize;
        var tokens = Values.Ids(rng, n, v);
        var targets = Enumerable.Range(0, n).Select(_ => rng.NextInt(5) == 0 ? -1 : rng.NextInt(v)).ToArray();
        // All parameters random, not GPT-2's init: zero biases and unit gains would hide a swapped gain/bias gradient.
        long count = ModelCase.Config.ParameterCount();
        var weights = Values.Normal(rng, (int)count, 0.3);
        var dLosses = Values.Normal(rng, n);
        return new(tokens, targets, weights, dLosses);
    }

    private static Decoder Build(IBackend backend, DType dtype, double[] weights)
    {
        var model = new Decoder(backend, ModelCase.Config, dtype);
        // LayerNorm gains near 1 (weights are N(0, 0.3)): the realistic regime, still not exactly 1.
        var host = (double[])weights.Clone();
        foreach (var p in model.Parameters.All.Where(p => p.Name.Contains("ln_") && p.Name.EndsWith(".weight")))
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
    private static double[] Step(Decoder model, ModelCase c, Setup s, bool backward)
    {
        var backend = model.Backend;
        var dtype = model.Parameters.DType;
        using var tape = new Tape(backend, recording: backward);  // one tape per (B, T) step: nothing carries over
        var logits = model.Forward(tape, IdTensor(backend, s.Tokens, c.B, c.T));
        var losses = tape.CrossEntropy(logits, IdTensor(backend, s.Targets, c.B, c.T));
        if (backward)
        {
            model.Parameters.ZeroGrad();
            var dLosses = backend.Allocate(dtype, [c.B * c.T]);
            OpCheck.UploadFloats(backend, dLosses, s.DLosses);
            tape.Backward(losses, dLosses);
        }
        return OpCheck.Download(backend, losses.Value);
    }

    [Property(MaxTest = 6)]
    public void GradientsMatchFiniteDifferences(ModelCase c)
    {
        var s = Draw(c);
        var model = Build(Oracle.Backend, DType.F64, s.Weights);
        Step(model, c, s, backward: true);
        var rng = new Rng((ulong)c.Seed ^ 0xF00D);
        foreach (var p in model.Parameters.All)
        {
            double[] x = Oracle.Read(p.Value), analytic = Oracle.Read(p.Grad);
            double[] Forward(double[] xs)
            {
                Oracle.Write(p.Value, xs);
                var losses = Step(model, c, s, backward: false);
                Oracle.Write(p.Value, x);
                return losses;
            }
            FiniteDifferences.Check("GPT-2 backward", p.Name, c, x, Forward, s.DLosses, analytic, rng, maxCoords: 6);
        }
    }

    [Property(MaxTest = 10)]
    public void SubjectsMatchTheDefinition(ModelCase c)
    {
        var s = Draw(c);
        var oracle = Build(Oracle.Backend, DType.F64, s.Weights);
        var oracleLosses = Step(oracle, c, s, backward: true);
        foreach (var subject in Backends.Subjects)
        {
            var model = Build(subject.Backend, subject.DType, s.Weights);
            var losses = Step(model, c, s, backward: true);
            Compare.Check(Backends.Context, "GPT-2 forward", subject.Name, "losses", [c.B, c.T], losses, oracleLosses, ModelTolerance, c);
            foreach (var (p, q) in model.Parameters.All.Zip(oracle.Parameters.All))
                Compare.Check(Backends.Context, "GPT-2 backward", subject.Name, "d" + p.Name, p.Grad.Shape,
                    OpCheck.Download(subject.Backend, p.Grad), Oracle.Read(q.Grad), ModelTolerance, c);
        }
    }
}
