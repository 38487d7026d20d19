namespace Llm.Checks.Ops;

/// <summary>ReLU on <see cref="ElementwiseCase"/> shapes.</summary>
public static class ReluChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Relu", "Forward", ElementwiseCase.Arbitrary(), Forward),
        OpProperty.Of("Relu", "Backward", ElementwiseCase.Arbitrary(), Backward),
        OpProperty.Of("Relu", "BackwardMatchesFiniteDifferences", ElementwiseCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Relu", c, c.Seed, context);
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var output = check.Output("output", c.Shape, Tolerance.Relu);
        check.Run((b, t) => b.Relu(t(input), t(output)));
    }

    public static void Backward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("ReluBackward", c, c.Seed, context);
        var dOutput = check.Input("dOutput", c.Shape, Values.Normal(check.Rng, c.Length));
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var dInput = check.InOut("dInput", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.ReluBackward);
        check.Run((b, t) => b.ReluBackward(t(dOutput), t(input), t(dInput)));
    }

    /// <summary>The definition's [x &gt; 0] against central differences of its max(0, x), in F64, with x kept 10h from the
    /// kink at 0 (where the difference quotient would be ½).</summary>
    public static void BackwardMatchesFiniteDifferences(ElementwiseCase c, CheckContext context) =>
        // where x < 0 the increment is exactly 0; elsewhere (prefill + w) − prefill is exact only to ε·|prefill|
        FiniteDifferences.Activation("ReluBackward", c, c.Seed, c.Length, c.Scale, Oracle.Backend.Relu, Oracle.Backend.ReluBackward,
            roundingMagnitude: (_, _, prefill) => FiniteDifferences.Step * prefill.Sum(Math.Abs), awayFromZero: 10 * FiniteDifferences.Step);
}
