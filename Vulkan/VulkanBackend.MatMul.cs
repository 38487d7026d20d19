// Shapes: a [batch.., M, K] ([batch.., K, M] transA), b [batch.., K, N] ([batch.., N, K] transB), bias [N], output [batch.., M, N].
using Llm.Cpu;
using Llm.Tensors;

namespace Llm.Vulkan;

/// <summary>
/// MatMul and its backward on one tiled GEMM shader (Shaders/matmul.comp) that reads both operands through strides,
/// exactly as <see cref="Llm.Cpu.MatMul.Definition{T}"/> does: every transpose, batch layout and gradient of
/// <see cref="CpuBackend.MatMul"/> becomes one <see cref="Gemm"/> call with other strides. dBias is a column sum
/// (Shaders/matmul_back.comp). Tile sizes are specialization constants chosen from the device (<see cref="MatMulTiles"/>).
/// </summary>
public sealed partial class VulkanBackend
{
    /// <summary>A BM×BN output tile per workgroup, K in BK slices, a TM×TN register tile per invocation.</summary>
    public readonly record struct MatMulTile(uint BM, uint BN, uint BK, uint TM, uint TN)
    {
        public uint Invocations => BM / TM * (BN / TN);
        public uint SharedBytes => 4 * BK * (BM + BN);
        /// <summary>matmul.comp stages a slice in whole rounds of the workgroup and splits a tile evenly.</summary>
        public bool Valid => BM % TM == 0 && BN % TN == 0 && BM * BK % Invocations == 0 && BK * BN % Invocations == 0;
        public override string ToString() => $"{BM}×{BN}×{BK} tiles, {TM}×{TN} per invocation, {Invocations} invocations";
    }

    /// <summary>The GEMM tiling of this device: 64×64×16 with 4×4 per invocation (256 invocations, 8 KiB shared), or
    /// with 8×8 (64 invocations) where the driver prefers few wide invocations (<see cref="DeviceQuirks.FewWideInvocations"/>:
    /// lavapipe, ≈ 4 GFLOP/s there against 2.4 for 32×32×16 with 4×4); smaller where the limits demand.</summary>
    public MatMulTile MatMulTiles => matMulTiles ??= ChooseMatMulTiles(Info, Limits.FewWideInvocations);
    private MatMulTile? matMulTiles;

    internal static MatMulTile ChooseMatMulTiles(DeviceInfo info, bool fewWideInvocations)
    {
        MatMulTile[] candidates = fewWideInvocations
            ? [new(64, 64, 16, 8, 8), new(32, 32, 16, 4, 4), new(16, 16, 16, 2, 2)]
            : [new(64, 64, 16, 4, 4), new(32, 32, 16, 4, 4), new(16, 16, 16, 2, 2)];
        foreach (var t in candidates)
            if (t.Valid && t.Invocations <= info.MaxComputeWorkGroupInvocations && t.Invocations <= info.MaxComputeWorkGroupSize[0] &&
                t.SharedBytes <= info.MaxComputeSharedMemorySize)
                return t;
        throw new NotSupportedException($"matmul: no tiling fits '{info.Name}' (invocations ≤ {info.MaxComputeWorkGroupInvocations}, shared memory {info.MaxComputeSharedMemorySize} B)");
    }

    /// <summary>matmul.comp's push constants after the binding offsets; see the shader for their meaning.</summary>
    private readonly record struct GemmPush(uint M, uint N, uint K, uint OutRow, uint AOrigin, uint BOrigin, uint OutOrigin,
        uint ARow, uint ACol, uint BRow, uint BCol, uint AZ, uint BZ, uint OutZ, uint AR, uint BR, uint Flags, uint StepBegin, uint StepEnd, uint TileN0, uint TileM0, uint Z0);

    /// <summary>Most K-slice steps (of BK) one matmul dispatch runs within the loop budget (lavapipe: 2048 of its 65535,
    /// as before; the tile loops inside a step have constant bounds): longer reductions are split into dispatches that
    /// accumulate in order (deterministic; the sum is the same up to f32 rounding).</summary>
    private int StepsPerDispatch => Limits.UnitsWithinBudget(24);

    /// <summary>An operand of <see cref="Gemm"/>: op(x)(i, p) = x[z·ZStride + r·RStride + i·Row + p·Col].</summary>
    private readonly record struct Operand(Tensor Tensor, int Row, int Col, int ZStride = 0, int RStride = 0);

    public void MatMul(Tensor a, Tensor b, Tensor? bias, Tensor output, bool transA = false, bool transB = false, bool accumulate = false)
    {
        var s = MatMulShapes.Of(a, b, bias, output, transA, transB, "output");
        RequireF32("matmul", a, b, output);
        if (bias is not null) RequireF32("matmul", bias);
        if (s.RowsCollapse)   // x [batch.., M, K] · W: one GEMM over batch·M rows (the Linear layer)
            Gemm(s.Batch * s.M, s.N, s.K, new(a, s.ARow, s.ACol), new(b, s.BRow, s.BCol), bias, output, accumulate);
        else
            Gemm(s.M, s.N, s.K, new(a, s.ARow, s.ACol, ZStride: s.ABatch), new(b, s.BRow, s.BCol, ZStride: s.BBatch),
                 bias, output, accumulate, batches: s.Batch);
    }

    // op(a)·op(b) = C ⇒ d op(a) = dC·op(b)ᵀ, d op(b) = op(a)ᵀ·dC; a transposed operand stores the transposed gradient,
    // computed directly as a product of strided views so that every gradient lands row-major in its own layout.
    // A shared (rank-2) operand's gradient sums over the batches: rows flattened into K when they are contiguous,
    // else the shader's steps over R batches (reduced into one output, in order: deterministic).
    public void MatMulBackward(Tensor dOutput, Tensor a, Tensor b, Tensor? dA, Tensor? dB, Tensor? dBias, bool transA = false, bool transB = false)
    {
        var s = MatMulShapes.Of(a, b, null, dOutput, transA, transB, "dOutput");
        MatMulShapes.CheckGradient(dA, a, "dA");
        MatMulShapes.CheckGradient(dB, b, "dB");
        s.CheckBiasGradient(dBias, a.DType, dOutput);
        RequireF32("matmul backward", dOutput, a, b);
        int m = s.M, n = s.N, k = s.K, mn = m * n, rows = s.Batch * m;
        if (dA is not null)
        {
            // Per batch: dA [M, K] += dC · op(b)ᵀ, or dA [K, M] += op(b) · dCᵀ when transA; summed over batches when a is shared.
            bool shared = s.ABatch == 0;
            int batches = shared ? 1 : s.Batch, reduced = shared ? s.Batch : 1;
            Operand Batched(Tensor t, int row, int col, int batch) => shared ? new(t, row, col, RStride: batch) : new(t, row, col, ZStride: batch);
            if (s.RowsCollapse)   // dA [batch·M, K] += dC [batch·M, N] · op(b)ᵀ
                Gemm(rows, k, n, new(dOutput, n, 1), new(b, s.BCol, s.BRow), null, dA, true);
            else if (!s.TransA)
                Gemm(m, k, n, Batched(dOutput, n, 1, mn), Batched(b, s.BCol, s.BRow, s.BBatch), null, dA, true, batches, reduced);
            else
                Gemm(k, m, n, Batched(b, s.BRow, s.BCol, s.BBatch), Batched(dOutput, 1, n, mn), null, dA, true, batches, reduced);
        }
        if (dB is not null)
        {
            bool shared = s.BBatch == 0;
            int batches = shared ? 1 : s.Batch, reduced = shared ? s.Batch : 1;
            Operand Batched(Tensor t, int row, int col, int batch) => shared ? new(t, row, col, RStride: batch) : new(t, row, col, ZStride: batch);
            if (s.RowsCollapse && !s.TransB)   // dB [K, N] += aᵀ [K, batch·M] · dC [batch·M, N]: the weight gradient
                Gemm(k, n, rows, new(a, 1, k), new(dOutput, n, 1), null, dB, true);
            else if (s.RowsCollapse)           // dB [N, K] += dCᵀ [N, batch·M] · a [batch·M, K]
                Gemm(n, k, rows, new(dOutput, 1, n), new(a, k, 1), null, dB, true);
            else if (!s.TransB)                // per batch: dB [K, N] += op(a)ᵀ · dC
                Gemm(k, n, m, Batched(a, s.ACol, s.ARow, s.ABatch), Batched(dOutput, n, 1, mn), null, dB, true, batches, reduced);
            else                               // per batch: dB [N, K] += dCᵀ · op(a)
                Gemm(n, k, m, Batched(dOutput, 1, n, mn), Batched(a, s.ARow, s.ACol, s.ABatch), null, dB, true, batches, reduced);
        }
        if (dBias is not null) ColumnSum(dOutput, rows, n, dBias);   // dBias[j] += Σ_rows dC[row, j]
    }

    /// <summary>
    /// output[z] (+)= Σ_{r &lt; reduced} op(a)[z, r] · op(b)[z, r] + bias for z &lt; batches; output row-major [batches, m, n].
    /// One workgroup per output tile (x: N tiles, y: M tiles, z: batches). <see cref="GemmRegion"/> splits the output
    /// where the grid passes the device's group-count limit or an operand passes maxStorageBufferRange (the tied LM
    /// head's [50257, 768] weight is 147 MiB; lavapipe binds at most 128 MiB).
    /// </summary>
    private void Gemm(int m, int n, int k, Operand a, Operand b, Tensor? bias, Tensor output, bool accumulate, int batches = 1, int reduced = 1)
    {
        if (m > 0 && n > 0 && batches > 0)
            GemmRegion(new GemmProblem(m, n, k, a, b, bias, output, accumulate, batches, reduced), 0, batches, 0, m, 0, n);
    }

    private sealed record GemmProblem(int M, int N, int K, Operand A, Operand B, Tensor? Bias, Tensor Output, bool Accumulate, int Batches, int Reduced);

    /// <summary>Elements [lo, hi] of an operand that rows/columns [i0, i1) (stride iStride) of batches [z0, z1) read in
    /// steps [s0, s1) (K slices of BK; one batch r's slice range, or whole batches r0..r1 when the range crosses one).</summary>
    private static (long Lo, long Hi) Reach(Operand x, long iStride, long pStride, int k, uint bk, long z0, long z1, long i0, long i1, long s0, long s1)
    {
        long slices = Math.Max((k + bk - 1) / bk, 1), r0 = s0 / slices, r1 = (s1 - 1) / slices;
        long k0 = r0 == r1 ? s0 % slices * bk : 0, k1 = r0 == r1 ? Math.Min(k, ((s1 - 1) % slices + 1) * bk) : k;
        return (z0 * x.ZStride + r0 * x.RStride + i0 * iStride + k0 * pStride,
                (z1 - 1) * x.ZStride + r1 * x.RStride + (i1 - 1) * iStride + Math.Max(k1 - 1, k0) * pStride);
    }

    /// <summary>Output batches [z0, z1), rows [m0, m1), columns [n0, n1) (m0, n0 on tile boundaries): halved until the
    /// grid, the output range and the operands' ranges for one K step fit, then dispatched in step ranges of at most
    /// <see cref="StepsPerDispatch"/>, shortened further where an operand's range for them would not fit.</summary>
    private void GemmRegion(GemmProblem g, int z0, int z1, int m0, int m1, int n0, int n1)
    {
        var tile = MatMulTiles;
        int tilesM = (m1 - m0 + (int)tile.BM - 1) / (int)tile.BM, tilesN = (n1 - n0 + (int)tile.BN - 1) / (int)tile.BN;
        var limits = Info.MaxComputeWorkGroupCount;
        // Dispatch binds from the alignment boundary at or below a range's first byte: leave room for that.
        long room = (long)Limits.TensorBytes / 4;
        long steps = (long)g.Reduced * ((g.K + tile.BK - 1) / tile.BK);
        (long Lo, long Hi) ReachA(long s0, long s1) => Reach(g.A, g.A.Row, g.A.Col, g.K, tile.BK, z0, z1, m0, m1, s0, s1);
        (long Lo, long Hi) ReachB(long s0, long s1) => Reach(g.B, g.B.Col, g.B.Row, g.K, tile.BK, z0, z1, n0, n1, s0, s1);
        bool Fits((long Lo, long Hi) r) => r.Hi - r.Lo < room;
        long outLo = (long)z0 * g.M * g.N + (long)m0 * g.N + n0, outHi = (z1 - 1L) * g.M * g.N + (m1 - 1L) * g.N + n1 - 1;
        bool aFits = steps == 0 || Fits(ReachA(0, 1)), bFits = steps == 0 || Fits(ReachB(0, 1)), outFits = outHi - outLo < room;
        if (z1 - z0 > Math.Min(limits[2], 65535u) || (!(aFits && bFits && outFits) && z1 - z0 > 1))
        {
            int half = z0 + (z1 - z0) / 2;
            GemmRegion(g, z0, half, m0, m1, n0, n1);
            GemmRegion(g, half, z1, m0, m1, n0, n1);
        }
        else if (tilesM > Math.Min(limits[1], 65535u) || ((!aFits || !outFits) && tilesM > 1))
        {
            int half = m0 + tilesM / 2 * (int)tile.BM;
            GemmRegion(g, z0, z1, m0, half, n0, n1);
            GemmRegion(g, z0, z1, half, m1, n0, n1);
        }
        else if (tilesN > Math.Min(limits[0], 65535u) || ((!bFits || !outFits) && tilesN > 1))
        {
            int half = n0 + tilesN / 2 * (int)tile.BN;
            GemmRegion(g, z0, z1, m0, m1, n0, half);
            GemmRegion(g, z0, z1, m0, m1, half, n1);
        }
        else if (!(aFits && bFits && outFits))
            throw new ArgumentException($"matmul: one {tile.BM}×{tile.BN}×{tile.BK} tile of {g.Output.Describe()} reads more than " +
                $"one binding ({Limits.BindingRange} B on '{Info.Name}') from {(aFits ? bFits ? g.Output : g.B.Tensor : g.A.Tensor).Describe()}");
        else
        {
            Tensor output = g.Output.Slice((int)outLo, [(int)(outHi - outLo + 1)]);
            ReadOnlySpan<uint> specialization = [tile.Invocations, 1, 1, tile.BM, tile.BN, tile.BK, tile.TM, tile.TN];
            long s0 = 0, s1;
            do   // once even when K = 0 (no steps): output = bias, or unchanged when accumulating
            {
                s1 = Math.Min(s0 + StepsPerDispatch, steps);
                while (s1 - s0 > 1 && !(Fits(ReachA(s0, s1)) && Fits(ReachB(s0, s1)))) s1 = s0 + (s1 - s0) / 2;
                // Nothing is read when there are no steps (K = 0): the operands are bound whole.
                var (aLo, aHi) = steps == 0 ? (0, -1) : ReachA(s0, s1);
                var (bLo, bHi) = steps == 0 ? (0, -1) : ReachB(s0, s1);
                Tensor a = steps == 0 ? g.A.Tensor : g.A.Tensor.Slice((int)aLo, [(int)(aHi - aLo + 1)]);
                Tensor b = steps == 0 ? g.B.Tensor : g.B.Tensor.Slice((int)bLo, [(int)(bHi - bLo + 1)]);
                bool first = s0 == 0;   // later step ranges add onto what the first wrote
                var push = new GemmPush((uint)m1, (uint)n1, (uint)g.K, (uint)g.N, (uint)aLo, (uint)bLo, (uint)outLo,
                    (uint)g.A.Row, (uint)g.A.Col, (uint)g.B.Row, (uint)g.B.Col,
                    (uint)g.A.ZStride, (uint)g.B.ZStride, (uint)(g.M * g.N), (uint)g.A.RStride, (uint)g.B.RStride,
                    (first && g.Bias is not null ? 1u : 0u) | (!first || g.Accumulate ? 2u : 0u),
                    (uint)s0, (uint)s1, (uint)n0 / tile.BN, (uint)m0 / tile.BM, (uint)z0);
                Dispatch("matmul", (uint)tilesN, (uint)tilesM, (uint)(z1 - z0), push,
                    reads: [a, b, g.Bias ?? a], writes: [output], specialization: specialization);
                s0 = s1;
            } while (s0 < steps);
        }
    }
}
