using Llm.Checks;
using Llm.Checks.Ops;
using Llm.Common;
using Xunit;

namespace Llm.Conformance.Harness;

/// <summary>The harness must fail on each kind of bug: run GeLU's conformance check against deliberately broken
/// backends and expect the right complaint; and pass the unbroken one.</summary>
public class HarnessTests
{
    private static void RunGelu(Fault fault, int rows = 3, int cols = 37)
    {
        var c = new ElementwiseCase(rows, cols, 2.0, 12345);
        var context = new CheckContext([new Subject(fault.ToString(), () => new FaultyBackend(fault))]);
        GeluChecks.Forward(c, context);
    }

    [Fact]
    public void PassesACorrectBackend() => RunGelu(Fault.None);

    [Theory]
    [InlineData(Fault.WritesPastEnd, "out of bounds")]
    [InlineData(Fault.IgnoresOffset, "out of bounds")]
    [InlineData(Fault.LeavesLastUnwritten, "non-finite")]
    [InlineData(Fault.ReadsBeforeStart, "non-finite")]
    [InlineData(Fault.ModifiesInput, "modified its input")]
    [InlineData(Fault.SlightlyWrong, "exceeds its bound")]
    [InlineData(Fault.WrongGeluConstant, "exceeds its bound")]
    public void CatchesFault(Fault fault, string complaint)
    {
        var e = Assert.Throws<OpCheckException>(() => RunGelu(fault));
        Assert.Contains(complaint, e.Message);
        Assert.Contains("Gelu", e.Message);
        Assert.Contains("seed=12345", e.Message);
    }

    /// <summary>One element in 300k off by 0.1% of the tensor's scale: NMSE ≈ 1e-6/3e5 ≈ 3e-12, far inside its bound
    /// of 1e-9, so only the per-element check can catch it, and it must name that element.</summary>
    [Fact]
    public void CatchesOneWrongElementInALargeOutput()
    {
        var e = Assert.Throws<OpCheckException>(() => RunGelu(Fault.OneElementWrong, rows: 300, cols: 1000));
        Assert.Contains("output[150,0] is", e.Message);
        Assert.Contains("exceeds its bound", e.Message);
    }

    /// <summary>The increment of an accumulated gradient is compared, not its sum with the pre-fill: a backward that
    /// adds 1% too little to a pre-fill 10⁴ times larger changes the sum by 1e-6 relative, which an NMSE of the sum
    /// (≈ 1e-12) would let through.</summary>
    [Fact]
    public void ComparesTheIncrementOfAnAccumulatingOutput()
    {
        var context = new CheckContext([new Subject("scaled", () => new Llm.Cpu.CpuBackend())]);
        var c = new ElementwiseCase(1, 1000, 1.0, 7);
        var check = new OpCheck("Accumulate", c, c.Seed, context);
        var source = check.Input("source", c.Shape, Values.Normal(check.Rng, c.Length));
        var destination = check.InOut("destination", c.Shape, Values.Normal(check.Rng, c.Length, 1e4), Tolerance.Elementwise);
        var e = Assert.Throws<OpCheckException>(() => check.Run((b, t) =>
        {
            b.Accumulate(t(source), t(destination));
            // the oracle is right; the subject adds 0.99 of the source
            if (b is not Llm.Cpu.CpuBackend { FastPaths: false })
            {
                var less = b.Allocate(Tensors.DType.F32, c.Shape);
                b.Copy(t(source), less);
                b.Scale(less, -0.01f);
                b.Accumulate(less, t(destination));
            }
        }));
        Assert.Contains("destination increment", e.Message);
    }

    /// <summary>A failing property is shrunk to a smaller failing case, and its result names the replay command.</summary>
    [Fact]
    public void AFailingPropertyShrinksAndNamesItsReplay()
    {
        var context = new CheckContext([new Subject("one-wrong", () => new FaultyBackend(Fault.OneElementWrong))]);
        var result = Catalogue.All.Single(p => p.FullName == "Gelu.Forward").Run(context, seed: 99, cases: 5);
        Assert.False(result.Passed);
        var shrunk = Assert.IsType<ElementwiseCase>(result.Shrunk);
        var failed = Assert.IsType<ElementwiseCase>(result.Failed);
        Assert.True(shrunk.Length <= failed.Length);
        Assert.Contains("--ops Gelu.Forward --seed 99", result.Replay);
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
