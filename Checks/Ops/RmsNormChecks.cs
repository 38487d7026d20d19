using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

public static class RmsNormChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("RmsNorm", "Forward", NormCase.Arbitrary(4100), Forward),
        OpProperty.Of("RmsNorm", "Backward", NormCase.Arbitrary(4100), Backward),
        OpProperty.Of("RmsNorm", "BackwardWithFrozenWeight", NormCase.Arbitrary(4100), (c, context) => Backward(c, context, weight: false)),
        OpProperty.Of("RmsNorm", "BackwardMatchesFiniteDifferences", NormCase.Arbitrary(4100), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    private const float Eps = 1e-6f;

    /// <summary>The finite-difference check's eps: a row whose RMS is near √eps curves on that scale (f‴/f′ ~ 1/(x² + eps)),
    /// so central differences with h = 1e-5 err by ~h²/(x² + eps) ≈ 3e-5 at eps = 1e-6 (seen: C = 1, |x| ≈ 7e-4);
    /// at 1e-2 that is ≤ 1e-8, and the eps term weighs more in the gradient being checked, not less.</summary>
    private const float FiniteDifferenceEps = 1e-2f;

    public static void Forward(NormCase c, CheckContext context)
    {
        var check = new OpCheck("RmsNorm", c, c.Seed, context);
        var input = check.Input("input", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C, 1.0, c.Shift));
        var weight = check.Input("weight", [c.C], Values.Normal(check.Rng, c.C, 0.5, 1.0));
        // a row reduction of positive terms, then rsqrt: no cancellation
        var output = check.Output("output", [c.N, c.C], Tolerance.Normalize);
        var rstd = check.Output("rstd", [c.N], Tolerance.Normalize);
        check.Run((b, t) => b.RmsNorm(t(input), t(weight), t(output), t(rstd), Eps));
    }

    /// <summary>Both sides get the same saved rstd (the oracle's, rounded to f32), so only backward is compared.</summary>
    public static void Backward(NormCase c, CheckContext context) => Backward(c, context, weight: true);

    /// <summary>Backward with dWeight null when <paramref name="weight"/> is false (a frozen gain): dInput only.</summary>
    private static void Backward(NormCase c, CheckContext context, bool weight)
    {
        var check = new OpCheck("RmsNormBackward", c, c.Seed, context);
        var x = Values.Normal(check.Rng, c.N * c.C, 1.0, c.Shift);
        var w = Values.Normal(check.Rng, c.C, 0.5, 1.0);
        var rstdValues = Saved(x, w, c.N, c.C);

        var dOutput = check.Input("dOutput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C));
        var input = check.Input("input", [c.N, c.C], x);
        var gain = check.Input("weight", [c.C], w);
        var rstd = check.Input("rstd", [c.N], rstdValues);
        // dx = rstd·(g − x̂·mean(g·x̂)): terms of size rstd·|g| that cancel (exactly, for C = 1); dWeight sums N rows of unit terms
        var dInput = check.InOut("dInput", [c.N, c.C], Values.Normal(check.Rng, c.N * c.C), Tolerance.NormalizeBackward, Compare.Rms(rstdValues));
        var dWeightValues = Values.Normal(check.Rng, c.C);
        var dWeight = weight ? check.InOut("dWeight", [c.C], dWeightValues, Tolerance.NormalizeBackward, Math.Sqrt(c.N)) : null;
        check.Run((b, t) => b.RmsNormBackward(t(dOutput), t(input), t(gain), t(rstd), t(dInput), dWeight is null ? null : t(dWeight)));
    }

    /// <summary>rstd from the definition, rounded to f32 as a subject would store it.</summary>
    private static double[] Saved(double[] x, double[] w, int n, int c)
    {
        var rstd = Oracle.Zeros(n);
        Oracle.Backend.RmsNorm(Oracle.Tensor(x, n, c), Oracle.Tensor(w, c), Oracle.Zeros(n, c), rstd, Eps);
        return Oracle.Read(rstd).Select(v => (double)(float)v).ToArray();
    }

    public static void BackwardMatchesFiniteDifferences(NormCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = Math.Min(c.N, 4), ch = Math.Min(c.C, 13);
        var x = Values.Normal(rng, n * ch, 1.0, c.Shift);
        var wt = Values.Normal(rng, ch, 0.5, 1.0);
        var dy = Values.Normal(rng, n * ch);
        double[] pInput = Values.Normal(rng, n * ch), pWeight = Values.Normal(rng, ch);

        Tensor input = Oracle.Tensor(x, n, ch), weight = Oracle.Tensor(wt, ch);
        Tensor output = Oracle.Zeros(n, ch), rstd = Oracle.Zeros(n);
        void Run() => Oracle.Backend.RmsNorm(input, weight, output, rstd, FiniteDifferenceEps);

        Run();
        Tensor dInput = Oracle.Tensor(pInput, n, ch), dWeight = Oracle.Tensor(pWeight, ch);
        Oracle.Backend.RmsNormBackward(Oracle.Tensor(dy, n, ch), input, weight, rstd, dInput, dWeight);

        FiniteDifferences.Check("RmsNormBackward", "input", c, x, Oracle.Through(input, x, Run, output), dy, Oracle.Delta(Oracle.Read(dInput), pInput), rng);
        FiniteDifferences.Check("RmsNormBackward", "weight", c, wt, Oracle.Through(weight, wt, Run, output), dy, Oracle.Delta(Oracle.Read(dWeight), pWeight), rng);
    }
}
