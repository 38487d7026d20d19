using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Cpu;

/// <summary>
/// A NaN in an input reaches the same outputs in the definition and in its fast path: a softmax row with a NaN score
/// is NaN throughout in both (the definitions take the maximum with T.Max, which propagates NaN as
/// TensorPrimitives.Max does), and elementwise ops and matmul rows poison exactly the elements that read the NaN.
/// </summary>
public sealed class NaNTests
{
    private static readonly CpuBackend Fast = new(fastPaths: true);
    private static readonly CpuBackend Definition = new(fastPaths: false);

    private static Tensor Put(CpuBackend b, float[] values, params int[] shape)
    {
        var t = b.Allocate(DType.F32, shape);
        b.Upload<float>(values, t);
        return t;
    }

    private static float[] Values(int n, int nanAt)
    {
        var rng = new Llm.Common.Rng(5);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)rng.NextGaussian();
        if (nanAt >= 0) x[nanAt] = float.NaN;
        return x;
    }

    /// <summary>Runs <paramref name="op"/> on both backends; the NaN positions of every output must agree, and the
    /// definition must have some (the NaN was read) and some finite elements left (it did not spread everywhere).</summary>
    private static void SameNaNs(string what, Func<CpuBackend, Tensor[]> op)
    {
        var expected = op(Definition).Select(t => CpuBackend.Span<float>(t).ToArray()).ToArray();
        var actual = op(Fast).Select(t => CpuBackend.Span<float>(t).ToArray()).ToArray();
        Assert.Contains(expected, o => o.Any(float.IsNaN));
        for (int k = 0; k < expected.Length; k++)
            for (int i = 0; i < expected[k].Length; i++)
                Assert.True(float.IsNaN(expected[k][i]) == float.IsNaN(actual[k][i]),
                    $"{what} output {k}[{i}]: definition {expected[k][i]}, fast path {actual[k][i]}");
    }

    [Fact]
    public void CrossEntropyRowWithANaNLogit() => SameNaNs("cross-entropy", b =>
    {
        const int n = 3, v = 50257;
        var probs = b.Allocate(DType.F32, [n, v]);
        var losses = b.Allocate(DType.F32, [n]);
        var targets = b.Allocate(DType.I32, [n]);
        b.Upload<int>([1, 2, 3], targets);
        b.CrossEntropy(Put(b, Values(n * v, v + 17), n, v), targets, probs, losses);
        return [probs, losses];
    });

    [Fact]
    public void AttentionWithANaNKey() => SameNaNs("attention", b =>
    {
        const int batch = 1, t = 9, heads = 2, hs = 4, c = heads * hs;
        var output = b.Allocate(DType.F32, [batch, t, heads, hs]);
        var rowMax = b.Allocate(DType.F32, [batch, heads, t]);
        var rowSum = b.Allocate(DType.F32, [batch, heads, t]);
        b.Attention(Put(b, Values(batch * t * c, -1), batch, t, heads, hs), Put(b, Values(batch * t * c, 4 * c + 1), batch, t, heads, hs), // key of position 4, head 0
            Put(b, Values(batch * t * c, -1), batch, t, heads, hs), null, AttentionMask.Causal, output, rowMax, rowSum);
        return [output, rowMax, rowSum];
    });

    [Fact]
    public void NormsGeluSwishAndMatMulRowsWithANaN() => SameNaNs("layernorm/rmsnorm/gelu/swish/matmul", b =>
    {
        const int n = 7, c = 33, o = 5;
        var x = Put(b, Values(n * c, 2 * c + 3), n, c);
        var normed = b.Allocate(DType.F32, [n, c]);
        b.LayerNorm(x, Put(b, Values(c, 0).Select(_ => 1f).ToArray(), c), b.Allocate(DType.F32, [c]), normed, b.Allocate(DType.F32, [n]), b.Allocate(DType.F32, [n]));
        var rmsNormed = b.Allocate(DType.F32, [n, c]);
        b.RmsNorm(x, Put(b, Values(c, 0).Select(_ => 1f).ToArray(), c), rmsNormed, b.Allocate(DType.F32, [n]));
        var g = b.Allocate(DType.F32, [n, c]);
        b.Gelu(x, g);
        var sw = b.Allocate(DType.F32, [n, c]);
        b.Swish(x, sw);
        var y = b.Allocate(DType.F32, [n, o]);
        b.MatMul(x, Put(b, Values(c * o, 0).Select(v => float.IsNaN(v) ? 0.5f : v).ToArray(), c, o), null, y);
        return [normed, rmsNormed, g, sw, y];
    });

    [Fact]
    public void ReluGeluExactAndMultiplyWithANaN() => SameNaNs("relu/gelu exact/multiply", b =>
    {
        const int n = 7, c = 33;
        var x = Put(b, Values(n * c, 2 * c + 3), n, c);
        var other = Put(b, Values(n * c, 5 * c + 1), n, c);
        var r = b.Allocate(DType.F32, [n, c]);
        b.Relu(x, r);
        var g = b.Allocate(DType.F32, [n, c]);
        b.GeluExact(x, g);
        var m = b.Allocate(DType.F32, [n, c]);
        b.Multiply(x, other, m);
        var dA = b.Allocate(DType.F32, [n, c]);
        var dB = b.Allocate(DType.F32, [n, c]);
        b.MultiplyBackward(other, x, other, dA, dB);  // dA = other⊙other: NaN at other's NaN; dB = other⊙x: NaN at both
        return [r, g, m, dA, dB];
    });

    [Fact]
    public void ReluPassesNaNForwardAndStopsItsGradient()
    {
        foreach (var b in new[] { Definition, Fast })
        {
            var x = Put(b, [float.NaN, -1f, 0f, 2f], 4);
            var y = b.Allocate(DType.F32, [4]);
            b.Relu(x, y);
            var dx = Put(b, [1f, 1f, 1f, 1f], 4);
            b.ReluBackward(Put(b, [10f, 10f, 10f, 10f], 4), x, dx);
            var forward = CpuBackend.Span<float>(y).ToArray();
            Assert.True(float.IsNaN(forward[0]));
            Assert.Equal([0f, 0f, 2f], forward[1..]);
            Assert.Equal([1f, 1f, 1f, 11f], CpuBackend.Span<float>(dx).ToArray());  // [x > 0]: 0 for NaN and at x = 0
        }
    }
}
