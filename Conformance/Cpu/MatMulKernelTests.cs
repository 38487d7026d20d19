// Shapes: a [batch.., M, K] ([.., K, M] transA), b [batch.., K, N] ([.., N, K] transB), bias [N], output [batch.., M, N].
using Llm.Checks;
using Llm.Common;
using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Cpu;

/// <summary>The raw F32 matmul micro-kernels beyond what the catalogue's MatMul properties reach (their F64 oracle
/// caps the work per case): sizes past the cache blocks, the multi-threaded split, and the shape errors.</summary>
public class MatMulKernelTests
{
    static readonly CpuBackend Fast = new(fastPaths: true);

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
                // the accumulated output, C + A·B + bias, per element against the sum's size without cancellation √(K + 2)
                Compare.Check(new CheckContext([]), "MatMul.Fast", "cpu-fast", "output", [m, n], actual.Select(x => (double)x).ToArray(),
                    expected, Tolerance.MatMul, $"{m}x{n}x{k} transA={ta} transB={tb}", scale: Math.Sqrt(k + 2));
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


    static float[] RandomF(Rng rng, int n) => Enumerable.Range(0, n).Select(_ => (float)rng.NextGaussian()).ToArray();
}
