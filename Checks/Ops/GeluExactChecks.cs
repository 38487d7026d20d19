namespace Llm.Checks.Ops;

/// <summary>Exact (erf) GeLU on <see cref="ElementwiseCase"/> shapes; scale 6 reaches x ≈ −20, where x·Φ(x) underflows f32.</summary>
public static class GeluExactChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("GeluExact", "Forward", ElementwiseCase.Arbitrary(), Forward),
        OpProperty.Of("GeluExact", "Backward", ElementwiseCase.Arbitrary(), Backward),
        OpProperty.Of("GeluExact", "BackwardMatchesFiniteDifferences", ElementwiseCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("GeluExact", c, c.Seed, context);
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var output = check.Output("output", c.Shape, Tolerance.GeluExact);
        check.Run((b, t) => b.GeluExact(t(input), t(output)));
    }

    public static void Backward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("GeluExactBackward", c, c.Seed, context);
        var dOutput = check.Input("dOutput", c.Shape, Values.Normal(check.Rng, c.Length));
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var dInput = check.InOut("dInput", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.GeluExactBackward);
        check.Run((b, t) => b.GeluExactBackward(t(dOutput), t(input), t(dInput)));
    }

    /// <summary>The definition's Φ(x) + x·φ(x) against central differences of its x·Φ(x), in F64.</summary>
    public static void BackwardMatchesFiniteDifferences(ElementwiseCase c, CheckContext context) =>
        // gelu' ≈ −x·φ(x) is ~1e-20 at x ≈ −10, below the ε·|prefill| to which (prefill + Δ) − prefill is exact; M = h·Σ|prefill|
        FiniteDifferences.Activation("GeluExactBackward", c, c.Seed, c.Length, c.Scale, Oracle.Backend.GeluExact, Oracle.Backend.GeluExactBackward,
            roundingMagnitude: (_, _, prefill) => FiniteDifferences.Step * prefill.Sum(Math.Abs));
}
