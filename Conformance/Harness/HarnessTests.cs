using Llm.Common;
using Xunit;

namespace Llm.Conformance.Harness;

/// <summary>The harness must fail on each kind of bug: run GeLU's conformance check against deliberately broken
/// backends and expect the right complaint; and pass the unbroken one.</summary>
public class HarnessTests
{
    private static void RunGelu(Fault fault, int rows = 3, int cols = 37)
    {
        var c = new Llm.Conformance.Ops.ElementwiseCase(rows, cols, 2.0, 12345);
        var check = new OpCheck("Gelu", c, c.Seed, [new Subject(fault.ToString(), () => new FaultyBackend(fault))]);
        var input = check.Input("input", c.Shape, Values.Normal(check.Rng, c.Length, c.Scale));
        var output = check.Output("output", c.Shape, Tolerance.Elementwise);
        check.Run((b, t) => b.Gelu(t(input), t(output)));
    }

    [Fact]
    public void PassesACorrectBackend() => RunGelu(Fault.None);

    [Theory]
    [InlineData(Fault.WritesPastEnd, "out of bounds")]
    [InlineData(Fault.IgnoresOffset, "out of bounds")]
    [InlineData(Fault.LeavesLastUnwritten, "non-finite")]
    [InlineData(Fault.ReadsBeforeStart, "non-finite")]
    [InlineData(Fault.ModifiesInput, "modified its input")]
    [InlineData(Fault.SlightlyWrong, "NMSE")]
    public void CatchesFault(Fault fault, string complaint)
    {
        var e = Assert.Throws<OpCheckException>(() => RunGelu(fault));
        Assert.Contains(complaint, e.Message);
        Assert.Contains("Gelu", e.Message);
        Assert.Contains("seed=12345", e.Message);
    }

    [Fact]
    public void NmseIsNormalized()
    {
        Assert.Equal(0.01, Compare.Nmse([1.1, 2.2], [1.0, 2.0]), 12);
        Assert.Equal(0, Compare.Nmse([0.0], [0.0]));
        Assert.Equal(double.PositiveInfinity, Compare.Nmse([1e-30], [0.0]));
    }

    /// <summary>Finite differences reject a gradient that is off by a few percent, and accept the true one.</summary>
    [Fact]
    public void FiniteDifferencesRejectAWrongGradient()
    {
        var rng = new Rng(7);
        double[] x = Values.Normal(rng, 5), w = Values.Normal(rng, 5);
        double[] Forward(double[] xs) => xs.Select(v => Math.Sin(v)).ToArray();
        double[] right = x.Select((v, i) => w[i] * Math.Cos(v)).ToArray();
        FiniteDifferences.Check("sin", "x", "test", x, Forward, w, right, rng);
        double[] wrong = right.Select(g => g * 1.01).ToArray();
        Assert.Throws<OpCheckException>(() => FiniteDifferences.Check("sin", "x", "test", x, Forward, w, wrong, rng));
    }

    [Fact]
    public void DimsShrinkTowardOne() =>
        Assert.Equal([1, 4, 6], Dims.ShrinkDim(7).ToArray());
}
