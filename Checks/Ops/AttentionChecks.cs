using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>qkv [B, T, 3·NH·HS] drawn as Scale·N(0,1): Scale 3 makes q·k/√hs ≈ 9σ, nearly one-hot softmax rows.</summary>
public sealed record AttentionCase(int B, int T, int NH, int HS, double Scale, int Seed)
{
    public int C => NH * HS;
    public int[] QkvShape => [B, T, 3 * C];
    public int[] OutShape => [B, T, C];
    public int[] ProbsShape => [B, NH, T, T];
    public override string ToString() => $"qkv{Dims.Shape(QkvShape)} heads={NH} hs={HS} scale={Scale} seed={Seed}";

    public static Arbitrary<AttentionCase> Arbitrary() => Arb.From(
        from b in Dims.Dim(4)
        from t in Dims.Dim(300)
        from nh in Dims.Dim(6)
        from hs in Dims.Dim(70)
        from scale in Gen.Elements(0.3, 1.0, 3.0)
        from seed in Dims.Seed
        // f64 oracle cost ≈ B·NH·T²·HS (scores and weighted sum), memory B·NH·T² for probs
        let d = Dims.Fit([b, t, nh, hs], d => (long)d[0] * d[2] * d[1] * d[1] * Math.Max(d[3], 8), 2_000_000)
        select new AttentionCase(d[0], d[1], d[2], d[3], scale, seed),
        c => Dims.Shrink(c, [c.B, c.T, c.NH, c.HS], d => c with { B = d[0], T = d[1], NH = d[2], HS = d[3] }));
}

public static class AttentionChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Attention", "Forward", AttentionCase.Arbitrary(), Forward, 60),
        OpProperty.Of("Attention", "Backward", AttentionCase.Arbitrary(), Backward, 60),
        OpProperty.Of("Attention", "BackwardMatchesFiniteDifferences", AttentionCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(AttentionCase c, CheckContext context)
    {
        var check = new OpCheck("Attention", c, c.Seed, context);
        var qkv = check.Input("qkv", c.QkvShape, Values.Normal(check.Rng, Tensor.ElementCount(c.QkvShape), c.Scale));
        var output = check.Output("output", c.OutShape, Tolerance.Normalize);
        // probs must be fully written: the masked upper triangle as exact zeros.
        var probs = check.Output("probs", c.ProbsShape, Tolerance.Normalize);
        check.Run((b, t) => b.Attention(t(qkv), t(output), t(probs), c.NH));
    }

    /// <summary>Both sides get the oracle's probs rounded to f32, so backward alone is compared.</summary>
    public static void Backward(AttentionCase c, CheckContext context)
    {
        var check = new OpCheck("AttentionBackward", c, c.Seed, context);
        var qkvValues = Values.Normal(check.Rng, Tensor.ElementCount(c.QkvShape), c.Scale);
        var probsValues = Oracle.Read(RunForward(c, Oracle.Tensor(qkvValues, c.QkvShape), Oracle.Zeros(c.OutShape))).Select(p => (double)(float)p).ToArray();

        var dOutput = check.Input("dOutput", c.OutShape, Values.Normal(check.Rng, Tensor.ElementCount(c.OutShape)));
        var qkv = check.Input("qkv", c.QkvShape, qkvValues);
        var probs = check.Input("probs", c.ProbsShape, probsValues);
        var dQkv = check.InOut("dQkv", c.QkvShape, Values.Normal(check.Rng, Tensor.ElementCount(c.QkvShape)), Tolerance.NormalizeBackward);
        check.Run((b, t) => b.AttentionBackward(t(dOutput), t(qkv), t(probs), t(dQkv), c.NH));
    }

    private static Tensor RunForward(AttentionCase c, Tensor qkv, Tensor output)
    {
        var probs = Oracle.Zeros(c.ProbsShape);
        Oracle.Backend.Attention(qkv, output, probs, c.NH);
        return probs;
    }

    public static void BackwardMatchesFiniteDifferences(AttentionCase c, CheckContext context)
    {
        c = c with { B = Math.Min(c.B, 2), T = Math.Min(c.T, 5), NH = Math.Min(c.NH, 2), HS = Math.Min(c.HS, 3) };
        var rng = new Rng((ulong)c.Seed);
        var x = Values.Normal(rng, Tensor.ElementCount(c.QkvShape), c.Scale);
        var w = Values.Normal(rng, Tensor.ElementCount(c.OutShape));
        var prefill = Values.Normal(rng, x.Length);
        Tensor qkv = Oracle.Tensor(x, c.QkvShape), output = Oracle.Zeros(c.OutShape);
        var probs = RunForward(c, qkv, output);
        var dQkv = Oracle.Tensor(prefill, c.QkvShape);
        Oracle.Backend.AttentionBackward(Oracle.Tensor(w, c.OutShape), qkv, probs, dQkv, c.NH);
        double[] Run(double[] xs)
        {
            Oracle.Write(qkv, xs);
            RunForward(c, qkv, output);
            return Oracle.Read(output);
        }
        FiniteDifferences.Check("AttentionBackward", "qkv", c, x, Run, w, Oracle.Delta(Oracle.Read(dQkv), prefill), rng, maxCoords: 60);
    }
}
