// Shapes: a [batch.., M, K] ([.., K, M] transA), b [batch.., K, N] ([.., N, K] transB), bias [N], output [batch.., M, N].
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Llm.Common;
using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Cpu;

/// <summary>One random MatMul problem. Form 0: both rank 2; 1: a [B, M, K] · shared weight b (the Linear layer);
/// 2: both [B, ..]; 3: shared a · b [B, ..]; 4: both [2, B, ..] (two batch axes).</summary>
public sealed record MatMulCase(int Form, int Batch, int M, int N, int K, bool TransA, bool TransB, bool Accumulate, bool Bias, ulong Seed)
{
    int[] BatchShape => Form switch { 0 => [], 4 => [2, Batch], _ => [Batch] };
    static int[] Concat(int[] batch, int rows, int cols) => [.. batch, rows, cols];
    public int[] AShape() => Concat(Form is 0 or 3 ? [] : BatchShape, TransA ? K : M, TransA ? M : K);
    public int[] BShape() => Concat(Form is 0 or 1 ? [] : BatchShape, TransB ? N : K, TransB ? K : N);
    public int[] OutShape() => Concat(BatchShape, M, N);
}

public static class MatMulArbitraries
{
    // Sizes that stress the tiling: 1, primes, non-multiples of the 16/32-wide vector tiles, and anything up to 70.
    static readonly Gen<int> Dim = Gen.Frequency((3, Gen.Elements(1, 2, 3, 5, 7, 13, 16, 17, 31, 32, 33, 47, 97)), (2, Gen.Choose(1, 70)));
    static readonly Gen<bool> Flag = Gen.Elements(false, true);

    public static Arbitrary<MatMulCase> Cases() => Arb.From(
        from form in Gen.Choose(0, 4)
        from batch in Gen.Choose(1, 3)
        from m in Dim
        from n in Dim
        from k in Dim
        from ta in Flag
        from tb in Flag
        from acc in Flag
        from bias in Flag
        from seed in Gen.Choose(0, int.MaxValue)
        select new MatMulCase(form, batch, m, n, k, ta, tb, acc, bias, (ulong)seed),
        Shrink);

    /// <summary>Smaller sizes first, then the simpler form and flags, so a failure shrinks to a readable case.</summary>
    static IEnumerable<MatMulCase> Shrink(MatMulCase c)
    {
        foreach (int m in Smaller(c.M)) yield return c with { M = m };
        foreach (int n in Smaller(c.N)) yield return c with { N = n };
        foreach (int k in Smaller(c.K)) yield return c with { K = k };
        if (c.Batch > 1) yield return c with { Batch = 1 };
        if (c.Form != 0) yield return c with { Form = 0 };
        if (c.Accumulate) yield return c with { Accumulate = false };
        if (c.Bias) yield return c with { Bias = false };
        if (c.TransA) yield return c with { TransA = false };
        if (c.TransB) yield return c with { TransB = false };
    }

    static IEnumerable<int> Smaller(int x) => new[] { 1, x / 2, x - 1 }.Where(v => v >= 1 && v < x).Distinct();
}

public class MatMulKernelTests
{
    // F32 vs the F64 definition: each F32 dot product of length K carries a rounding error of about √K·2⁻²⁴ relative
    // to Σ|terms|, so NMSE ≈ K·4e-15 ≤ 1e-11 when nothing cancels; a tiny output (say dA of M=1, K=1 summing 61 terms
    // to near zero) inflates that by (Σ|terms| / |sum|)², seen up to 3e-10. 1e-7, the harness's MatMul tolerance,
    // covers cancellation and is still far below what one wrong element, row or tile gives (≥ 1/elements ≥ 1e-6).
    const double F32Tolerance = 1e-7;
    // F64 central differences of a function linear in each input are exact up to rounding: ≈ (1e-16/h)² ≈ 1e-22.
    const double FiniteDifferenceTolerance = 1e-12;

    static readonly CpuBackend Fast = new(fastPaths: true), Definition = new(fastPaths: false);

    [Property(Arbitrary = [typeof(MatMulArbitraries)], MaxTest = 80)]
    public void Fast_F32_forward_matches_F64_definition(MatMulCase c)
    {
        var rng = new Rng(c.Seed);
        double[] a = Random(rng, c.AShape()), b = Random(rng, c.BShape()), bias = Random(rng, [c.N]), output = Random(rng, c.OutShape());
        var expected = Forward(Definition, DType.F64, c, a, b, bias, output);
        var actual = Forward(Fast, DType.F32, c, a, b, bias, output);
        AssertClose(expected, actual, F32Tolerance, $"output of {c}");
    }

    [Property(Arbitrary = [typeof(MatMulArbitraries)], MaxTest = 60)]
    public void Fast_F32_backward_matches_F64_definition(MatMulCase c)
    {
        var rng = new Rng(c.Seed);
        double[] a = Random(rng, c.AShape()), b = Random(rng, c.BShape()), dOut = Random(rng, c.OutShape());
        // Non-zero starting gradients: backward must add to them, not overwrite.
        double[] dA0 = Random(rng, c.AShape()), dB0 = Random(rng, c.BShape()), dBias0 = Random(rng, [c.N]);
        var expected = Backward(Definition, DType.F64, c, a, b, dOut, dA0, dB0, dBias0);
        var actual = Backward(Fast, DType.F32, c, a, b, dOut, dA0, dB0, dBias0);
        AssertClose(expected.dA, actual.dA, F32Tolerance, $"dA of {c}");
        AssertClose(expected.dB, actual.dB, F32Tolerance, $"dB of {c}");
        AssertClose(expected.dBias, actual.dBias, F32Tolerance, $"dBias of {c}");
    }

    [Property(Arbitrary = [typeof(MatMulArbitraries)], MaxTest = 40)]
    public void Definition_backward_matches_F64_central_differences(MatMulCase big)
    {
        // Small sizes: every input element gets two extra forward passes.
        var c = big with { M = 1 + big.M % 5, N = 1 + big.N % 5, K = 1 + big.K % 5, Batch = 1 + big.Batch % 2, Accumulate = false, Bias = true };
        var rng = new Rng(c.Seed);
        double[] a = Random(rng, c.AShape()), b = Random(rng, c.BShape()), bias = Random(rng, [c.N]), w = Random(rng, c.OutShape());
        // L = Σ w ⊙ matmul(a, b, bias) ⇒ dL/dOutput = w.
        double Loss() => Forward(Definition, DType.F64, c, a, b, bias, new double[w.Length]).Zip(w, (o, wi) => o * wi).Sum();
        var analytic = Backward(Definition, DType.F64, c, a, b, w, new double[a.Length], new double[b.Length], new double[c.N]);
        AssertClose(CentralDifferences(a, Loss), analytic.dA, FiniteDifferenceTolerance, $"dA of {c}");
        AssertClose(CentralDifferences(b, Loss), analytic.dB, FiniteDifferenceTolerance, $"dB of {c}");
        AssertClose(CentralDifferences(bias, Loss), analytic.dBias, FiniteDifferenceTolerance, $"dBias of {c}");
    }

    // Sizes past the cache blocks (KC = 256 deep, MC = 144 rows, NC = 3072 columns), the multi-threaded split along
    // either M or N, and odd edges, on the raw kernel with every transpose combination.
    [Theory]
    [InlineData(300, 70, 530)]
    [InlineData(70, 301, 257)]
    [InlineData(5, 3100, 9)]
    [InlineData(1, 1, 1)]
    [InlineData(97, 13, 600)]
    [InlineData(1, 513, 2)]
    public void Fast_kernel_matches_definition_on_large_and_ragged_sizes(int m, int n, int k)
    {
        var rng = new Rng(7);
        float[] a = RandomF(rng, m * k), b = RandomF(rng, k * n), bias = RandomF(rng, n), start = RandomF(rng, m * n);
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                (int ars, int acs) = ta ? (1, m) : (k, 1);
                (int brs, int bcs) = tb ? (1, k) : (n, 1);
                double[] expected = start.Select(x => (double)x).ToArray();
                MatMul.Definition<double>(m, n, k, a.Select(x => (double)x).ToArray(), ars, acs, b.Select(x => (double)x).ToArray(),
                    brs, bcs, bias.Select(x => (double)x).ToArray(), expected, accumulate: true);
                float[] actual = (float[])start.Clone();
                MatMul.Fast(m, n, k, a, ars, acs, b, brs, bcs, bias, actual, accumulate: true);
                AssertClose(expected, actual.Select(x => (double)x).ToArray(), F32Tolerance, $"{m}x{n}x{k} transA={ta} transB={tb}");
            }
    }

    // The multi-core path packs each op(b) block once for all cores and hands out items of C in any order; every element
    // is still summed by one thread in k order, so it must give the single-threaded path's bits exactly: results do not
    // depend on the thread count. Shapes past KC and NC, skinny M (split along columns too), ragged edges.
    [Theory]
    [InlineData(300, 70, 530)]
    [InlineData(256, 3100, 300)]
    [InlineData(7, 700, 600)]
    [InlineData(97, 13, 600)]
    public void Parallel_fast_kernel_gives_the_single_threaded_bits(int m, int n, int k)
    {
        var rng = new Rng(11);
        float[] a = RandomF(rng, m * k), b = RandomF(rng, k * n), bias = RandomF(rng, n), start = RandomF(rng, m * n);
        foreach (bool ta in new[] { false, true })
            foreach (bool tb in new[] { false, true })
            {
                (int ars, int acs) = ta ? (1, m) : (k, 1);
                (int brs, int bcs) = tb ? (1, k) : (n, 1);
                float[] serial = (float[])start.Clone(), parallel = (float[])start.Clone();
                MatMul.Fast(m, n, k, a, ars, acs, b, brs, bcs, bias, serial, accumulate: true, parallel: false);
                MatMul.Fast(m, n, k, a, ars, acs, b, brs, bcs, bias, parallel, accumulate: true, parallel: true);
                Assert.True(serial.AsSpan().SequenceEqual(parallel), $"{m}x{n}x{k} transA={ta} transB={tb}: parallel and single-threaded results differ");
            }
    }

    [Fact]
    public void Mismatched_shapes_throw_naming_the_shapes()
    {
        var be = Fast;
        Tensor T(params int[] shape) => be.Allocate(DType.F32, shape);
        var e = Assert.Throws<ArgumentException>(() => be.MatMul(T(2, 3), T(4, 5), null, T(2, 5)));
        Assert.Contains("[2, 3]", e.Message); Assert.Contains("[4, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => be.MatMul(T(2, 4, 3), T(3, 3, 5), null, T(2, 4, 5)));
        Assert.Contains("[2]", e.Message); Assert.Contains("[3]", e.Message);
        e = Assert.Throws<ArgumentException>(() => be.MatMul(T(4, 3), T(3, 5), null, T(4, 6)));
        Assert.Contains("[4, 6]", e.Message); Assert.Contains("[4, 5]", e.Message);
        e = Assert.Throws<ArgumentException>(() => be.MatMul(T(4, 3), T(3, 5), T(4), T(4, 5)));
        Assert.Contains("bias", e.Message);
        e = Assert.Throws<ArgumentException>(() => be.MatMulBackward(T(4, 5), T(4, 3), T(3, 5), T(3, 4), null, null));
        Assert.Contains("dA", e.Message); Assert.Contains("[3, 4]", e.Message);
        e = Assert.Throws<ArgumentException>(() => be.MatMul(T(4, 3), be.Allocate(DType.F64, [3, 5]), null, T(4, 5)));
        Assert.Contains("F64", e.Message);
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    static double[] Forward(CpuBackend be, DType dtype, MatMulCase c, double[] a, double[] b, double[] bias, double[] output)
    {
        Tensor ta = Make(be, dtype, c.AShape(), a), tb = Make(be, dtype, c.BShape(), b), to = Make(be, dtype, c.OutShape(), output);
        be.MatMul(ta, tb, c.Bias ? Make(be, dtype, [c.N], bias) : null, to, c.TransA, c.TransB, c.Accumulate);
        return Read(be, to);
    }

    static (double[] dA, double[] dB, double[] dBias) Backward(CpuBackend be, DType dtype, MatMulCase c, double[] a, double[] b,
        double[] dOut, double[] dA0, double[] dB0, double[] dBias0)
    {
        Tensor dA = Make(be, dtype, c.AShape(), dA0), dB = Make(be, dtype, c.BShape(), dB0), dBias = Make(be, dtype, [c.N], dBias0);
        be.MatMulBackward(Make(be, dtype, c.OutShape(), dOut), Make(be, dtype, c.AShape(), a), Make(be, dtype, c.BShape(), b),
            dA, dB, dBias, c.TransA, c.TransB);
        return (Read(be, dA), Read(be, dB), Read(be, dBias));
    }

    static double[] CentralDifferences(double[] x, Func<double> loss)
    {
        const double h = 1e-5;
        var grad = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + h; double plus = loss();
            x[i] = saved - h; double minus = loss();
            x[i] = saved;
            grad[i] = (plus - minus) / (2 * h);
        }
        return grad;
    }

    static Tensor Make(CpuBackend be, DType dtype, int[] shape, double[] values)
    {
        var t = be.Allocate(dtype, shape);
        if (dtype == DType.F64) be.Upload<double>(values, t);
        else be.Upload<float>(values.Select(v => (float)v).ToArray(), t);
        return t;
    }

    static double[] Read(CpuBackend be, Tensor t)
    {
        if (t.DType == DType.F64) { var d = new double[t.Length]; be.Download<double>(t, d); return d; }
        var f = new float[t.Length]; be.Download<float>(t, f); return f.Select(v => (double)v).ToArray();
    }

    // Values are rounded to float first so the F32 and F64 runs see identical inputs.
    static double[] Random(Rng rng, int[] shape) =>
        Enumerable.Range(0, Tensor.ElementCount(shape)).Select(_ => (double)(float)rng.NextGaussian()).ToArray();

    static float[] RandomF(Rng rng, int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextGaussian()).ToArray();

    /// <summary>NMSE = Σ(expected − actual)² / Σ expected² must stay below tolerance (exact match when both are 0).</summary>
    static void AssertClose(double[] expected, double[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double err = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++) { err += (expected[i] - actual[i]) * (expected[i] - actual[i]); norm += expected[i] * expected[i]; }
        double nmse = norm == 0 ? err : err / norm;
        Assert.True(nmse < tolerance, $"{what}: NMSE {nmse:E2} ≥ {tolerance:E0}");
    }
}
