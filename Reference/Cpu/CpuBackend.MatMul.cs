// Shapes: a [batch.., M, K] ([batch.., K, M] transA), b [batch.., K, N] ([batch.., N, K] transB), bias [N], output [batch.., M, N].
using System.Numerics;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.InteropServices;
using Llm.Tensors;

namespace Llm.Cpu;

public sealed partial class CpuBackend
{
    public void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA = false, bool transB = false, bool accumulate = false)
    {
        var s = MatMulShapes.Of(a, b, bias, output, transA, transB, "output");
        foreach (var t in new[] { a, b, bias, output }) if (t is not null) CheckOwned(t);
        Dispatch(a, Definition<double>, Definition<float>, fast: null);   // the fast path is chosen per GEMM, in Gemm

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MatMulForward<T>(s, a, b, bias, output, accumulate);
    }

    public void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA = false, bool transB = false)
    {
        var s = MatMulShapes.Of(a, b, null, dOutput, transA, transB, "dOutput");
        MatMulShapes.CheckGradient(dA, a, "dA");
        MatMulShapes.CheckGradient(dB, b, "dB");
        s.CheckBiasGradient(dBias, a.DType, dOutput);
        foreach (var t in new[] { dOutput, a, b, dA, dB, dBias }) if (t is not null) CheckOwned(t);
        Dispatch(a, Definition<double>, Definition<float>, fast: null);

        void Definition<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
            MatMulBackward<T>(s, dOutput, a, b, dA, dB, dBias);
    }

    private void MatMulForward<T>(MatMulShapes s, Tensor a, Tensor b, Tensor? bias, Tensor output, bool accumulate)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (s.RowsCollapse)   // x [batch.., M, K] · W: one GEMM over batch·M rows (the Linear layer)
        {
            Gemm(s.Batch * s.M, s.N, s.K, Span<T>(a), s.ARow, s.ACol, Span<T>(b), s.BRow, s.BCol,
                 bias is null ? default : Span<T>(bias), Span<T>(output), accumulate, true);
            return;
        }
        ForEachBatch<T>(s, independent: true, (i, parallel) =>
            Gemm(s.M, s.N, s.K, Span<T>(a)[(i * s.ABatch)..], s.ARow, s.ACol, Span<T>(b)[(i * s.BBatch)..], s.BRow, s.BCol,
                 bias is null ? default : Span<T>(bias), Span<T>(output)[(i * s.M * s.N)..], accumulate, parallel));
    }

    // op(a)·op(b) = C ⇒ d op(a) = dC·op(b)ᵀ, d op(b) = op(a)ᵀ·dC; a transposed operand stores the transposed gradient,
    // computed directly as a product of strided views so that every gradient lands row-major in its own layout.
    private void MatMulBackward<T>(MatMulShapes s, Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int m = s.M, n = s.N, k = s.K, mn = m * n;
        if (dA is not null)
        {
            if (s.RowsCollapse)   // dA [batch·M, K] += dC [batch·M, N] · op(b)ᵀ
                Gemm(s.Batch * m, k, n, Span<T>(dOutput), n, 1, Span<T>(b), s.BCol, s.BRow, default, Span<T>(dA), true, true);
            else
                ForEachBatch<T>(s, independent: s.ABatch != 0, (i, parallel) =>
                {
                    Span<T> dC = Span<T>(dOutput)[(i * mn)..], bi = Span<T>(b)[(i * s.BBatch)..], dAi = Span<T>(dA)[(i * s.ABatch)..];
                    if (!s.TransA) Gemm(m, k, n, dC, n, 1, bi, s.BCol, s.BRow, default, dAi, true, parallel);   // [M, K] += dC·op(b)ᵀ
                    else Gemm(k, m, n, bi, s.BRow, s.BCol, dC, 1, n, default, dAi, true, parallel);            // [K, M] += op(b)·dCᵀ
                });
        }
        if (dB is not null)
        {
            if (s.RowsCollapse && !s.TransB)   // dB [K, N] += aᵀ [K, batch·M] · dC [batch·M, N]: the weight gradient
                Gemm(k, n, s.Batch * m, Span<T>(a), 1, k, Span<T>(dOutput), n, 1, default, Span<T>(dB), true, true);
            else if (s.RowsCollapse)           // dB [N, K] += dCᵀ [N, batch·M] · a [batch·M, K]
                Gemm(n, k, s.Batch * m, Span<T>(dOutput), 1, n, Span<T>(a), k, 1, default, Span<T>(dB), true, true);
            else
                ForEachBatch<T>(s, independent: s.BBatch != 0, (i, parallel) =>
                {
                    Span<T> dC = Span<T>(dOutput)[(i * mn)..], ai = Span<T>(a)[(i * s.ABatch)..], dBi = Span<T>(dB)[(i * s.BBatch)..];
                    if (!s.TransB) Gemm(k, n, m, ai, s.ACol, s.ARow, dC, n, 1, default, dBi, true, parallel);   // [K, N] += op(a)ᵀ·dC
                    else Gemm(n, k, m, dC, 1, n, ai, s.ARow, s.ACol, default, dBi, true, parallel);            // [N, K] += dCᵀ·op(a)
                });
        }
        if (dBias is not null)   // dBias[j] += Σ_rows dC[row, j]
        {
            Span<T> dC = Span<T>(dOutput), db = Span<T>(dBias);
            for (int row = 0; row < s.Batch * m; row++)
            {
                var r = dC.Slice(row * n, n);
                if (FastPaths && typeof(T) == typeof(float))
                    TensorPrimitives.Add(MemoryMarshal.Cast<T, float>(db), MemoryMarshal.Cast<T, float>(r), MemoryMarshal.Cast<T, float>(db));
                else for (int j = 0; j < n; j++) db[j] += r[j];
            }
        }
    }

    /// <summary>F32 with fast paths → <see cref="Llm.Cpu.MatMul.Fast"/>; everything else → the definition.</summary>
    private void Gemm<T>(int m, int n, int k, ReadOnlySpan<T> a, int aRow, int aCol, ReadOnlySpan<T> b, int bRow, int bCol,
        ReadOnlySpan<T> bias, Span<T> output, bool accumulate, bool parallel) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (FastPaths && typeof(T) == typeof(float))
            Llm.Cpu.MatMul.Fast(m, n, k, MemoryMarshal.Cast<T, float>(a), aRow, aCol, MemoryMarshal.Cast<T, float>(b), bRow, bCol,
                MemoryMarshal.Cast<T, float>(bias), MemoryMarshal.Cast<T, float>(output), accumulate, parallel);
        else
            Llm.Cpu.MatMul.Definition(m, n, k, a, aRow, aCol, b, bRow, bCol, bias, output, accumulate);
    }

    /// <summary>Runs body(batchIndex, parallelInside) for every batch. Batches that write disjoint outputs and are
    /// small run in parallel with single-threaded GEMMs (attention heads); otherwise in order, each GEMM parallel.</summary>
    private void ForEachBatch<T>(MatMulShapes s, bool independent, Action<int, bool> body)
    {
        bool acrossBatches = FastPaths && typeof(T) == typeof(float) && independent && s.Batch > 1 && (long)s.M * s.N * s.K < 1L << 21;
        if (acrossBatches) Parallel.For(0, s.Batch, i => body(i, false));
        else for (int i = 0; i < s.Batch; i++) body(i, true);
    }
}
