// Shapes: a [batch.., M, K] ([batch.., K, M] transA), b [batch.., K, N] ([batch.., N, K] transB), bias [N], output [batch.., M, N].
namespace Llm.Tensors;

/// <summary>The validated geometry of one MatMul: sizes, strides of op(a) and op(b), batch strides (0 = shared).</summary>
public readonly record struct MatMulShapes(int Batch, int M, int N, int K, bool TransA, bool TransB,
    int ARow, int ACol, int BRow, int BCol, int ABatch, int BBatch, int[] BatchShape)
{
    /// <summary>b is one shared weight and a is not transposed: a's batch rows stack into one [batch·M, K] matrix.</summary>
    public bool RowsCollapse => BBatch == 0 && !TransA;

    /// <summary>Checks op(a)·op(b) (+ bias) → output, or → dOutput in backward (<paramref name="outputName"/>), and
    /// returns its geometry; all F32 or all F64.</summary>
    public static MatMulShapes Of(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA, bool transB, string outputName)
    {
        string What() => $"matmul: a {a.Describe()}{(transA ? " (transA)" : "")}, b {b.Describe()}{(transB ? " (transB)" : "")}";
        if (a.Rank < 2 || b.Rank < 2) throw new ArgumentException($"{What()}: both operands need rank ≥ 2");
        if (a.DType is not (DType.F32 or DType.F64) || b.DType != a.DType || output.DType != a.DType || (bias is not null && bias.DType != a.DType))
            throw new ArgumentException($"{What()}, {outputName} {output.Describe()}{(bias is null ? "" : $", bias {bias.Describe()}")}: all must be F32 or all F64");
        int m = transA ? a.Dim(-1) : a.Dim(-2), ka = transA ? a.Dim(-2) : a.Dim(-1);
        int kb = transB ? b.Dim(-1) : b.Dim(-2), n = transB ? b.Dim(-2) : b.Dim(-1);
        if (ka != kb) throw new ArgumentException($"{What()}: inner dimensions differ (op(a) is [{m}, {ka}], op(b) is [{kb}, {n}])");
        int[] aBatch = a.Shape[..^2], bBatch = b.Shape[..^2];
        if (aBatch.Length > 0 && bBatch.Length > 0 && !aBatch.AsSpan().SequenceEqual(bBatch))
            throw new ArgumentException($"{What()}: batch dimensions differ ({Tensor.ShapeString(aBatch)} vs {Tensor.ShapeString(bBatch)})");
        int[] batchShape = aBatch.Length > 0 ? aBatch : bBatch;
        int[] expected = [.. batchShape, m, n];
        if (!output.Shape.AsSpan().SequenceEqual(expected))
            throw new ArgumentException($"{What()}: {outputName} {output.Describe()} should be {Tensor.ShapeString(expected)}");
        if (bias is not null && (bias.Rank != 1 || bias.Shape[0] != n))
            throw new ArgumentException($"{What()}: bias {bias.Describe()} should be [{n}]");
        return new MatMulShapes(Tensor.ElementCount(batchShape), m, n, ka, transA, transB,
            ARow: transA ? 1 : ka, ACol: transA ? m : 1, BRow: transB ? 1 : n, BCol: transB ? ka : 1,
            ABatch: aBatch.Length > 0 ? m * ka : 0, BBatch: bBatch.Length > 0 ? ka * n : 0, batchShape);
    }

    /// <summary>A gradient dA or dB, where asked for, has the shape and dtype of its operand.</summary>
    public static void CheckGradient(Tensor? gradient, Tensor value, string name)
    {
        if (gradient is not null && (!gradient.Shape.AsSpan().SequenceEqual(value.Shape) || gradient.DType != value.DType))
            throw new ArgumentException($"matmul backward: {name} {gradient.Describe()} must match {value.Describe()}");
    }

    /// <summary>dBias is [N] of the operands' dtype.</summary>
    public void CheckBiasGradient(Tensor? dBias, DType dtype, Tensor dOutput)
    {
        if (dBias is not null && (dBias.Rank != 1 || dBias.Shape[0] != N || dBias.DType != dtype))
            throw new ArgumentException($"matmul backward: dBias {dBias.Describe()} must be [{N}] {dtype} (N of {dOutput.Describe()})");
    }
}
