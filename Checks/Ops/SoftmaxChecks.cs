using FsCheck;
using FsCheck.Fluent;
using Llm.Common;

namespace Llm.Checks.Ops;

/// <summary>logits [N, E] = Scale·N(0,1), E a router's width (1..64); Scale 40 overflows exp unless the maximum is
/// subtracted. Backward cases drop either incoming gradient (a router whose z-loss is off has no dLogSumExp).</summary>
public sealed record SoftmaxCase(int N, int E, double Scale, bool WithDProbs, bool WithDLogSumExp, int Seed)
{
    public override string ToString() => $"logits{Dims.Shape(N, E)} scale={Scale} dProbs={WithDProbs} dLse={WithDLogSumExp} seed={Seed}";

    public static Arbitrary<SoftmaxCase> Arbitrary() => Arb.From(
        from n in Dims.Dim(300)
        from e in Dims.Dim(64)
        from scale in Gen.Elements(0.5, 3.0, 40.0)
        from which in Gen.Elements(0, 1, 2)
        from seed in Dims.Seed
        select new SoftmaxCase(n, e, scale, which != 2, which != 1, seed),
        c => Dims.Shrink(c, [c.N, c.E], d => c with { N = d[0], E = d[1] }));
}

public static class SoftmaxChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Softmax", "Forward", SoftmaxCase.Arbitrary(), Forward),
        OpProperty.Of("Softmax", "Backward", SoftmaxCase.Arbitrary(), Backward),
        OpProperty.Of("Softmax", "BackwardMatchesFiniteDifferences", SoftmaxCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(SoftmaxCase c, CheckContext context)
    {
        var check = new OpCheck("Softmax", c, c.Seed, context);
        var logits = check.Input("logits", [c.N, c.E], Values.Normal(check.Rng, c.N * c.E, c.Scale));
        var probs = check.Output("probs", [c.N, c.E], Tolerance.Normalize);
        // lse = max + log Σ: the log's rounding, relative to |lse| (an absolute floor for lse near 0, as the losses')
        var lse = check.Output("logSumExp", [c.N], Tolerance.Loss);
        check.Run((b, t) => b.Softmax(t(logits), t(probs), t(lse)));
    }

    /// <summary>Both sides get the oracle's probs rounded to f32; the dot Σ dp·p is a sum of E ≤ 64 products.</summary>
    public static void Backward(SoftmaxCase c, CheckContext context)
    {
        var check = new OpCheck("SoftmaxBackward", c, c.Seed, context);
        var oracleProbs = Oracle.Zeros(c.N, c.E);
        Oracle.Backend.Softmax(Oracle.Tensor(Values.Normal(check.Rng, c.N * c.E, c.Scale), c.N, c.E), oracleProbs, Oracle.Zeros(c.N));
        var probs = check.Input("probs", [c.N, c.E], Oracle.Read(oracleProbs).Select(p => (double)(float)p).ToArray());
        var dProbs = c.WithDProbs ? check.Input("dProbs", [c.N, c.E], Values.Normal(check.Rng, c.N * c.E)) : null;
        var dLse = c.WithDLogSumExp ? check.Input("dLogSumExp", [c.N], Values.Normal(check.Rng, c.N)) : null;
        var dLogits = check.InOut("dLogits", [c.N, c.E], Values.Normal(check.Rng, c.N * c.E), Tolerance.NormalizeBackward, 1);
        check.Run((b, t) => b.SoftmaxBackward(dProbs is null ? null : t(dProbs), dLse is null ? null : t(dLse), t(probs), t(dLogits)));
    }

    /// <summary>L = Σ w_p⊙probs + Σ w_l⊙lse: its gradient by SoftmaxBackward (into a pre-filled dLogits) against central differences.</summary>
    public static void BackwardMatchesFiniteDifferences(SoftmaxCase c, CheckContext context)
    {
        c = c with { N = Math.Min(c.N, 5), E = Math.Min(c.E, 9), Scale = Math.Min(c.Scale, 3.0), WithDProbs = true, WithDLogSumExp = true };
        var rng = new Rng((ulong)c.Seed);
        var x = Values.Normal(rng, c.N * c.E, c.Scale);
        var wp = Values.Normal(rng, c.N * c.E);
        var wl = Values.Normal(rng, c.N);
        var prefill = Values.Normal(rng, x.Length);
        var logits = Oracle.Tensor(x, c.N, c.E);
        var probs = Oracle.Zeros(c.N, c.E);
        var lse = Oracle.Zeros(c.N);
        double[] Forward(double[] xs)
        {
            Oracle.Write(logits, xs);
            Oracle.Backend.Softmax(logits, probs, lse);
            return [.. Oracle.Read(probs), .. Oracle.Read(lse)];
        }
        Forward(x);
        var dLogits = Oracle.Tensor(prefill, c.N, c.E);
        Oracle.Backend.SoftmaxBackward(Oracle.Tensor(wp, c.N, c.E), Oracle.Tensor(wl, c.N), probs, dLogits);
        FiniteDifferences.Check("SoftmaxBackward", "logits", c, x, Forward, [.. wp, .. wl], Oracle.Delta(Oracle.Read(dLogits), prefill), rng,
            roundingMagnitude: _ => FiniteDifferences.Step * prefill.Sum(Math.Abs));
    }
}
