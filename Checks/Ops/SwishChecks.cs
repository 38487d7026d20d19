using FsCheck;
using FsCheck.Fluent;

namespace Llm.Checks.Ops;

/// <summary>An <see cref="ElementwiseCase"/> with Swish's β: 1 (SiLU), 1.702 (σ(1.702x) ≈ GeLU's Φ(x)), 0.5, and 8,
/// where βx at scale 6 reaches ±~200, far past where a naive e^−z overflows.</summary>
public sealed record SwishCase(ElementwiseCase Elements, float Beta)
{
    public override string ToString() => $"{Elements} beta={Beta}";

    public static Arbitrary<SwishCase> Arbitrary()
    {
        var elements = ElementwiseCase.Arbitrary();
        return Arb.From(
            from e in elements.Generator
            from beta in Gen.Elements(1f, 1.702f, 0.5f, 8f)
            select new SwishCase(e, beta),
            c => elements.Shrinker(c.Elements).Select(e => c with { Elements = e }));
    }
}

public static class SwishChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Swish", "Forward", SwishCase.Arbitrary(), Forward),
        OpProperty.Of("Swish", "Backward", SwishCase.Arbitrary(), Backward),
        OpProperty.Of("Swish", "BackwardMatchesFiniteDifferences", SwishCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(SwishCase c, CheckContext context)
    {
        var e = c.Elements;
        var check = new OpCheck("Swish", c, e.Seed, context);
        var input = check.Input("input", e.Shape, Values.Normal(check.Rng, e.Length, e.Scale));
        var output = check.Output("output", e.Shape, Tolerance.Swish);
        check.Run((b, t) => b.Swish(t(input), t(output), c.Beta));
    }

    public static void Backward(SwishCase c, CheckContext context)
    {
        var e = c.Elements;
        var check = new OpCheck("SwishBackward", c, e.Seed, context);
        var dOutput = check.Input("dOutput", e.Shape, Values.Normal(check.Rng, e.Length));
        var input = check.Input("input", e.Shape, Values.Normal(check.Rng, e.Length, e.Scale));
        var dInput = check.InOut("dInput", e.Shape, Values.Normal(check.Rng, e.Length), Tolerance.SwishBackward);
        check.Run((b, t) => b.SwishBackward(t(dOutput), t(input), t(dInput), c.Beta));
    }

    /// <summary>The definition's swish' against central differences of its swish, in F64.</summary>
    public static void BackwardMatchesFiniteDifferences(SwishCase c, CheckContext context) =>
        // the increment is read back as (prefill + Δ) − prefill, exact only to ε·|prefill|, far above swish' ≈ βx·e^(βx) at
        // βx ≪ 0 (seen: 0 against −3.7e-24 at β = 8); M = h·Σ|prefill| sets the floor to 10√k·ε·Σ|prefill|
        FiniteDifferences.Activation("SwishBackward", c, c.Elements.Seed, c.Elements.Length, c.Elements.Scale,
            (input, output) => Oracle.Backend.Swish(input, output, c.Beta),
            (dOutput, input, dInput) => Oracle.Backend.SwishBackward(dOutput, input, dInput, c.Beta),
            roundingMagnitude: (_, _, prefill) => FiniteDifferences.Step * prefill.Sum(Math.Abs));
}
