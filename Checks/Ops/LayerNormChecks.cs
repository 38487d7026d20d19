using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>[N, C] rows of unit spread around a mean Shift, for the normalizations (LayerNorm, RMSNorm). For LayerNorm a
/// large shift exposes a one-pass E[x²] − E[x]² variance in f32 (catastrophic cancellation); for RMSNorm, which
/// subtracts no mean, it makes x̂ ≈ 1, where backward's g − x̂·mean(g·x̂) ≈ g − mean(g) (C = 1 cancels exactly).</summary>
public sealed record NormCase(int N, int C, double Shift, int Seed)
{
    /// <summary>x − mean cancels: the f32 mean is off by ε·|Shift|, which rstd (up to 1/√eps) amplifies in every
    /// output of a row with a small spread (C = 2 rows are nearly constant). Per element the error thus grows with
    /// 1 + Shift (3e-4 of (|b| + RMS) seen at shift 30, C = 2); NMSE, an average over rows, keeps its bound.</summary>
    public Tolerance Scaled(Tolerance t) => t with { Element = t.Element * (1 + Shift), Why = t.Why + $", ×{1 + Shift} per element for the shift" };

    public override string ToString() => $"x{Dims.Shape(N, C)} shift={Shift} seed={Seed}";

    /// <param name="maxChannels">GPT-2's widths (1100) or LLaMA's (4100).</param>
    public static Arbitrary<NormCase> Arbitrary(int maxChannels) => Arb.From(
        from n in Dims.Dim(400)
        from c in Dims.Dim(maxChannels)
        from shift in Gen.Elements(0.0, 0.5, 30.0)
        from seed in Dims.Seed
        let d = Dims.Fit([n, c], d => (long)d[0] * d[1], 300_000)
        select new NormCase(d[0], d[1], shift, seed),
        c => Dims.Shrink(c, [c.N, c.C], d => c with { N = d[0], C = d[1] }));
}

public static class LayerNormChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("LayerNorm", "Forward", NormCase.Arbitrary(1100), Forward),
        OpProperty.Of("LayerNorm", "Backward", NormCase.Arbitrary(1100), Backward),
        OpProperty.Of("LayerNorm", "BackwardWithFrozenWeight", NormCase.Arbitrary(1100), (c, context) => Backward(c, context, weight: false, bias: true)),
        OpProperty.Of("LayerNorm", "BackwardWithFrozenParameters", NormCase.Arbitrary(1100), (c, context) => Backward(c, context, weight: false, bias: false)),
        OpProperty.Of("LayerNorm", "BackwardMatchesFiniteDifferences", NormCase.Arbitrary(1100), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    private const float Eps = 1e-5f;

    public static void Forward(NormCase c, CheckContext context)
    {
        var check = new OpCheck("LayerNorm", c, c.Seed, context);
        var input = check.Input("input", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C, 1.0, c.Shift));
        var weight = check.Input("weight", [c.C], Values.Normal(check.Rng, c.C, 0.5, 1.0));
        var bias = check.Input("bias", [c.C], Values.Normal(check.Rng, c.C, 0.5));
        var output = check.Output("output", [c.N, c.C], c.Scaled(Tolerance.Normalize));
        // a row's mean sums C terms of size ≈ 1 + |shift|, which cancel when the row's mean is near 0
        var mean = check.Output("mean", [c.N], Tolerance.Normalize, scale: 1 + c.Shift);
        var rstd = check.Output("rstd", [c.N], c.Scaled(Tolerance.Normalize));
        check.Run((b, t) => b.LayerNorm(t(input), t(weight), t(bias), t(output), t(mean), t(rstd), Eps));
    }

    /// <summary>Both sides get the same saved mean and rstd (the oracle's, rounded to f32), so only backward is compared.</summary>
    public static void Backward(NormCase c, CheckContext context) => Backward(c, context, weight: true, bias: true);

    /// <summary>Backward asked for dInput and only the parameter gradients that are wanted (null: a frozen gain or
    /// bias); what it computes must not change.</summary>
    private static void Backward(NormCase c, CheckContext context, bool weight, bool bias)
    {
        var check = new OpCheck("LayerNormBackward", c, c.Seed, context);
        var x = Values.Normal(check.Rng, c.N * c.C, 1.0, c.Shift);
        var w = Values.Normal(check.Rng, c.C, 0.5, 1.0);
        var (meanValues, rstdValues) = Saved(x, w, c.N, c.C);

        var dOutput = check.Input("dOutput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C));
        var input = check.Input("input", [c.N, c.C], x);
        var gain = check.Input("weight", [c.C], w);
        var mean = check.Input("mean", [c.N], meanValues);
        var rstd = check.Input("rstd", [c.N], rstdValues);
        // dx = rstd·(dy − mean(dy) − x̂·mean(dy·x̂)): terms of size rstd·|dy| that cancel (exactly, for C = 2);
        // dWeight and dBias sum N rows of unit terms
        var dInput = check.InOut("dInput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C), c.Scaled(Tolerance.NormalizeBackward), Compare.Rms(rstdValues));
        // dWeight/dBias sum over N rows: a column sum in f32 on top of the normalization's error.
        double[] dWeightValues = Values.Normal(check.Rng, c.C), dBiasValues = Values.Normal(check.Rng, c.C);
        var dWeight = weight ? check.InOut("dWeight", [c.C], dWeightValues, c.Scaled(Tolerance.NormalizeBackward), Math.Sqrt(c.N)) : null;
        var dBias = bias ? check.InOut("dBias", [c.C], dBiasValues, Tolerance.NormalizeBackward, Math.Sqrt(c.N)) : null;
        check.Run((b, t) => b.LayerNormBackward(t(dOutput), t(input), t(gain), t(mean), t(rstd), t(dInput),
            dWeight is null ? null : t(dWeight), dBias is null ? null : t(dBias)));
    }

    /// <summary>mean and rstd from the definition, rounded to f32 as a subject would store them.</summary>
    private static (double[] Mean, double[] Rstd) Saved(double[] x, double[] w, int n, int c)
    {
        var mean = Oracle.Zeros(n);
        var rstd = Oracle.Zeros(n);
        Oracle.Backend.LayerNorm(Oracle.Tensor(x, n, c), Oracle.Tensor(w, c), Oracle.Zeros(c), Oracle.Zeros(n, c), mean, rstd, Eps);
        return (Oracle.Read(mean).Select(v => (double)(float)v).ToArray(), Oracle.Read(rstd).Select(v => (double)(float)v).ToArray());
    }

    public static void BackwardMatchesFiniteDifferences(NormCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = Math.Min(c.N, 4), ch = Math.Min(c.C, 13);
        var x = Values.Normal(rng, n * ch, 1.0, c.Shift);
        var wt = Values.Normal(rng, ch, 0.5, 1.0);
        var bs = Values.Normal(rng, ch, 0.5);
        var dy = Values.Normal(rng, n * ch);
        double[] pInput = Values.Normal(rng, n * ch), pWeight = Values.Normal(rng, ch), pBias = Values.Normal(rng, ch);

        Tensor input = Oracle.Tensor(x, n, ch), weight = Oracle.Tensor(wt, ch), bias = Oracle.Tensor(bs, ch);
        Tensor output = Oracle.Zeros(n, ch), mean = Oracle.Zeros(n), rstd = Oracle.Zeros(n);
        void Run() => Oracle.Backend.LayerNorm(input, weight, bias, output, mean, rstd, Eps);

        Run();
        Tensor dInput = Oracle.Tensor(pInput, n, ch), dWeight = Oracle.Tensor(pWeight, ch), dBias = Oracle.Tensor(pBias, ch);
        Oracle.Backend.LayerNormBackward(Oracle.Tensor(dy, n, ch), input, weight, mean, rstd, dInput, dWeight, dBias);

        // x ≈ shift ± 1: rounding of x − mean is ε·shift, amplified by rstd ≈ 1 into every output (seen: C=2, shift=30)
        FiniteDifferences.Check("LayerNormBackward", "input", c, x, Oracle.Through(input, x, Run, output), dy, Oracle.Delta(Oracle.Read(dInput), pInput), rng,
            roundingMagnitude: y => (1 + c.Shift) * Values.Dot(y.Select(Math.Abs).ToArray(), dy.Select(Math.Abs).ToArray()));
        FiniteDifferences.Check("LayerNormBackward", "weight", c, wt, Oracle.Through(weight, wt, Run, output), dy, Oracle.Delta(Oracle.Read(dWeight), pWeight), rng);
        FiniteDifferences.Check("LayerNormBackward", "bias", c, bs, Oracle.Through(bias, bs, Run, output), dy, Oracle.Delta(Oracle.Read(dBias), pBias), rng);
    }
}
