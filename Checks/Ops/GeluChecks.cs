using FsCheck;
using FsCheck.Fluent;

namespace Llm.Checks.Ops;

/// <summary>An elementwise case: a [Rows, Cols] tensor of Scale·N(0,1) values (Scale up to 6 reaches tanh's saturation).
/// Up to 300k elements: past the CPU's 2¹⁸-element parallel threshold and many 2¹⁴-element chunks.</summary>
public sealed record ElementwiseCase(int Rows, int Cols, double Scale, int Seed)
{
    public int[] Shape => [Rows, Cols];
    public int Length => Rows * Cols;
    public override string ToString() => $"x{Dims.Shape(Rows, Cols)} scale={Scale} seed={Seed}";

    public static Arbitrary<ElementwiseCase> Arbitrary() =>
        Arb.From(
        from rows in Dims.Dim(300)
         from cols in Dims.Dim(40_000)
         from scale in Gen.Elements(0.1, 1.0, 3.0, 6.0)
         from seed in Dims.Seed
         let d = Dims.Fit([rows, cols], d => (long)d[0] * d[1], 300_000)
         select new ElementwiseCase(d[0], d[1], scale, seed),
        c => Dims.Shrink(c, [c.Rows, c.Cols], d => c with { Rows = d[0], Cols = d[1] }));
}

public static class GeluChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Gelu", "Forward", ElementwiseCase.Arbitrary(), Forward),
        OpProperty.Of("Gelu", "Backward", ElementwiseCase.Arbitrary(), Backward),
        OpProperty.Of("Gelu", "BackwardMatchesFiniteDifferences", ElementwiseCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Gelu", c, c.Seed, context);
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var output = check.Output("output", c.Shape, Tolerance.Gelu);
        check.Run((b, t) => b.Gelu(t(input), t(output)));
    }

    public static void Backward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("GeluBackward", c, c.Seed, context);
        var dOutput = check.Input("dOutput", c.Shape, Values.Normal(check.Rng, c.Length));
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var dInput = check.InOut("dInput", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.GeluBackward);
        check.Run((b, t) => b.GeluBackward(t(dOutput), t(input), t(dInput)));
    }

    /// <summary>The definition's gelu' against central differences of its gelu, in F64.</summary>
    public static void BackwardMatchesFiniteDifferences(ElementwiseCase c, CheckContext context) =>
        // ½x(1 + tanh u) cancels for x ≪ 0: its rounding is ε·|x| per element, far above the tiny output (seen: x ≈ −5)
        FiniteDifferences.Activation("GeluBackward", c, c.Seed, c.Length, c.Scale, Oracle.Backend.Gelu, Oracle.Backend.GeluBackward,
            roundingMagnitude: (x, w, _) => Values.Dot(x.Select(Math.Abs).ToArray(), w.Select(Math.Abs).ToArray()));
}
