using FsCheck.Fluent;
using Llm.Common;

namespace Llm.Checks.Ops;

/// <summary>The residual stream ops Add, Accumulate, Scale and SumOfSquares, on <see cref="ElementwiseCase"/> shapes.</summary>
public static class ResidualChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("Add", "Forward", ElementwiseCase.Arbitrary(), Add),
        OpProperty.Of("Add", "BackwardMatchesFiniteDifferences", ElementwiseCase.Arbitrary(), AddBackwardMatchesFiniteDifferences, 20, definitionOnly: true),
        OpProperty.Of("Accumulate", "Forward", ElementwiseCase.Arbitrary(), Accumulate),
        OpProperty.Of("Accumulate", "AcrossShapes", ElementwiseCase.Arbitrary(), AccumulateAcrossShapes, 20),
        OpProperty.Of("Scale", "Forward", ElementwiseCase.Arbitrary(), Scale),
        OpProperty.Of("SumOfSquares", "Forward", ElementwiseCase.Arbitrary(), SumOfSquares),
        OpProperty.Of("SumOfSquares", "Large", Arb.From(Dims.Seed), SumOfSquaresLarge, 5),
    ];

    public static void Add(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Add", c, c.Seed, context);
        var a = check.Input("a", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var b = check.Input("b", c.Shape, Values.Normal(check.Rng, c.Length));
        var output = check.Output("output", c.Shape, Tolerance.Elementwise);
        check.Run((be, t) => be.Add(t(a), t(b), t(output)));
    }

    /// <summary>destination += source, the backward of Add; the destination starts nonzero.</summary>
    public static void Accumulate(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Accumulate", c, c.Seed, context);
        var source = check.Input("source", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var destination = check.InOut("destination", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.Elementwise);
        check.Run((b, t) => b.Accumulate(t(source), t(destination)));
    }

    /// <summary>Accumulate takes any view with the same element count (a gradient may arrive reshaped).</summary>
    public static void AccumulateAcrossShapes(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Accumulate(reshaped)", c, c.Seed, context);
        var source = check.Input("source", [c.Length], Values.Normal(check.Rng, c.Length, c.Scale));
        var destination = check.InOut("destination", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.Elementwise);
        check.Run((b, t) => b.Accumulate(t(source), t(destination)));
    }

    public static void Scale(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("Scale", c, c.Seed, context);
        float factor = (float)(check.Rng.NextGaussian() * 2);
        var tensor = check.InOut("tensor", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale), Tolerance.Elementwise);
        check.Run((b, t) => b.Scale(t(tensor), factor));
    }

    public static void SumOfSquares(ElementwiseCase c, CheckContext context)
    {
        var check = new OpCheck("SumOfSquares", c, c.Seed, context);
        var tensor = check.Input("tensor", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        check.Run((b, t) => b.SumOfSquares(t(tensor)), ("sum", Tolerance.GlobalSum));
    }

    /// <summary>Large tensors (several 256-wide workgroups' worth of partial sums) in one property run.</summary>
    public static void SumOfSquaresLarge(int seed, CheckContext context)
    {
        var rng = new Rng((ulong)seed);
        int n = 100_000 + rng.NextInt(200_000);
        var c = new ElementwiseCase(1, n, 1.0, seed);
        var check = new OpCheck("SumOfSquares", c, seed, context);
        var tensor = check.Input("tensor", c.Shape, Values.Normal(check.Rng, n, 1.0, shift: 0.5));
        check.Run((b, t) => b.SumOfSquares(t(tensor)), ("sum", Tolerance.GlobalSum));
    }

    /// <summary>Add's backward is Accumulate twice: ∂(Σ w⊙(a+b))/∂a = w, checked against central differences.</summary>
    public static void AddBackwardMatchesFiniteDifferences(ElementwiseCase c, CheckContext context)
    {
        var rng = new Rng((ulong)c.Seed);
        int n = Math.Min(c.Length, 100);
        var a = Values.Normal(rng, n, c.Scale);
        var bValues = Values.Normal(rng, n);
        var w = Values.Normal(rng, n);
        var prefill = Values.Normal(rng, n);
        var ta = Oracle.Tensor(a, n);
        var tb = Oracle.Tensor(bValues, n);
        var output = Oracle.Zeros(n);
        double[] Forward(double[] xs)
        {
            Oracle.Write(ta, xs);
            Oracle.Backend.Add(ta, tb, output);
            return Oracle.Read(output);
        }
        var dA = Oracle.Tensor(prefill, n);
        Oracle.Backend.Accumulate(Oracle.Tensor(w, n), dA);
        FiniteDifferences.Check("Add backward (Accumulate)", "a", c, a, Forward, w, Oracle.Delta(Oracle.Read(dA), prefill), rng);
    }
}
