using Llm.Cpu;
using Llm.Tensors;
using Llm.Vulkan;
using Xunit;

using static Llm.Conformance.Vulkan.VulkanTestData;

namespace Llm.Conformance.Vulkan;

// Shapes: query/output [B, Tq, NH, hs], key/value [B, Tk, NKV, hs], scoreBias [NH, Tq, Tk], rowMax/rowSum [B, NH, Tq].

/// <summary>
/// Attention and AttentionBackward on Vulkan with validation on, against the CPU Reference: every mask rule, grouped-query
/// heads, the key and query ranges split by a small loop budget, the slices a small binding forces, accumulation into the
/// gradients, T = 2048 at hs = 64 under the device's own budget, and the shape errors (the catalogue's properties run in Ops/).
/// </summary>
public class VulkanAttentionTests(VulkanFixture fixture) : IClassFixture<VulkanFixture>
{
    private static readonly CpuBackend Cpu = new();

    /// <summary>One attention call's sizes and mask; the mask's tensors are made per backend from the case.</summary>
    public sealed record Case(string Name, int B, int Tq, int Tk, int NH, int NKV, int HS, Visibility Visibility = Visibility.Causal,
        int QueryOffset = 0, int Window = 0, SparsePattern Sparse = SparsePattern.None, int Stride = 0, int Summary = 1,
        bool Prefix = false, bool Segments = false, bool Alibi = false, bool Bias = false, float? Scale = null, float Dropout = 0f)
    {
        public override string ToString() => Name;

        public AttentionMask Mask(IBackend b)
        {
            var rng = new Random(B * 31 + Tq);
            int[] keySegments = [.. Enumerable.Range(0, B * Tk).Select(j => (j % Tk) / 7 + j / Tk)];
            int[] querySegments = [.. Enumerable.Range(0, B * Tq).Select(j => keySegments[j / Tq * Tk + Math.Min(QueryOffset + j % Tq, Tk - 1)])];
            return new AttentionMask
            {
                Visibility = Visibility, QueryOffset = QueryOffset, Window = Window, Sparse = Sparse, Stride = Stride, Summary = Summary,
                PrefixLengths = Prefix ? Ids(b, [.. Enumerable.Range(0, B).Select(i => rng.Next(Tk + 1))]) : null,
                QuerySegments = Segments ? Ids(b, querySegments).Reshape(B, Tq) : null,
                KeySegments = Segments ? Ids(b, keySegments).Reshape(B, Tk) : null,
                AlibiSlopes = Alibi ? Put(b, Random(NH, 9, 0.25f, 0.25f)) : null,
                Scale = Scale,
                // an offset whose counters cross 2³² inside the call: the kernels' 64-bit carry
                Dropout = Dropout, DropoutSeed = 0x0123456789abcdef, DropoutOffset = Dropout > 0f ? (1L << 32) - 3000 : 0,
            };
        }

        private static Tensor Ids(IBackend b, int[] ids) => PutIds(b, ids);
    }

    public static readonly TheoryData<Case> Masks =
    [
        new("causal", 2, 37, 37, 3, 3, 7),
        new("bidirectional", 2, 29, 29, 2, 2, 9, Visibility.Bidirectional),
        new("prefix", 3, 41, 41, 2, 2, 5, Visibility.Prefix, Prefix: true),
        new("query offset (kv cache)", 2, 9, 40, 2, 2, 8, QueryOffset: 31),
        new("sliding window", 2, 70, 70, 2, 2, 6, Window: 11),
        new("window, bidirectional", 1, 30, 30, 2, 2, 6, Visibility.Bidirectional, Window: 5),
        new("sparse strided", 1, 67, 67, 2, 2, 5, Sparse: SparsePattern.Strided, Stride: 8),
        new("sparse fixed", 1, 67, 67, 2, 2, 5, Visibility.Bidirectional, Sparse: SparsePattern.Fixed, Stride: 8, Summary: 3),
        new("segments", 2, 50, 50, 2, 2, 4, Segments: true),
        new("alibi", 2, 33, 33, 4, 4, 8, Alibi: true),
        new("score bias, unit scale", 2, 19, 19, 3, 3, 4, Bias: true, Scale: 1f),
        new("cross-attention", 2, 23, 11, 2, 2, 6, Visibility.Bidirectional, Bias: true),
        new("grouped-query", 2, 30, 30, 6, 2, 8),
        new("multi-query, prefix, bias", 2, 30, 30, 4, 1, 8, Visibility.Prefix, Prefix: true, Bias: true),
        new("past one workgroup, hs 70", 1, 130, 130, 2, 1, 70),
        new("dropout 0.1", 2, 37, 37, 3, 3, 7, Dropout: 0.1f),
        new("dropout 0.5, grouped-query, bias", 2, 30, 30, 6, 2, 8, Bias: true, Dropout: 0.5f),
    ];

    private sealed record Result(float[] Output, float[] RowMax, float[] RowSum, float[] DQuery, float[] DKey, float[] DValue, float[]? DBias);

    /// <summary>Forward, then backward onto prefilled gradients `times` times; the gradients come back as increments.</summary>
    private static Result Run(IBackend b, Case c, int times = 1)
    {
        int[] qShape = [c.B, c.Tq, c.NH, c.HS], kShape = [c.B, c.Tk, c.NKV, c.HS], rows = [c.B, c.NH, c.Tq], biasShape = [c.NH, c.Tq, c.Tk];
        int nq = c.B * c.Tq * c.NH * c.HS, nk = c.B * c.Tk * c.NKV * c.HS, nb = c.NH * c.Tq * c.Tk;
        var mask = c.Mask(b);
        var (q, k, v) = (Put(b, Random(nq, 1, 2), qShape), Put(b, Random(nk, 2, 2), kShape), Put(b, Random(nk, 3), kShape));
        var bias = c.Bias ? Put(b, Random(nb, 4), biasShape) : null;
        var (output, rowMax, rowSum) = (Put(b, Random(nq, 5), qShape), Put(b, Random(c.B * c.NH * c.Tq, 6), rows), Put(b, Random(c.B * c.NH * c.Tq, 7), rows));
        b.Attention(q, k, v, bias, mask, output, rowMax, rowSum);
        float[] dq0 = Random(nq, 8), dk0 = Random(nk, 9), dv0 = Random(nk, 10), db0 = Random(nb, 11);
        var (dq, dk, dv) = (Put(b, dq0, qShape), Put(b, dk0, kShape), Put(b, dv0, kShape));
        var db = c.Bias ? Put(b, db0, biasShape) : null;
        var dOutput = Put(b, Random(nq, 12), qShape);
        for (int i = 0; i < times; i++)
            b.AttentionBackward(dOutput, q, k, v, bias, mask, output, rowMax, rowSum, dq, dk, dv, db);
        float[] Increment(Tensor t, float[] before) => [.. Get(b, t).Select((x, i) => x - before[i])];
        return new(Get(b, output), Get(b, rowMax), Get(b, rowSum), Increment(dq, dq0), Increment(dk, dk0), Increment(dv, dv0),
            db is null ? null : Increment(db, db0));
    }

    private static void AssertMatches(Result expected, Result actual, string what)
    {
        AssertClose(expected.Output, actual.Output, 1e-9, $"{what}: output");
        // a query that sees no key has rowMax −∞ on both sides; compare the finite ones
        for (int i = 0; i < expected.RowMax.Length; i++)
            Assert.True(float.IsNegativeInfinity(expected.RowMax[i]) == float.IsNegativeInfinity(actual.RowMax[i]),
                $"{what}: rowMax[{i}] = {actual.RowMax[i]}, the Reference has {expected.RowMax[i]}");
        float[] Finite(float[] x) => [.. x.Select(v => float.IsNegativeInfinity(v) ? 0f : v)];
        AssertClose(Finite(expected.RowMax), Finite(actual.RowMax), 1e-10, $"{what}: rowMax");
        AssertClose(expected.RowSum, actual.RowSum, 1e-9, $"{what}: rowSum");
        AssertClose(expected.DQuery, actual.DQuery, 1e-8, $"{what}: dQuery increment");
        AssertClose(expected.DKey, actual.DKey, 1e-8, $"{what}: dKey increment");
        AssertClose(expected.DValue, actual.DValue, 1e-8, $"{what}: dValue increment");
        if (expected.DBias is not null) AssertClose(expected.DBias, actual.DBias!, 1e-8, $"{what}: dScoreBias increment");
    }

    [SkippableTheory, MemberData(nameof(Masks))]
    public void EachMaskMatchesTheReference(Case c)
    {
        var vk = fixture.Backend;
        AssertMatches(Run(Cpu, c), Run(vk, c), c.Name);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>A loop budget of 3000 iterations leaves one tile of ~37 keys (hs 16) per invocation: the forward carries
    /// m, l and the output over 6 key ranges, dQ adds over them, dK/dV over query ranges and heads in chunks; the
    /// bias gradient's batch loop runs one batch per dispatch.</summary>
    [SkippableFact]
    public void KeyAndQueryRangesSplitByTheLoopBudgetMatchTheReference()
    {
        using var vk = VulkanTestDevice.OpenWithLimits(loopIterationBudget: 3000);
        foreach (var c in new Case[]
                 {
                     new("split causal", 2, 200, 200, 4, 2, 16),
                     new("split prefix, bias, window", 3, 150, 150, 2, 2, 16, Visibility.Prefix, Window: 90, Prefix: true, Bias: true),
                     new("split bidirectional, segments", 1, 120, 120, 3, 1, 20, Visibility.Bidirectional, Segments: true),
                     new("split causal, bias, dropout", 2, 150, 150, 4, 2, 16, Bias: true, Dropout: 0.3f),
                 })
            AssertMatches(Run(Cpu, c), Run(vk, c), c.Name);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>4 KiB bindings hold one batch of q (20·4·8 floats) and two heads of the bias (20·20 floats): the call runs
    /// as slices of one batch and two heads.</summary>
    [SkippableFact]
    public void SlicesForcedByTheBindingLimitMatchTheReference()
    {
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: 4096);
        foreach (var c in new Case[]
                 {
                     new("sliced, bias", 3, 20, 20, 4, 2, 8, Bias: true, Alibi: true),
                     new("sliced, segments", 3, 20, 20, 4, 4, 8, Visibility.Prefix, Prefix: true, Segments: true),
                     new("sliced, bias, dropout", 3, 20, 20, 4, 2, 8, Bias: true, Dropout: 0.2f),
                 })
            AssertMatches(Run(Cpu, c), Run(vk, c), c.Name);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Backward accumulates: two calls add twice the increment of one.</summary>
    [SkippableFact]
    public void BackwardTwiceDoublesTheIncrement()
    {
        var vk = fixture.Backend;
        var c = new Case("twice", 2, 40, 40, 4, 2, 8, Bias: true);
        var once = Run(vk, c);
        var twice = Run(vk, c, times: 2);
        float[] Double(float[] x) => [.. x.Select(v => 2 * v)];
        AssertClose(Double(once.DQuery), twice.DQuery, 1e-12, "dQuery twice");
        AssertClose(Double(once.DKey), twice.DKey, 1e-12, "dKey twice");
        AssertClose(Double(once.DValue), twice.DValue, 1e-12, "dValue twice");
        AssertClose(Double(once.DBias!), twice.DBias!, 1e-12, "dScoreBias twice");
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>GPT-2's bench length, T = 2048 and hs = 64, under the device's own loop budget: the key loop splits
    /// (lavapipe: 65535 iterations) and nothing is cut short.</summary>
    [SkippableFact]
    public void LongSequenceMatchesTheReference()
    {
        var vk = fixture.Backend;
        var c = new Case("T 2048", 1, 2048, 2048, 1, 1, 64);
        AssertMatches(Run(Cpu, c), Run(vk, c), c.Name);
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>Bad shapes and masks throw the CPU backend's ArgumentException, word for word.</summary>
    [SkippableFact]
    public void ShapeErrorsMatchTheCpuBackend()
    {
        var vk = fixture.Backend;
        string Error(IBackend backend, Action<IBackend, Func<int[], Tensor>> op) =>
            Assert.Throws<ArgumentException>(() => op(backend, shape => backend.Allocate(DType.F32, shape))).Message;
        var bad = new Action<IBackend, Func<int[], Tensor>>[]
        {
            (b, t) => b.Attention(t([1, 4, 2, 8]), t([1, 4, 2, 7]), t([1, 4, 2, 7]), null, AttentionMask.Causal, t([1, 4, 2, 8]), t([1, 2, 4]), t([1, 2, 4])),
            (b, t) => b.Attention(t([1, 4, 3, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, AttentionMask.Causal, t([1, 4, 3, 8]), t([1, 3, 4]), t([1, 3, 4])),
            (b, t) => b.Attention(t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([2, 4, 5]), AttentionMask.Causal, t([1, 4, 2, 8]), t([1, 2, 4]), t([1, 2, 4])),
            (b, t) => b.Attention(t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, AttentionMask.Causal, t([1, 4, 2, 8]), t([1, 4, 2]), t([1, 2, 4])),
            (b, t) => b.Attention(t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, new AttentionMask { Visibility = Visibility.Prefix },
                t([1, 4, 2, 8]), t([1, 2, 4]), t([1, 2, 4])),
            (b, t) => b.Attention(t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, new AttentionMask { Sparse = SparsePattern.Strided },
                t([1, 4, 2, 8]), t([1, 2, 4]), t([1, 2, 4])),
            (b, t) => b.AttentionBackward(t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), t([1, 4, 2, 8]), null, AttentionMask.Causal, t([1, 4, 2, 8]),
                t([1, 2, 4]), t([1, 2, 4]), t([1, 4, 2, 8]), t([1, 4, 2, 7]), t([1, 4, 2, 8]), null),
            (b, t) => b.CopyColumns(t([4, 6]), 3, t([4, 5]), 0, 4),
            (b, t) => b.CopyColumns(t([4, 6]), 0, t([3, 5]), 0, 2),
        };
        foreach (var op in bad) Assert.Equal(Error(Cpu, op), Error(vk, op));
        VulkanTestDevice.AssertClean(vk);
    }

    /// <summary>CopyColumns copies and accumulates a band bit for bit, leaving the other columns alone, also when a small
    /// binding splits it into runs of rows.</summary>
    [SkippableFact]
    public void CopyColumnsMatchesTheReferenceExactly()
    {
        using var vk = VulkanTestDevice.OpenWithLimits(maxBindingBytes: 4096);
        foreach (bool accumulate in new[] { false, true })
        {
            float[] source = Random(300 * 37, 1), destination = Random(300 * 23, 2);
            float[] Once(IBackend b)
            {
                var d = Put(b, destination, 300, 23);
                b.CopyColumns(Put(b, source, 300, 37), 5, d, 3, 17, accumulate);
                return Get(b, d);
            }
            Assert.Equal(Once(Cpu), Once(vk));
        }
        VulkanTestDevice.AssertClean(vk);
    }
}
