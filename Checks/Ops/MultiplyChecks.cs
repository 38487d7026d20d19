using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>Which of Multiply's gradients a backward case asks for: both, or one with the other null.</summary>
public enum Wanted { Both, OnlyDA, OnlyDB }

/// <summary>An <see cref="ElementwiseCase"/> with the gradients Multiply's backward computes.</summary>
public sealed record MultiplyCase(ElementwiseCase Elements, Wanted Wanted)
{
    public override string ToString() => $"{Elements} wanted={Wanted}";

    public static Arbitrary<MultiplyCase> Arbitrary()
    {
        var elements = ElementwiseCase.Arbitrary();
        return Arb.From(
            from e in elements.Generator
            from wanted in Gen.Elements(Wanted.Both, Wanted.OnlyDA, Wanted.OnlyDB)
            select new MultiplyCase(e, wanted),
            c => elements.Shrinker(c.Elements).Select(e => c with { Elements = e }));
    }
}

public static class MultiplyChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Multiply", "Forward", ElementwiseCase.Arbitrary(), Forward),
        OpProperty.Of("Multiply", "Backward", MultiplyCase.Arbitrary(), Backward),
        OpProperty.Of("Multiply", "BackwardMatchesFiniteDifferences", ElementwiseCase.Arbitrary(), BackwardMatchesFiniteDifferences, 20, definitionOnly: true),
    ];

    public static void Forward(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Multiply", c, c.Seed, context);
        var a = check.Input("a", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var b = check.Input("b", c.Shape, Values.Normal(check.Rng, c.Length));
        var output = check.Output("output", c.Shape, Tolerance.Multiply);
        check.Run((be, t) => be.Multiply(t(a), t(b), t(output)));
    }

    public static void Backward(MultiplyCase c, CheckContext context)
    {
        var e = c.Elements;
        var check = new OpCheck("MultiplyBackward", c, e.Seed, context);
        var dOutput = check.Input("dOutput", e.Shape, Values.Normal(check.Rng, e.Length));
        var a = check.Input("a", e.Shape, Values.Normal(check.Rng, e.Length, e.Scale));
        var b = check.Input("b", e.Shape, Values.Normal(check.Rng, e.Length));
        // f32 rounds prefill + increment at the size of the sum, √(1 + RMS(increment)²), not of the increment (dB's dy·a is
        // only ~0.1 at scale 0.1): that size is each gradient's scale (seen without it: 7.8e-7 relative to a 0.1 increment)
        var dA = c.Wanted != Wanted.OnlyDB ? check.InOut("dA", e.Shape, Values.Normal(check.Rng, e.Length), Tolerance.Multiply, Math.Sqrt(2)) : null;
        var dB = c.Wanted != Wanted.OnlyDA ? check.InOut("dB", e.Shape, Values.Normal(check.Rng, e.Length), Tolerance.Multiply, Math.Sqrt(1 + e.Scale * e.Scale)) : null;
        check.Run((be, t) => be.MultiplyBackward(t(dOutput), t(a), t(b), dA is null ? null : t(dA), dB is null ? null : t(dB)));
    }

    /// <summary>∂(Σ w⊙a⊙b)/∂a = w⊙b and ∂/∂b = w⊙a against central differences of the definition's product, in F64.</summary>
    public static void BackwardMatchesFiniteDifferences(ElementwiseCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = Math.Min(c.Length, 100);
        double[] a = Values.Normal(rng, n, c.Scale), b = Values.Normal(rng, n), w = Values.Normal(rng, n);
        double[] prefillA = Values.Normal(rng, n), prefillB = Values.Normal(rng, n);
        Tensor ta = Oracle.Tensor(a, n), tb = Oracle.Tensor(b, n), output = Oracle.Zeros(n);
        Tensor dA = Oracle.Tensor(prefillA, n), dB = Oracle.Tensor(prefillB, n);
        Oracle.Backend.MultiplyBackward(Oracle.Tensor(w, n), ta, tb, dA, dB);
        void Run() => Oracle.Backend.Multiply(ta, tb, output);
        // (prefill + Δ) − prefill is exact only to ε·|prefill|, above w⊙b where b is tiny: M = h·Σ|prefill| at least
        FiniteDifferences.Check("Multiply backward", "a", c, a, Oracle.Through(ta, a, Run, output), w, Oracle.Delta(Oracle.Read(dA), prefillA), rng,
            roundingMagnitude: _ => FiniteDifferences.Step * prefillA.Sum(Math.Abs));
        FiniteDifferences.Check("Multiply backward", "b", c, b, Oracle.Through(tb, b, Run, output), w, Oracle.Delta(Oracle.Read(dB), prefillB), rng,
            roundingMagnitude: _ => FiniteDifferences.Step * prefillB.Sum(Math.Abs));
    }
}
