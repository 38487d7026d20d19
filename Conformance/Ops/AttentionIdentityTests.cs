using Llm.Checks;
using Llm.Common;
using Llm.Conformance.Harness;
using Llm.Tensors;
using Xunit;

namespace Llm.Conformance.Ops;

/// <summary>
/// Identities that pin the attention mask's semantics down, on every subject: ALiBi with zero slopes is no bias; GQA
/// equals multi-head attention over repeated key/value heads; a prefix of length 0 is causal and of length T is
/// bidirectional; two documents packed into one sequence with segment ids equal two separate sequences; a window ≥ T
/// is causal. Each side runs on the same backend, so the two must agree to f32 rounding of a different grouping.
/// </summary>
public sealed class AttentionIdentityTests
{
    private static readonly Tolerance Same = new(1e-12, 1e-6, "the same scores and softmax, possibly grouped differently");

    public static TheoryData<string> Subjects() => [.. Backends.Subjects.Select(s => s.Name)];

    private static IBackend Open(string subject) => Backends.Subjects.Single(s => s.Name == subject).Backend;

    private sealed record Run(double[] Output, double[] RowMax, double[] RowSum);

    private static Tensor Put(IBackend b, double[] values, params int[] shape)
    {
        var t = b.Allocate(DType.F32, shape);
        OpCheck.UploadFloats(b, t, values);
        return t;
    }

    private static Tensor Ids(IBackend b, int[] values, params int[] shape)
    {
        var t = b.Allocate(DType.I32, shape);
        b.Upload<int>(values, t);
        return t;
    }

    private static Run Attend(IBackend b, double[] q, double[] k, double[] v, int[] qShape, int[] kShape, AttentionMask mask)
    {
        int[] rows = [qShape[0], qShape[2], qShape[1]];
        var output = b.Allocate(DType.F32, qShape);
        var rowMax = b.Allocate(DType.F32, rows);
        var rowSum = b.Allocate(DType.F32, rows);
        b.Attention(Put(b, q, qShape), Put(b, k, kShape), Put(b, v, kShape), null, mask, output, rowMax, rowSum);
        return new(OpCheck.Download(b, output), OpCheck.Download(b, rowMax), OpCheck.Download(b, rowSum));
    }

    private static void Equal(string subject, string what, int[] shape, Run actual, Run expected)
    {
        Compare.Check(Backends.Context, "attention identity", subject, what, shape, actual.Output, expected.Output, Same, what);
        Compare.Check(Backends.Context, "attention identity", subject, what + " rowSum", [actual.RowSum.Length], actual.RowSum, expected.RowSum, Same, what);
    }

    private static double[] Normal(Rng rng, int n) => Values.Normal(rng, n).Select(x => (double)(float)x).ToArray();

    [Theory, MemberData(nameof(Subjects))]
    public void AlibiWithZeroSlopesIsNoBias(string subject)
    {
        var b = Open(subject);
        var rng = new Rng(1);
        int[] shape = [2, 37, 3, 16];
        int n = Tensor.ElementCount(shape);
        double[] q = Normal(rng, n), k = Normal(rng, n), v = Normal(rng, n);
        var zero = Attend(b, q, k, v, shape, shape, new AttentionMask { AlibiSlopes = Put(b, new double[3], 3) });
        Equal(subject, "ALiBi m = 0", shape, zero, Attend(b, q, k, v, shape, shape, AttentionMask.Causal));
    }

    [Theory, MemberData(nameof(Subjects))]
    public void GroupedQueryAttentionIsMultiHeadOverRepeatedKeys(string subject)
    {
        var b = Open(subject);
        var rng = new Rng(2);
        const int B = 2, T = 29, NH = 6, NKV = 2, hs = 8, group = NH / NKV;
        double[] q = Normal(rng, B * T * NH * hs), k = Normal(rng, B * T * NKV * hs), v = Normal(rng, B * T * NKV * hs);
        double[] Repeat(double[] x)   // HF's repeat_kv: kv head g serves query heads g·group .. g·group + group − 1
        {
            var r = new double[B * T * NH * hs];
            for (int bt = 0; bt < B * T; bt++)
                for (int h = 0; h < NH; h++)
                    Array.Copy(x, (bt * NKV + h / group) * hs, r, (bt * NH + h) * hs, hs);
            return r;
        }
        int[] qShape = [B, T, NH, hs];
        var gqa = Attend(b, q, k, v, qShape, [B, T, NKV, hs], AttentionMask.Causal);
        Equal(subject, "GQA = MHA over repeated k, v", qShape, gqa, Attend(b, q, Repeat(k), Repeat(v), qShape, qShape, AttentionMask.Causal));
    }

    [Theory, MemberData(nameof(Subjects))]
    public void PrefixOfZeroIsCausalAndOfTIsBidirectional(string subject)
    {
        var b = Open(subject);
        var rng = new Rng(3);
        int[] shape = [3, 23, 2, 8];
        int n = Tensor.ElementCount(shape);
        double[] q = Normal(rng, n), k = Normal(rng, n), v = Normal(rng, n);
        AttentionMask Prefix(int length) => new() { Visibility = Visibility.Prefix, PrefixLengths = Ids(b, [length, length, length], 3) };
        Equal(subject, "prefix 0 = causal", shape, Attend(b, q, k, v, shape, shape, Prefix(0)), Attend(b, q, k, v, shape, shape, AttentionMask.Causal));
        Equal(subject, "prefix T = bidirectional", shape, Attend(b, q, k, v, shape, shape, Prefix(23)),
            Attend(b, q, k, v, shape, shape, new AttentionMask { Visibility = Visibility.Bidirectional }));
    }

    [Theory, MemberData(nameof(Subjects))]
    public void TwoPackedSegmentsAreTwoSeparateSequences(string subject)
    {
        var b = Open(subject);
        var rng = new Rng(4);
        const int t1 = 13, t2 = 18, NH = 4, hs = 8, T = t1 + t2, row = NH * hs;
        double[] q = Normal(rng, T * row), k = Normal(rng, T * row), v = Normal(rng, T * row);
        var segments = Ids(b, [.. Enumerable.Repeat(0, t1), .. Enumerable.Repeat(1, t2)], 1, T);
        var slopes = Put(b, [0.5, 0.25, 0.125, 0.0625], NH);   // ALiBi distances inside each document are unchanged by packing
        var packed = Attend(b, q, k, v, [1, T, NH, hs], [1, T, NH, hs],
            new AttentionMask { QuerySegments = segments, KeySegments = segments, AlibiSlopes = slopes });
        Run Alone(int start, int length) => Attend(b, q[(start * row)..((start + length) * row)], k[(start * row)..((start + length) * row)],
            v[(start * row)..((start + length) * row)], [1, length, NH, hs], [1, length, NH, hs], new AttentionMask { AlibiSlopes = slopes });
        Run first = Alone(0, t1), second = Alone(t1, t2);
        var expected = new Run([.. first.Output, .. second.Output], [], []);
        Compare.Check(Backends.Context, "attention identity", subject, "packed = separate", [1, T, NH, hs], packed.Output, expected.Output, Same, "packing");
        // row statistics are [B, NH, T]: head by head, the first document's rows then the second's
        var sums = new double[NH * T];
        for (int h = 0; h < NH; h++)
        {
            Array.Copy(first.RowSum, h * t1, sums, h * T, t1);
            Array.Copy(second.RowSum, h * t2, sums, h * T + t1, t2);
        }
        Compare.Check(Backends.Context, "attention identity", subject, "packed = separate rowSum", [NH * T], packed.RowSum, sums, Same, "packing");
    }

    [Theory, MemberData(nameof(Subjects))]
    public void AWindowOfAtLeastTIsCausal(string subject)
    {
        var b = Open(subject);
        var rng = new Rng(5);
        int[] shape = [2, 31, 2, 8];
        int n = Tensor.ElementCount(shape);
        double[] q = Normal(rng, n), k = Normal(rng, n), v = Normal(rng, n);
        var causal = Attend(b, q, k, v, shape, shape, AttentionMask.Causal);
        foreach (int window in new[] { 31, 32, 1000 })
            Equal(subject, $"window {window} = causal", shape, Attend(b, q, k, v, shape, shape, new AttentionMask { Window = window }), causal);
        // and a window of 1 sees only the query's own key: out = v
        var own = Attend(b, q, k, v, shape, shape, new AttentionMask { Window = 1 });
        Compare.Check(Backends.Context, "attention identity", subject, "window 1 = v", shape, own.Output, v, Same, "window 1");
    }

    /// <summary>Forward's output and statistics, then backward's dQ, dK, dV from prefilled gradients, downloaded.</summary>
    private static double[][] ForwardAndBackward(IBackend b, double[] q, double[] k, double[] v, double[] dO, int[] shape, AttentionMask mask)
    {
        int[] rows = [shape[0], shape[2], shape[1]];
        Tensor query = Put(b, q, shape), key = Put(b, k, shape), value = Put(b, v, shape);
        Tensor output = b.Allocate(DType.F32, shape), rowMax = b.Allocate(DType.F32, rows), rowSum = b.Allocate(DType.F32, rows);
        b.Attention(query, key, value, null, mask, output, rowMax, rowSum);
        Tensor dQ = Put(b, q, shape), dK = Put(b, k, shape), dV = Put(b, v, shape);
        b.AttentionBackward(Put(b, dO, shape), query, key, value, null, mask, output, rowMax, rowSum, dQ, dK, dV, null);
        return [.. new[] { output, rowMax, rowSum, dQ, dK, dV }.Select(t => OpCheck.Download(b, t))];
    }

    [Theory, MemberData(nameof(Subjects))]
    public void DropoutZeroIsNoDropoutBitForBit(string subject)
    {
        var b = Open(subject);
        var rng = new Rng(6);
        int[] shape = [2, 23, 3, 8];
        int n = Tensor.ElementCount(shape);
        double[] q = Normal(rng, n), k = Normal(rng, n), v = Normal(rng, n), dO = Normal(rng, n);
        var plain = ForwardAndBackward(b, q, k, v, dO, shape, AttentionMask.Causal);
        var zero = ForwardAndBackward(b, q, k, v, dO, shape, new AttentionMask { Dropout = 0f, DropoutSeed = 0xfeed, DropoutOffset = 12345 });
        string[] names = ["output", "rowMax", "rowSum", "dQuery", "dKey", "dValue"];
        for (int t = 0; t < names.Length; t++) Assert.True(plain[t].SequenceEqual(zero[t]), $"{subject}: {names[t]} with p = 0 differs from no dropout");
    }

    /// <summary>E over the keep decisions of keep/(1 − p) is 1, so the mean output over many seeds of the definition
    /// approaches the undropped output, within 5 standard errors of the sample mean per element; the statistics never move.</summary>
    [Fact]
    public void DropoutAveragedOverSeedsIsTheUndroppedOutput()
    {
        var rng = new Rng(7);
        int[] shape = [1, 6, 2, 4], rows = [1, 2, 6];
        int n = Tensor.ElementCount(shape);
        double[] q = Values.Normal(rng, n), k = Values.Normal(rng, n), v = Values.Normal(rng, n);
        Tensor query = Oracle.Tensor(q, shape), key = Oracle.Tensor(k, shape), value = Oracle.Tensor(v, shape);
        Tensor output = Oracle.Zeros(shape), rowMax = Oracle.Zeros(rows), rowSum = Oracle.Zeros(rows);
        Oracle.Backend.Attention(query, key, value, null, AttentionMask.Causal, output, rowMax, rowSum);
        double[] expected = Oracle.Read(output), sums = Oracle.Read(rowSum);
        const int seeds = 4000;
        var mean = new double[n];
        var square = new double[n];
        for (int seed = 0; seed < seeds; seed++)
        {
            Oracle.Backend.Attention(query, key, value, null, new AttentionMask { Dropout = 0.5f, DropoutSeed = (ulong)seed, DropoutOffset = 3 * seed },
                output, rowMax, rowSum);
            double[] o = Oracle.Read(output);
            for (int j = 0; j < n; j++) { mean[j] += o[j] / seeds; square[j] += o[j] * o[j] / seeds; }
            Assert.Equal(sums, Oracle.Read(rowSum));
        }
        for (int j = 0; j < n; j++)
        {
            double error = Math.Sqrt(Math.Max(square[j] - mean[j] * mean[j], 0) / seeds);
            Assert.True(error > 0, $"element {j}: no spread over seeds, so nothing was dropped");
            Assert.True(Math.Abs(mean[j] - expected[j]) <= 5 * error, $"element {j}: mean {mean[j]} vs undropped {expected[j]} (standard error {error})");
        }
    }
}
