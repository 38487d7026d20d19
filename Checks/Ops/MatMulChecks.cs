using FsCheck;
using FsCheck.Fluent;
using Llm.Common;
using Llm.Tensors;

namespace Llm.Checks.Ops;

/// <summary>Which operand, if any, is a rank-2 matrix shared by every batch (a weight).</summary>
public enum Shared { None, A, B }

/// <summary>
/// output[batch.., M, N] (+)= op(a) · op(b) + bias. BatchRank leading dims (B0, B1) of which the first BatchRank
/// are used; Grads is a mask (1 dA, 2 dB, 4 dBias) of the gradients backward is asked for.
/// </summary>
public sealed record MatMulCase(int BatchRank, int B0, int B1, int M, int K, int N, bool TransA, bool TransB,
    Shared Shared, bool Bias, bool Accumulate, int Grads, int Seed)
{
    public int[] Batch => new[] { B0, B1 }[..BatchRank];
    public int BatchCount => BatchRank switch { 0 => 1, 1 => B0, _ => B0 * B1 };
    public int[] AShape => [.. Shared == Shared.A ? [] : Batch, .. TransA ? new[] { K, M } : [M, K]];
    public int[] BShape => [.. Shared == Shared.B ? [] : Batch, .. TransB ? new[] { N, K } : [K, N]];
    public int[] OutShape => [.. Batch, M, N];
    public bool WantA => (Grads & 1) != 0;
    public bool WantB => (Grads & 2) != 0;
    public bool WantBias => (Grads & 4) != 0;

    public override string ToString() =>
        $"a{Dims.Shape(AShape)}{(TransA ? "ᵀ" : "")} b{Dims.Shape(BShape)}{(TransB ? "ᵀ" : "")} → {Dims.Shape(OutShape)}" +
        $"{(Bias ? " +bias" : "")}{(Accumulate ? " accumulate" : "")} grads={(WantA ? "A" : "")}{(WantB ? "B" : "")}{(WantBias ? "bias" : "")} seed={Seed}";

    public static Arbitrary<MatMulCase> Arbitrary() => Arb.From(
        from batchRank in Gen.Frequency((3, Gen.Constant(0)), (3, Gen.Constant(1)), (1, Gen.Constant(2)))
        from b0 in Dims.Dim(5)
        from b1 in Dims.Dim(3)
        from m in Dims.Dim(300)
        from k in Dims.Dim(600)
        from n in Dims.Dim(3300)
        from flags in Gen.Choose(0, 15)
        from shared in Gen.Elements(Shared.None, Shared.A, Shared.B, Shared.B)
        from grads in Gen.Choose(1, 7)
        from seed in Dims.Seed
        let batch = batchRank switch { 0 => 1, 1 => b0, _ => b0 * b1 }
        // f64 scalar oracle cost: batch·M·N·K multiply-adds, forward or each backward product
        let d = Dims.Fit([m, k, n], d => (long)batch * d[0] * d[1] * d[2], 1_200_000)
        select new MatMulCase(batchRank, b0, b1, d[0], d[1], d[2], (flags & 1) != 0, (flags & 2) != 0,
            batchRank == 0 ? Shared.None : shared, (flags & 4) != 0, (flags & 8) != 0, grads, seed),
        Shrink);

    private static IEnumerable<MatMulCase> Shrink(MatMulCase c)
    {
        if (c.BatchRank > 0) yield return c with { BatchRank = c.BatchRank - 1, Shared = c.BatchRank == 1 ? Shared.None : c.Shared };
        if (c.TransA) yield return c with { TransA = false };
        if (c.TransB) yield return c with { TransB = false };
        if (c.Shared != Shared.None) yield return c with { Shared = Shared.None };
        if (c.Bias) yield return c with { Bias = false };
        if (c.Accumulate) yield return c with { Accumulate = false };
        foreach (var s in Dims.Shrink(c, [c.B0, c.B1, c.M, c.K, c.N], d => c with { B0 = d[0], B1 = d[1], M = d[2], K = d[3], N = d[4] }))
            yield return s;
    }
}

public static class MatMulChecks
{
    /// <summary>This file's properties, in the catalogue <see cref="Catalogue.All"/>.</summary>
    public static OpProperty[] Properties =>
    [
        OpProperty.Of("MatMul", "Forward", MatMulCase.Arbitrary(), Forward),
        OpProperty.Of("MatMul", "Backward", MatMulCase.Arbitrary(), Backward),
        OpProperty.Of("MatMul", "BackwardMatchesFiniteDifferences", MatMulCase.Arbitrary(), BackwardMatchesFiniteDifferences, 30, definitionOnly: true),
    ];

    public static void Forward(MatMulCase c, CheckContext context)
    {
        var check = new OpCheck("MatMul", c, c.Seed, context);
        var a = check.Input("a", c.AShape, Values.Normal(check.Rng, Tensor.ElementCount(c.AShape)));
        var b = check.Input("b", c.BShape, Values.Normal(check.Rng, Tensor.ElementCount(c.BShape)));
        var bias = c.Bias ? check.Input("bias", [c.N], Values.Normal(check.Rng, c.N)) : null;
        int outLength = Tensor.ElementCount(c.OutShape);
        // inputs ~ N(0, 1): an output element is a sum of K unit products (and a unit bias), of size √K without cancellation
        double scale = Math.Sqrt(c.K + (c.Bias ? 1 : 0));
        var output = c.Accumulate
            ? check.InOut("output", c.OutShape, Values.Normal(check.Rng, outLength), Tolerance.MatMul, scale)
            : check.Output("output", c.OutShape, Tolerance.MatMul, scale);
        check.Run((be, t) => be.MatMul(t(a), t(b), bias is null ? null : t(bias), t(output), c.TransA, c.TransB, c.Accumulate));
    }

    /// <summary>dA, dB (summed over batches when shared) and dBias (summed over all rows), each pre-filled and accumulated.</summary>
    public static void Backward(MatMulCase c, CheckContext context)
    {
        var check = new OpCheck("MatMulBackward", c, c.Seed, context);
        int aLength = Tensor.ElementCount(c.AShape), bLength = Tensor.ElementCount(c.BShape);
        var dOutput = check.Input("dOutput", c.OutShape, Values.Normal(check.Rng, Tensor.ElementCount(c.OutShape)));
        var a = check.Input("a", c.AShape, Values.Normal(check.Rng, aLength));
        var b = check.Input("b", c.BShape, Values.Normal(check.Rng, bLength));
        // sums of unit products: dA over N columns (and the batches when a is shared), dB over M rows (and the batches when
        // b is shared), dBias over every row
        double rows = (double)c.BatchCount * c.M;
        var dA = c.WantA ? check.InOut("dA", c.AShape, Values.Normal(check.Rng, aLength), Tolerance.MatMul,
            Math.Sqrt(c.N * (c.Shared == Shared.A ? c.BatchCount : 1))) : null;
        var dB = c.WantB ? check.InOut("dB", c.BShape, Values.Normal(check.Rng, bLength), Tolerance.MatMul,
            Math.Sqrt(c.M * (c.Shared == Shared.B ? c.BatchCount : 1))) : null;
        // Σ over batch·M rows of dOutput: up to ~1500 f32 terms, a plain sum.
        var dBias = c.WantBias ? check.InOut("dBias", [c.N], Values.Normal(check.Rng, c.N), Tolerance.Sum, Math.Sqrt(rows)) : null;
        check.Run((be, t) => be.MatMulBackward(t(dOutput), t(a), t(b),
            dA is null ? null : t(dA), dB is null ? null : t(dB), dBias is null ? null : t(dBias), c.TransA, c.TransB));
    }

    public static void BackwardMatchesFiniteDifferences(MatMulCase c, CheckContext context)
    {
        // Small copies of the drawn case: every layout flag kept, sizes cut to keep 2·|x| forward runs cheap.
        c = c with { B0 = Math.Min(c.B0, 2), B1 = Math.Min(c.B1, 2), M = Math.Min(c.M, 5), K = Math.Min(c.K, 6), N = Math.Min(c.N, 4), Bias = true };
        var rng = new Rng((ulong)c.Seed);
        var aValues = Values.Normal(rng, Tensor.ElementCount(c.AShape));
        var bValues = Values.Normal(rng, Tensor.ElementCount(c.BShape));
        var biasValues = Values.Normal(rng, c.N);
        var w = Values.Normal(rng, Tensor.ElementCount(c.OutShape));
        double[] pA = Values.Normal(rng, aValues.Length), pB = Values.Normal(rng, bValues.Length), pBias = Values.Normal(rng, c.N);

        Tensor a = Oracle.Tensor(aValues, c.AShape), b = Oracle.Tensor(bValues, c.BShape), bias = Oracle.Tensor(biasValues, c.N);
        Tensor output = Oracle.Zeros(c.OutShape);
        Tensor dA = Oracle.Tensor(pA, c.AShape), dB = Oracle.Tensor(pB, c.BShape), dBias = Oracle.Tensor(pBias, c.N);
        Oracle.Backend.MatMulBackward(Oracle.Tensor(w, c.OutShape), a, b, dA, dB, dBias, c.TransA, c.TransB);

        void Run() => Oracle.Backend.MatMul(a, b, bias, output, c.TransA, c.TransB);
        FiniteDifferences.Check("MatMulBackward", "a", c, aValues, Oracle.Through(a, aValues, Run, output), w, Oracle.Delta(Oracle.Read(dA), pA), rng);
        FiniteDifferences.Check("MatMulBackward", "b", c, bValues, Oracle.Through(b, bValues, Run, output), w, Oracle.Delta(Oracle.Read(dB), pB), rng);
        FiniteDifferences.Check("MatMulBackward", "bias", c, biasValues, Oracle.Through(bias, biasValues, Run, output), w, Oracle.Delta(Oracle.Read(dBias), pBias), rng);
    }
}
