using FsCheck.Xunit;
using Llm.Common;
using Llm.Conformance.Harness;

namespace Llm.Conformance.Ops;

/// <summary>The residual stream ops Add, Accumulate, Scale and SumOfSquares, on <see cref="ElementwiseCase"/> shapes.</summary>
[Properties(Arbitrary = [typeof(ElementwiseCase)], MaxTest = 100, QuietOnSuccess = true)]
public class ResidualTests
{
    [Property]
    public void Add(ElementwiseCase c)
    {
        var check = new OpCheck("Add", c, c.Seed);
        var a = check.Input("a", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var b = check.Input("b", c.Shape, Values.Normal(check.Rng, c.Length));
        var output = check.Output("output", c.Shape, Tolerance.Elementwise);
        check.Run((be, t) => be.Add(t(a), t(b), t(output)));
    }

    /// <summary>destination += source, the backward of Add; the destination starts nonzero.</summary>
    [Property]
    public void Accumulate(ElementwiseCase c)
    {
        var check = new OpCheck("Accumulate", c, c.Seed);
        var source = check.Input("source", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var destination = check.InOut("destination", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.Elementwise);
        check.Run((b, t) => b.Accumulate(t(source), t(destination)));
    }

    /// <summary>Accumulate takes any view with the same element count (a gradient may arrive reshaped).</summary>
    [Property(MaxTest = 20)]
    public void AccumulateAcrossShapes(ElementwiseCase c)
    {
        var check = new OpCheck("Accumulate(reshaped)", c, c.Seed);
        var source = check.Input("source", [c.Length], Values.Normal(check.Rng, c.Length, c.Scale));
        var destination = check.InOut("destination", c.Shape, Values.Normal(check.Rng, c.Length), Tolerance.Elementwise);
        check.Run((b, t) => b.Accumulate(t(source), t(destination)));
    }

    [Property]
    public void Scale(ElementwiseCase c)
    {
        var check = new OpCheck("Scale", c, c.Seed);
        float factor = (float)(check.Rng.NextGaussian() * 2);
        var tensor = check.InOut("tensor", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale), Tolerance.Elementwise);
        check.Run((b, t) => b.Scale(t(tensor), factor));
    }

    [Property]
    public void SumOfSquares(ElementwiseCase c)
    {
        var check = new OpCheck("SumOfSquares", c, c.Seed);
        var tensor = check.Input("tensor", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        check.Run((b, t) => b.SumOfSquares(t(tensor)), ("sum", Tolerance.GlobalSum));
    }

    /// <summary>Large tensors (several 256-wide workgroups' worth of partial sums) in one property run.</summary>
    [Property(MaxTest = 5)]
    public void SumOfSquaresLarge(int seed)
    {
        var rng = new Rng((ulong)seed);
        int n = 100_000 + rng.NextInt(200_000);
        var c = new ElementwiseCase(1, n, 1.0, seed);
        var check = new OpCheck("SumOfSquares", c, seed);
        var tensor = check.Input("tensor", c.Shape, Values.Normal(check.Rng, n, 1.0, shift: 0.5));
        check.Run((b, t) => b.SumOfSquares(t(tensor)), ("sum", Tolerance.GlobalSum));
    }

    /// <summary>Add's backward is Accumulate twice: ∂(Σ w⊙(a+b))/∂a = w, checked against central differences.</summary>
    [Property(MaxTest = 20)]
    public void AddBackwardMatchesFiniteDifferences(ElementwiseCase c)
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
