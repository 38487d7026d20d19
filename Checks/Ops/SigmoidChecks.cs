namespace Llm.Checks.Ops;

/// <summary>σ over <see cref="ElementwiseCase"/>s: inputs up to scale 6·N(0,1), far into both saturated tails.</summary>
public static class SigmoidChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Sigmoid", "Forward", ElementwiseCase.Arbitrary(), Forward),
        OpProperty.Of("Sigmoid", "Backward", ElementwiseCase.Arbitrary(), Backward),
        OpProperty.Of("Sigmoid", "BackwardMatchesFiniteDifferences", ElementwiseCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(ElementwiseCase e, CheckContext context)
    {
        var check = new OpCheck("Sigmoid", e, e.Seed, context);
        var input = check.Input("input", e.Shape, Values.Normal(check.Rng, e.Length, e.Scale));
        var output = check.Output("output", e.Shape, Tolerance.Swish);
        check.Run((b, t) => b.Sigmoid(t(input), t(output)));
    }

    public static void Backward(ElementwiseCase e, CheckContext context)
    {
        var check = new OpCheck("SigmoidBackward", e, e.Seed, context);
        var dOutput = check.Input("dOutput", e.Shape, Values.Normal(check.Rng, e.Length));
        var input = check.Input("input", e.Shape, Values.Normal(check.Rng, e.Length, e.Scale));
        // σ' ≤ ¼ makes the increment small beside the N(0, 1) prefill, whose f32 sum rounds at size ~1: compare at that size
        var dInput = check.InOut("dInput", e.Shape, Values.Normal(check.Rng, e.Length), Tolerance.Swish, scale: 1);
        check.Run((b, t) => b.SigmoidBackward(t(dOutput), t(input), t(dInput)));
    }

    /// <summary>The definition's σ' against central differences of its σ, in F64; the floor as Swish's (σ' ≈ e^−|x| in the tails).</summary>
    public static void BackwardMatchesFiniteDifferences(ElementwiseCase e, CheckContext context) =>
        FiniteDifferences.Activation("SigmoidBackward", e, e.Seed, e.Length, e.Scale,
            (input, output) => Oracle.Backend.Sigmoid(input, output),
            (dOutput, input, dInput) => Oracle.Backend.SigmoidBackward(dOutput, input, dInput),
            roundingMagnitude: (_, _, prefill) => FiniteDifferences.Step * prefill.Sum(Math.Abs));
}
