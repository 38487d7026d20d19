using Llm.Cpu;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Ops;

/// <summary>RopeKernel.InterleavedToHalf, the row permutation that turns a Meta-format q/k projection into Hugging
/// Face's: it round-trips, and rotate-half RoPE on the permuted projection is Meta's interleaved RoPE on the original.</summary>
public sealed class RopeLayoutTests
{
    private static readonly CpuBackend Definition = new(fastPaths: false);

    private static float[] Uniform(int n, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1))];
    }

    [Theory]
    [InlineData(1, 2, 1)]
    [InlineData(3, 8, 5)]
    [InlineData(2, 64, 7)]
    public void HalfToInterleavedUndoesInterleavedToHalf(int heads, int hs, int inFeatures)
    {
        var w = Uniform(heads * hs * inFeatures, 1);
        float[] half = new float[w.Length], back = new float[w.Length];
        RopeKernel.InterleavedToHalf(w, half, heads, hs, inFeatures);
        RopeKernel.HalfToInterleaved(half, back, heads, hs, inFeatures);
        Assert.Equal(w, back);
        if (hs > 2) Assert.NotEqual(w, half);
    }

    [Fact]
    public void PermuteMatchesHuggingFaceOnOneHead()
    {
        // rows 0..7 of one head of 8: w.view(1, 4, 2, 1).transpose(1, 2) puts the even rows first, then the odd ones
        float[] w = [0, 1, 2, 3, 4, 5, 6, 7], half = new float[8];
        RopeKernel.InterleavedToHalf(w, half, 1, 8, 1);
        Assert.Equal([0f, 2, 4, 6, 1, 3, 5, 7], half);
    }

    [Theory]
    [InlineData(1, 8, 3, 10000f)]
    [InlineData(3, 16, 5, 500000f)]
    [InlineData(2, 64, 4, 10000f)]
    public void RotateHalfOnThePermutedWeightIsInterleavedRopeOnTheOriginal(int heads, int hs, int inFeatures, float theta)
    {
        int rows = heads * hs;
        var w = Uniform(rows * inFeatures, 2);
        var u = Uniform(inFeatures, 3);
        var wHalf = new float[w.Length];
        RopeKernel.InterleavedToHalf(w, wHalf, heads, hs, inFeatures);
        int[] positions = [0, 1, 17, 4097];

        foreach (int pos in positions)
        {
            double[] interleaved = Interleaved(Project(w, u, rows), heads, hs, pos, theta);   // [H·hs], Meta's pairing
            var expected = new float[rows];                                                   // the same, in HF's order
            RopeKernel.InterleavedToHalf([.. interleaved.Select(v => (float)v)], expected, heads, hs, 1);

            var q = Definition.Allocate(DType.F64, [1, 1, heads, hs]);
            var y = Definition.Allocate(DType.F64, [1, 1, heads, hs]);
            var p = Definition.Allocate(DType.I32, [1, 1]);
            Definition.Upload<double>(Project(wHalf, u, rows), q);
            Definition.Upload<int>([pos], p);
            Definition.Rope(q, p, y, hs, theta);
            var actual = new double[rows];
            Definition.Download<double>(y, actual);
            for (int i = 0; i < rows; i++) Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-6 * (1 + Math.Abs(expected[i])),
                $"pos {pos} row {i}: rotate-half {actual[i]} vs interleaved {expected[i]}");
        }
    }

    /// <summary>q = W·u in double, W [rows, in].</summary>
    private static double[] Project(float[] w, float[] u, int rows) =>
        [.. Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, u.Length).Sum(k => (double)w[r * u.Length + k] * u[k]))];

    /// <summary>Meta's apply_rotary_emb: pairs (2i, 2i+1) turn by pos·θ^(−2i/hs).</summary>
    private static double[] Interleaved(double[] q, int heads, int hs, int pos, float theta)
    {
        var y = new double[q.Length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < hs / 2; i++)
            {
                double a = pos * Math.Pow(theta, -2.0 * i / hs), c = Math.Cos(a), s = Math.Sin(a);
                int e = h * hs + 2 * i;
                y[e] = q[e] * c - q[e + 1] * s;
                y[e + 1] = q[e + 1] * c + q[e] * s;
            }
        return y;
    }
}
