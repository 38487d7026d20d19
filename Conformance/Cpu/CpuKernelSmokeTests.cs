using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Cpu;

/// <summary>
/// The CPU fast paths run twice from the same inputs give bit-identical results on odd shapes (closeness to the
/// definition and the definitions' gradients are the catalogue's properties), and bad ids or targets are refused.
/// </summary>
public class CpuKernelSmokeTests
{
    private static readonly CpuBackend Fast = new(fastPaths: true);
    private static readonly CpuBackend Definition = new(fastPaths: false);

    // ---- helpers ---------------------------------------------------------------------------------------------------

    private static double[] RandomValues(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var x = new double[n];
        for (int i = 0; i < n; i++) x[i] = (rng.NextDouble() * 2 - 1) * scale;
        return x;
    }

    private static Tensor F64(double[] data, params int[] shape)
    {
        var t = Definition.Allocate(DType.F64, shape);
        Definition.Upload<double>(data, t);
        return t;
    }

    private static Tensor F32(CpuBackend backend, double[] data, params int[] shape)
    {
        var t = backend.Allocate(DType.F32, shape);
        backend.Upload<float>(data.Select(d => (float)d).ToArray(), t);
        return t;
    }

    private static Tensor I32(CpuBackend backend, int[] data)
    {
        var t = backend.Allocate(DType.I32, [data.Length]);
        backend.Upload<int>(data, t);
        return t;
    }

    private static double[] Get64(Tensor t) => CpuBackend.Span<double>(t).ToArray();
    private static float[] Get32(Tensor t) => CpuBackend.Span<float>(t).ToArray();

    /// <summary>Runs <paramref name="op"/> on the fast path twice from the same inputs: the tensors it writes must be
    /// bit-identical (chunks are fixed, not per-thread; closeness to the definition is the catalogue's properties' job).</summary>
    private static void CompareFast(string what, Func<CpuBackend, Tensor[]> op)
    {
        var first = op(Fast).Select(Get32).ToArray();
        var second = op(Fast).Select(Get32).ToArray();
        for (int k = 0; k < first.Length; k++)
            Assert.True(first[k].AsSpan().SequenceEqual(second[k]), $"{what} output {k}: fast path not deterministic");
    }

    // ---- embedding -------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 3, 5)]
    [InlineData(97, 13, 67)]
    public void EmbeddingFastIsDeterministic(int n, int vocab, int c)
    {
        var ids = Enumerable.Range(0, n).Select(i => (i * 7 + 3) % vocab).ToArray(); // repeats: scatter-add collisions
        CompareFast("embedding", be =>
        {
            var table = F32(be, RandomValues(vocab * c, 1), vocab, c);
            var output = be.Allocate(DType.F32, [n, c]);
            be.Embedding(I32(be, ids), table, output);
            var dTable = F32(be, RandomValues(vocab * c, 2), vocab, c);
            be.EmbeddingBackward(F32(be, RandomValues(n * c, 3), n, c), I32(be, ids), dTable);
            return [output, dTable];
        });
    }

    [Fact]
    public void EmbeddingRejectsOutOfRangeIdNamingPosition()
    {
        var table = Fast.Allocate(DType.F32, [4, 2], "wte");
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Fast.Embedding(I32(Fast, [1, 2, 4]), table, Fast.Allocate(DType.F32, [3, 2])));
        Assert.Contains("id 4 at position 2", ex.Message);
        Assert.Contains("wte", ex.Message);
    }

    // ---- layernorm -------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(97, 67)]
    [InlineData(33, 768)]
    [InlineData(401, 768)] // large enough for the parallel path
    public void LayerNormFastIsDeterministic(int n, int c)
    {
        CompareFast("layernorm", be =>
        {
            var input = F32(be, RandomValues(n * c, 1, 3).Select(x => x + 0.5).ToArray(), n, c);
            var weight = F32(be, RandomValues(c, 2), c);
            var output = be.Allocate(DType.F32, [n, c]);
            var mean = be.Allocate(DType.F32, [n]);
            var rstd = be.Allocate(DType.F32, [n]);
            be.LayerNorm(input, weight, F32(be, RandomValues(c, 3), c), output, mean, rstd);
            var dInput = F32(be, RandomValues(n * c, 4), n, c);
            var dWeight = F32(be, RandomValues(c, 5), c);
            var dBias = F32(be, RandomValues(c, 6), c);
            be.LayerNormBackward(F32(be, RandomValues(n * c, 7), n, c), input, weight, mean, rstd, dInput, dWeight, dBias);
            return [output, mean, rstd, dInput, dWeight, dBias];
        });
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(97, 67)]
    [InlineData(401, 768)] // large enough for the parallel path
    public void RmsNormFastIsDeterministic(int n, int c)
    {
        CompareFast("rmsnorm", be =>
        {
            var input = F32(be, RandomValues(n * c, 1, 3).Select(x => x + 0.5).ToArray(), n, c);
            var weight = F32(be, RandomValues(c, 2), c);
            var output = be.Allocate(DType.F32, [n, c]);
            var rstd = be.Allocate(DType.F32, [n]);
            be.RmsNorm(input, weight, output, rstd);
            var dInput = F32(be, RandomValues(n * c, 4), n, c);
            var dWeight = F32(be, RandomValues(c, 5), c);
            be.RmsNormBackward(F32(be, RandomValues(n * c, 7), n, c), input, weight, rstd, dInput, dWeight);
            return [output, rstd, dInput, dWeight];
        });
    }

    // ---- gelu ------------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(97)]
    [InlineData(300_007)] // large enough for the parallel path
    public void GeluFastIsDeterministic(int n)
    {
        CompareFast("gelu", be =>
        {
            var input = F32(be, RandomValues(n, 1, 6), n);
            var output = be.Allocate(DType.F32, [n]);
            be.Gelu(input, output);
            var dInput = F32(be, RandomValues(n, 2), n);
            be.GeluBackward(F32(be, RandomValues(n, 3), n), input, dInput);
            return [output, dInput];
        });
    }

    // ---- swish -----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(97)]
    [InlineData(300_007)] // large enough for the parallel path
    public void SwishFastIsDeterministic(int n)
    {
        CompareFast("swish", be =>
        {
            var input = F32(be, RandomValues(n, 1, 6), n);
            var output = be.Allocate(DType.F32, [n]);
            be.Swish(input, output, 8f);   // βx up to ±~200: where a naive e^−z overflows
            var dInput = F32(be, RandomValues(n, 2), n);
            be.SwishBackward(F32(be, RandomValues(n, 3), n), input, dInput, 8f);
            return [output, dInput];
        });
    }

    // ---- relu, exact gelu, multiply --------------------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(97)]
    [InlineData(300_007)] // large enough for the parallel path
    public void ReluGeluExactAndMultiplyFastAreDeterministic(int n)
    {
        CompareFast("relu/gelu exact/multiply", be =>
        {
            var input = F32(be, RandomValues(n, 1, 6), n);
            var other = F32(be, RandomValues(n, 4), n);
            var relu = be.Allocate(DType.F32, [n]);
            be.Relu(input, relu);
            var dRelu = F32(be, RandomValues(n, 2), n);
            be.ReluBackward(F32(be, RandomValues(n, 3), n), input, dRelu);
            var gelu = be.Allocate(DType.F32, [n]);
            be.GeluExact(input, gelu);
            var dGelu = F32(be, RandomValues(n, 2), n);
            be.GeluExactBackward(F32(be, RandomValues(n, 3), n), input, dGelu);
            var product = be.Allocate(DType.F32, [n]);
            be.Multiply(input, other, product);
            var dA = F32(be, RandomValues(n, 5), n);
            var dB = F32(be, RandomValues(n, 6), n);
            be.MultiplyBackward(F32(be, RandomValues(n, 3), n), input, other, dA, dB);
            return [relu, dRelu, gelu, dGelu, product, dA, dB];
        });
    }

    /// <summary>The scalar erf and erfc against high-precision values (mpmath, 30 digits), within 2 ulp in double, on every
    /// approximation range (|x| &lt; 0.84375, &lt; 1.25, &lt; 1/0.35, &lt; 6 or 28) and in the erfc tail.</summary>
    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(1e-10, 1.1283791670955126e-10)]
    [InlineData(0.5, 0.5204998778130465)]
    [InlineData(1.0, 0.8427007929497149)]
    [InlineData(2.0, 0.9953222650189527)]
    [InlineData(-3.0, -0.9999779095030014)]
    [InlineData(-0.3, -0.3286267594591274)]
    public void ErfMatchesKnownValues(double x, double erf)
    {
        Assert.True(Math.Abs(GeluExactKernel.Erf(x) - erf) <= 2 * (Math.BitIncrement(Math.Abs(erf)) - Math.Abs(erf)),
            $"erf({x}) = {GeluExactKernel.Erf(x):R}, expected {erf:R}");
        Assert.True(Math.Abs(GeluExactKernel.Erfc(x) - (1 - erf)) <= 4e-16, $"erfc({x}) = {GeluExactKernel.Erfc(x):R}");
    }

    [Theory]
    [InlineData(3.0, 2.209049699858544e-05)]
    [InlineData(5.0, 1.537459794428035e-12)]
    [InlineData(10.0, 2.088487583762545e-45)]
    [InlineData(26.0, 5.663192408856143e-296)]
    public void ErfcKeepsItsRelativeAccuracyInTheTail(double x, double erfc)
    {
        double relative = Math.Abs(GeluExactKernel.Erfc(x) - erfc) / erfc;
        Assert.True(relative <= 1e-15, $"erfc({x}) = {GeluExactKernel.Erfc(x):R}, expected {erfc:R} (relative error {relative:E2})");
        Assert.True(Math.Abs(GeluExactKernel.Erfc(-x) - (2 - erfc)) <= 4e-16);
    }

    // ---- residual ops ----------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(97)]
    [InlineData(300_007)]
    public void ResidualFastIsDeterministic(int n)
    {
        CompareFast("add/accumulate/scale", be =>
        {
            var a = F32(be, RandomValues(n, 1), n);
            var output = be.Allocate(DType.F32, [n]);
            be.Add(a, F32(be, RandomValues(n, 2), n), output);
            be.Accumulate(F32(be, RandomValues(n, 3), n), a);
            be.Scale(a, 0.37f);
            return [output, a];
        });
        var x = RandomValues(n, 4, 3);
        double expected = Definition.SumOfSquares(F32(Definition, x, n));
        double fast = Fast.SumOfSquares(F32(Fast, x, n));
        Assert.True(Math.Abs(expected - fast) <= 1e-12 * expected, $"sum of squares: definition {expected} vs fast {fast}");
        Assert.Equal(fast, Fast.SumOfSquares(F32(Fast, x, n)));
    }

    // ---- attention -------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1, 1, 1, 1)]
    [InlineData(2, 3, 2, 2, 7)]
    [InlineData(1, 97, 3, 1, 16)]
    [InlineData(2, 64, 4, 2, 64)]
    public void AttentionFastIsDeterministic(int batch, int time, int heads, int kvHeads, int headSize)
    {
        int q = batch * time * heads * headSize, kv = batch * time * kvHeads * headSize;
        CompareFast("attention", be =>
        {
            var query = F32(be, RandomValues(q, 1, 2), batch, time, heads, headSize);
            var key = F32(be, RandomValues(kv, 4, 2), batch, time, kvHeads, headSize);
            var value = F32(be, RandomValues(kv, 5), batch, time, kvHeads, headSize);
            var bias = F32(be, RandomValues(heads * time * time, 6), heads, time, time);
            var output = be.Allocate(DType.F32, [batch, time, heads, headSize]);
            var rowMax = be.Allocate(DType.F32, [batch, heads, time]);
            var rowSum = be.Allocate(DType.F32, [batch, heads, time]);
            var mask = new AttentionMask { Window = 5 };
            be.Attention(query, key, value, bias, mask, output, rowMax, rowSum);
            var dQuery = F32(be, RandomValues(q, 2), batch, time, heads, headSize);
            var dKey = F32(be, RandomValues(kv, 7), batch, time, kvHeads, headSize);
            var dValue = F32(be, RandomValues(kv, 8), batch, time, kvHeads, headSize);
            var dBias = F32(be, RandomValues(heads * time * time, 9), heads, time, time);
            be.AttentionBackward(F32(be, RandomValues(q, 3), batch, time, heads, headSize), query, key, value, bias, mask, output, rowMax, rowSum,
                dQuery, dKey, dValue, dBias);
            return [output, rowMax, rowSum, dQuery, dKey, dValue, dBias];
        });
    }

    // ---- cross-entropy ---------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(7, 97)]
    [InlineData(5, 50257)]
    public void CrossEntropyFastIsDeterministic(int n, int vocab)
    {
        var targets = Enumerable.Range(0, n).Select(i => i == 1 ? -1 : (i * 31 + 5) % vocab).ToArray();
        CompareFast("cross-entropy", be =>
        {
            var logits = F32(be, RandomValues(n * vocab, 1, 8), n, vocab);
            var probs = be.Allocate(DType.F32, [n, vocab]);
            var losses = be.Allocate(DType.F32, [n]);
            be.CrossEntropy(logits, I32(be, targets), probs, losses);
            var dLogits = F32(be, RandomValues(n * vocab, 2), n, vocab);
            be.CrossEntropyBackward(F32(be, RandomValues(n, 3), n), probs, I32(be, targets), dLogits);
            return [probs, losses, dLogits];
        });
    }

    [Fact]
    public void CrossEntropyRejectsBadTargetNamingRow()
    {
        var logits = Fast.Allocate(DType.F32, [3, 5], "logits");
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Fast.CrossEntropy(logits, I32(Fast, [0, 4, 5]), Fast.Allocate(DType.F32, [3, 5]), Fast.Allocate(DType.F32, [3])));
        Assert.Contains("row 2 has target 5", ex.Message);
    }

    // ---- AdamW -----------------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 3)]
    [InlineData(97, 10)]
    [InlineData(200_003, 2)]
    public void AdamWFastIsDeterministic(int n, int step)
    {
        var hyper = new AdamWParameters(LearningRate: 1e-3f, Step: step);
        CompareFast("adamw", be =>
        {
            var param = F32(be, RandomValues(n, 1), n);
            var m = F32(be, RandomValues(n, 2, 0.01), n);
            var v = F32(be, RandomValues(n, 3, 0.001).Select(Math.Abs).ToArray(), n);
            be.AdamW(param, F32(be, RandomValues(n, 4), n), m, v, hyper);
            return [param, m, v];
        });
    }

    [Fact]
    public void AdamWFirstStepMovesByLearningRate()
    {
        // step 1 from m = v = 0: m̂ = g, v̂ = g², so param −= lr·(g/(|g| + ε) + wd·param) ≈ lr·(sign g + wd·param)
        var param = F64([1.0, -2.0], 2);
        var m = Definition.Allocate(DType.F64, [2]);
        var v = Definition.Allocate(DType.F64, [2]);
        Definition.AdamW(param, F64([0.5, -3.0], 2), m, v, new AdamWParameters(0.1f, 1, WeightDecay: 0.5f));
        var p = Get64(param);
        double lr = 0.1f, wd = 0.5f, eps = 1e-8f;
        Assert.Equal(1.0 - lr * (0.5 / (0.5 + eps) + wd * 1.0), p[0], 12);
        Assert.Equal(-2.0 - lr * (-3.0 / (3.0 + eps) + wd * -2.0), p[1], 12);
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            Definition.AdamW(param, F64([0.5, -3.0], 2), m, v, new AdamWParameters(0.1f, 0)));
    }
}
