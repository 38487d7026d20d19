// Shapes: op(a) [M, K], op(b) [K, N], bias [N], output [M, N] row-major; MR×NR micro-tile, MC×KC A block, KC×NC B block.
using System.Buffers;
using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Llm.Cpu;

/// <summary>
/// General matrix multiply on strided operands: output = (accumulate ? output : 0) + op(a)·op(b) + bias.
/// An operand is described by a span and two strides: op(a)(i, p) = a[i·aRowStride + p·aColStride], so a transposed
/// matrix is the same memory with its strides swapped; that is how every transpose combination, batch and gradient
/// of <see cref="CpuBackend.MatMul"/> reaches one kernel. <see cref="Definition{T}"/> is the definition;
/// <see cref="Fast"/> computes the same sums (in another order, so F32 results differ by rounding only).
/// </summary>
public static unsafe class MatMul
{
    /// <summary>
    /// The definition: output[i, j] = (accumulate ? output[i, j] : 0) + Σ_p op(a)(i, p) · op(b)(p, j) + bias[j].
    /// Generic so the same code runs in double for finite-difference checks. bias may be empty (no bias).
    /// </summary>
    public static void Definition<T>(int m, int n, int k, ReadOnlySpan<T> a, int aRowStride, int aColStride,
        ReadOnlySpan<T> b, int bRowStride, int bColStride, ReadOnlySpan<T> bias, Span<T> output, bool accumulate)
        where T : IFloatingPointIeee754<T>
    {
        Validate(m, n, k, a.Length, aRowStride, aColStride, b.Length, bRowStride, bColStride, bias.Length, output.Length);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                T sum = T.Zero;
                for (int p = 0; p < k; p++)
                    sum += a[i * aRowStride + p * aColStride] * b[p * bRowStride + j * bColStride];
                if (!bias.IsEmpty) sum += bias[j];
                output[i * n + j] = accumulate ? output[i * n + j] + sum : sum;
            }
    }

    /// <summary>
    /// Equivalent to <see cref="Definition{T}"/> for float: a packed, cache-blocked GEMM (Goto &amp; van de Geijn 2008,
    /// the BLIS loop nest) with an FMA register micro-kernel (Vector512 where accelerated, else Vector256 + FMA, else
    /// scalar), split across cores when <paramref name="parallel"/> and the product is large enough (<see cref="Shared"/>).
    /// </summary>
    public static void Fast(int m, int n, int k, ReadOnlySpan<float> a, int aRowStride, int aColStride,
        ReadOnlySpan<float> b, int bRowStride, int bColStride, ReadOnlySpan<float> bias, Span<float> output,
        bool accumulate, bool parallel = true)
    {
        Validate(m, n, k, a.Length, aRowStride, aColStride, b.Length, bRowStride, bColStride, bias.Length, output.Length);
        if (m == 0 || n == 0) return;
        fixed (float* pa = a, pb = b, pbias = bias, pc = output)
        {
            var job = new Job(new Operand(pa, aRowStride, aColStride), new Operand(pb, bRowStride, bColStride),
                bias.IsEmpty ? null : pbias, pc, n, accumulate);
            if (m <= GemvRows && k > 0 && (bRowStride == 1 || bColStride == 1)) { Gemv(m, n, k, job, parallel); return; }
            if (parallel && Environment.ProcessorCount > 1 && (long)m * n * k >= ParallelThreshold) Shared(m, n, k, job);
            else Blocked(m, n, k, job);
        }
    }

    /// <summary>Best-of-<paramref name="repeats"/> GFLOP/s (2·M·N·K flops per call) of <see cref="Fast"/> or of the
    /// float <see cref="Definition{T}"/> on random operands; for the bench command.</summary>
    public static double Benchmark(int m, int n, int k, bool fast, int repeats = 3, bool transA = false, bool transB = false)
    {
        var rng = new Random(1234);
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = (float)rng.NextDouble() - 0.5f;
        for (int i = 0; i < b.Length; i++) b[i] = (float)rng.NextDouble() - 0.5f;
        (int ars, int acs) = transA ? (1, m) : (k, 1);   // a stored [K, M] when transA
        (int brs, int bcs) = transB ? (1, k) : (n, 1);   // b stored [N, K] when transB
        double best = double.MaxValue;
        for (int r = 0; r < repeats + (fast ? 1 : 0); r++)   // the fast path gets one untimed warm-up (JIT, buffers)
        {
            long start = Stopwatch.GetTimestamp();
            if (fast) Fast(m, n, k, a, ars, acs, b, brs, bcs, default, c, false);
            else Definition<float>(m, n, k, a, ars, acs, b, brs, bcs, default, c, false);
            double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (!fast || r > 0) best = Math.Min(best, seconds);
        }
        return 2.0 * m * n * k / best / 1e9;
    }

    // ---- blocking ---------------------------------------------------------------------------------------------------
    // Loop nest (BLIS): jc over NC columns → pc over KC depth: pack op(b) block KC×NC (stays in L3) → ic over MC rows:
    // pack op(a) block MC×KC (stays in L2) → jr over NR: a KC×NR b-panel (stays in L1) → ir over MR: micro-kernel
    // C[MR×NR] += Apanel[MR×KC]·Bpanel[KC×NR] with MR·NR/vector accumulators held in registers for all KC steps.

    // Hot loops carry [AggressiveOptimization]: fully optimized from the first call (no tier-0 code, no OSR).
    private const int MR = 6;                 // rows of a micro-tile: MR broadcasts of a per k step
    private static int NR => Vector512.IsHardwareAccelerated ? 32 : 16;   // columns: two vectors (JIT-time constant)
    private const int KC = 256, MC = 144, NC = 3072, NRMax = 32;
    private const long ParallelThreshold = 1L << 18;   // below ~2.6e5 multiply-adds a thread hand-off costs more than it saves
    private const int MCShared = 48;                   // rows of a parallel item: 8 micro-tiles
    private const int MinPanelsPerItem = 8;            // a column split leaves ≥ 8 b-panels per item, so a re-pack of a is ≤ 1/(2·8·NR) of its flops

    private readonly struct Operand(float* p, int rowStride, int colStride)
    {
        public readonly float* P = p;
        public readonly int RowStride = rowStride, ColStride = colStride;
        public float* At(int row, int col) => P + (long)row * RowStride + (long)col * ColStride;
        public Operand Offset(int row, int col) => new(At(row, col), RowStride, ColStride);
    }

    /// <summary>One (sub)problem: output[i, j] (+)= Σ a(i, p) b(p, j) + bias[j], output row stride ldc.</summary>
    private readonly struct Job(Operand a, Operand b, float* bias, float* c, int ldc, bool accumulate)
    {
        public readonly Operand A = a, B = b;
        public readonly float* Bias = bias, C = c;
        public readonly int Ldc = ldc;
        public readonly bool Accumulate = accumulate;
        public Job Rows(int i0) => new(A.Offset(i0, 0), B, Bias, C + (long)i0 * Ldc, Ldc, Accumulate);
        public Job Columns(int j0) => new(A, B.Offset(0, j0), Bias == null ? null : Bias + j0, C + j0, Ldc, Accumulate);
    }

    // A few rows (decoding one token: M = batch): packing op(b) would read and write the whole weight for M·N·K flops,
    // so op(b) is streamed once, unpacked, instead: dot products against its rows when it is transposed (W [N, K], every
    // Linear and the tied head), row updates c += a(i, p)·b(p, :) when it is row-major. Memory-bound either way.
    private const int GemvRows = 4;
    private const int GemvColumns = 256;   // columns per work item of the row-update form (the item's c stays in L1)

    /// <summary>M ≤ <see cref="GemvRows"/>: each output element is summed by one thread in one fixed order (the same
    /// bits whatever the thread count), across cores in column blocks when <paramref name="parallel"/> and large enough.</summary>
    private static void Gemv(int m, int n, int k, Job job, bool parallel)
    {
        // op(a)'s rows made contiguous: k floats each, small (M ≤ 4 rows)
        float[] rows = ArrayPool<float>.Shared.Rent(m * k);
        try
        {
            for (int i = 0; i < m; i++)
                for (int p = 0; p < k; p++) rows[i * k + p] = *job.A.At(i, p);
            fixed (float* a = rows)
            {
                nint address = (nint)a;
                bool dots = job.B.RowStride == 1;   // b(p, j) = B[j·ColStride + p]: column j of op(b) is contiguous
                int block = dots ? Math.Max(16, (int)Math.Min(n, 16384L * 16 / Math.Max(1, k))) : GemvColumns;
                int items = (n + block - 1) / block;
                void Item(int item)
                {
                    float* ap = (float*)address;
                    int j0 = item * block, cols = Math.Min(block, n - j0);
                    Start(job, 0, m, j0, cols);
                    if (dots)
                        for (int j = j0; j < j0 + cols; j++)
                        {
                            var w = new ReadOnlySpan<float>(job.B.At(0, j), k);
                            for (int i = 0; i < m; i++) job.C[(long)i * job.Ldc + j] += TensorPrimitives.Dot(new ReadOnlySpan<float>(ap + i * k, k), w);
                        }
                    else
                        for (int i = 0; i < m; i++)
                        {
                            var c = new Span<float>(job.C + (long)i * job.Ldc + j0, cols);
                            for (int p = 0; p < k; p++) TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(job.B.At(p, j0), cols), ap[i * k + p], c, c);
                        }
                }
                if (parallel && items > 1 && Environment.ProcessorCount > 1 && (long)m * n * k >= ParallelThreshold)
                    Parallel.For(0, items, Item);
                else
                    for (int item = 0; item < items; item++) Item(item);
            }
        }
        finally { ArrayPool<float>.Shared.Return(rows); }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Blocked(int m, int n, int k, Job job)
    {
        float* packA = PackBuffers(out float* packB);
        for (int jc = 0; jc < n; jc += NC)
        {
            int nc = Math.Min(NC, n - jc);
            // Start this column block here, not all of C up front, so the M×NC block is still in cache for the kernels.
            Start(job, 0, m, jc, nc);
            for (int pc = 0; pc < k; pc += KC)
            {
                int kc = Math.Min(KC, k - pc);
                PackB(kc, nc, job.B.Offset(pc, jc), packB);
                for (int ic = 0; ic < m; ic += MC)
                {
                    int mc = Math.Min(MC, m - ic);
                    PackA(mc, kc, job.A.Offset(ic, pc), packA);
                    Tiles(mc, nc, kc, packA, packB, job.C + (long)ic * job.Ldc + jc, job.Ldc);
                }
            }
        }
    }

    /// <summary>
    /// <see cref="Blocked"/>'s loop nest on every core, with each KC×NC block of op(b) packed once for all of them:
    /// the cores pack its panels, then take items of C (MCShared rows × a span of panels) in any order.
    /// Each element of C is still summed by one thread, block after block in k order, by the same kernel, so the result
    /// is the same bits as <see cref="Blocked"/>'s whatever the thread count, the item sizes or the order the items were
    /// taken in. Short row blocks make several items per core for skinny shapes (M = B·T = 256 rows in training) and let
    /// a core slowed down by other load take fewer; columns are split only when there are too few row blocks, since each
    /// column span packs its row block of op(a) again.
    /// </summary>
    private static void Shared(int m, int n, int k, Job job)
    {
        int nrFull = NR, blocks = (m + MCShared - 1) / MCShared;
        int ncMax = Math.Min(NC, (n + nrFull - 1) / nrFull * nrFull), panelsMax = (ncMax + nrFull - 1) / nrFull;
        int split = Math.Clamp((2 * Environment.ProcessorCount + blocks - 1) / blocks, 1, Math.Max(1, panelsMax / MinPanelsPerItem));
        int span = (panelsMax + split - 1) / split * nrFull;
        float[] buffer = ArrayPool<float>.Shared.Rent(KC * ncMax + 16);
        try
        {
            fixed (float* raw = buffer)
            {
                nint packB = ((nint)raw + 63) & ~(nint)63;
                for (int jc = 0; jc < n; jc += NC)
                {
                    int nc = Math.Min(NC, n - jc), groups = (nc + span - 1) / span;
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc), jc0 = jc, pc0 = pc;
                        int packSpan = MinPanelsPerItem * nrFull;
                        Parallel.For(0, (nc + packSpan - 1) / packSpan, g =>
                            PackB(kc, Math.Min(packSpan, nc - g * packSpan), job.B.Offset(pc0, jc0 + g * packSpan), (float*)packB + g * packSpan * kc));
                        Parallel.For(0, blocks * groups, item =>
                        {
                            int ic = item / groups * MCShared, j0 = item % groups * span;
                            int mc = Math.Min(MCShared, m - ic), cols = Math.Min(span, nc - j0);
                            if (pc0 == 0) Start(job, ic, mc, jc0 + j0, cols);
                            float* packA = PackBuffers(out _);
                            PackA(mc, kc, job.A.Offset(ic, pc0), packA);
                            Tiles(mc, cols, kc, packA, (float*)packB + j0 * kc, job.C + (long)ic * job.Ldc + jc0 + j0, job.Ldc);
                        });
                    }
                }
            }
        }
        finally { ArrayPool<float>.Shared.Return(buffer); }
    }

    /// <summary>C rows [i0, i0 + rows) × columns [j0, j0 + cols) ← (accumulate ? C : 0) + bias: the kernels then only add.</summary>
    private static void Start(Job job, int i0, int rows, int j0, int cols)
    {
        for (int i = i0; i < i0 + rows; i++)
        {
            var row = new Span<float>(job.C + (long)i * job.Ldc + j0, cols);
            var bias = job.Bias == null ? default : new ReadOnlySpan<float>(job.Bias + j0, cols);
            if (!job.Accumulate) { if (job.Bias != null) bias.CopyTo(row); else row.Clear(); }
            else if (job.Bias != null) TensorPrimitives.Add(row, bias, row);
        }
    }

    /// <summary>c[mc, nc] += packA (mc×kc) · packB (kc×nc), micro-tile by micro-tile: jr over b-panels (each stays in L1
    /// while ir runs the a-panels past it); partial tiles at the right/bottom edges go through a zeroed scratch tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tiles(int mc, int nc, int kc, float* packA, float* packB, float* c, int ldc)
    {
        float* edge = stackalloc float[MR * NRMax];   // [MR, NR]
        int nrFull = NR;
        for (int jr = 0; jr < nc; jr += nrFull)
        {
            int nr = Math.Min(nrFull, nc - jr);
            for (int ir = 0; ir < mc; ir += MR)
            {
                int mr = Math.Min(MR, mc - ir);
                float* ct = c + (long)ir * ldc + jr;
                if (mr == MR && nr == nrFull) { Kernel(kc, packA + ir * kc, packB + jr * kc, ct, ldc); continue; }
                new Span<float>(edge, MR * nrFull).Clear();
                Kernel(kc, packA + ir * kc, packB + jr * kc, edge, nrFull);
                for (int i = 0; i < mr; i++)
                    for (int j = 0; j < nr; j++) ct[(long)i * ldc + j] += edge[i * nrFull + j];
            }
        }
    }

    /// <summary>packA[panel][p][i] = a(panel·MR + i, p): MR-row panels, k-major; rows past mc are 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackA(int mc, int kc, Operand a, float* dst)
    {
        for (int i0 = 0; i0 < mc; i0 += MR, dst += kc * MR)
        {
            int mr = Math.Min(MR, mc - i0);
            if (a.RowStride == 1 && mr == MR)
            {
                // Transposed a: the MR rows at column p are contiguous, one short copy per k step.
                for (int p = 0; p < kc; p++) Buffer.MemoryCopy(a.At(i0, p), dst + p * MR, MR * sizeof(float), MR * sizeof(float));
                continue;
            }
            if (Avx2.IsSupported && a.ColStride == 1 && mr == MR && a.RowStride <= int.MaxValue / MR)
            {
                // Row-major a: one masked gather per k step takes column p of the MR rows (row i lies i·RowStride on);
                // the strided scalar stores below cost ~10% of a 2048³ product.
                var rows = Vector256.CreateSequence(0, a.RowStride);
                var mask = Vector256.LessThan(Vector256.CreateSequence(0, 1), Vector256.Create(MR)).AsSingle();
                float* src = a.At(i0, 0);
                for (int p = 0; p < kc; p++)
                {
                    // Rows are short streams (kc floats) that the hardware prefetcher barely sees: fetch the next panel's.
                    if ((p & 15) == 0 && i0 + 2 * MR <= mc)
                        for (int i = MR; i < 2 * MR; i++) Sse.Prefetch0(src + (long)i * a.RowStride + p);
                    Avx.MaskStore(dst + p * MR, mask, Avx2.GatherMaskVector256(Vector256<float>.Zero, src + p, rows, mask, 4));
                }
                continue;
            }
            for (int i = 0; i < MR; i++)
            {
                if (i >= mr) { for (int p = 0; p < kc; p++) dst[p * MR + i] = 0; continue; }
                float* src = a.At(i0 + i, 0);
                int cs = a.ColStride;
                for (int p = 0; p < kc; p++) dst[p * MR + i] = src[(long)p * cs];
            }
        }
    }

    /// <summary>packB[panel][p][j] = b(p, panel·NR + j): NR-column panels, k-major; columns past nc are 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackB(int kc, int nc, Operand b, float* dst)
    {
        int nrFull = NR;
        for (int j0 = 0; j0 < nc; j0 += nrFull, dst += kc * nrFull)
        {
            int nr = Math.Min(nrFull, nc - j0);
            if (b.ColStride == 1 && nr == nrFull)
            {
                // Rows are contiguous: one NR-float copy per k step.
                for (int p = 0; p < kc; p++)
                    Buffer.MemoryCopy(b.At(p, j0), dst + p * nrFull, nrFull * sizeof(float), nrFull * sizeof(float));
                continue;
            }
            if (Avx2.IsSupported && b.RowStride == 1 && nr == nrFull && b.ColStride <= int.MaxValue / 32)
            {
                // Transposed b: each k step gathers 8 columns at a time (column j lies j·ColStride further on).
                var columns = Vector256.CreateSequence(0, b.ColStride);
                for (int p = 0; p < kc; p++)
                    for (int j = 0; j < nrFull; j += 8)
                        Avx2.GatherVector256(b.At(p, j0 + j), columns, 4).Store(dst + p * nrFull + j);
                continue;
            }
            // Columns (transposed b) or the ragged last panel: walk each column down k, writing with stride NR.
            for (int j = 0; j < nrFull; j++)
            {
                if (j >= nr) { for (int p = 0; p < kc; p++) dst[p * nrFull + j] = 0; continue; }
                float* src = b.At(0, j0 + j);
                int rs = b.RowStride;
                for (int p = 0; p < kc; p++) dst[p * nrFull + j] = src[(long)p * rs];
            }
        }
    }

    /// <summary>c[i, j] += Σ_p a[p][i] · b[p][j] for a full MR×NR tile of packed panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kernel(int kc, float* a, float* b, float* c, int ldc)
    {
        if (Vector512.IsHardwareAccelerated) Kernel512(kc, a, b, c, ldc);
        else if (Vector256.IsHardwareAccelerated && Fma.IsSupported) Kernel256(kc, a, b, c, ldc);
        else KernelScalar(kc, a, b, c, ldc);
    }

    // 6×32 tile: 12 zmm accumulators; per k step 2 loads of b, 6 broadcasts of a, 12 FMAs.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512(int kc, float* a, float* b, float* c, int ldc)
    {
        for (int i = 0; i < MR; i++) { Sse.Prefetch0(c + i * ldc); Sse.Prefetch0(c + i * ldc + 16); }
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 32)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var ai = Vector512.Create(a[0]); c00 = Vector512.FusedMultiplyAdd(ai, b0, c00); c01 = Vector512.FusedMultiplyAdd(ai, b1, c01);
            ai = Vector512.Create(a[1]); c10 = Vector512.FusedMultiplyAdd(ai, b0, c10); c11 = Vector512.FusedMultiplyAdd(ai, b1, c11);
            ai = Vector512.Create(a[2]); c20 = Vector512.FusedMultiplyAdd(ai, b0, c20); c21 = Vector512.FusedMultiplyAdd(ai, b1, c21);
            ai = Vector512.Create(a[3]); c30 = Vector512.FusedMultiplyAdd(ai, b0, c30); c31 = Vector512.FusedMultiplyAdd(ai, b1, c31);
            ai = Vector512.Create(a[4]); c40 = Vector512.FusedMultiplyAdd(ai, b0, c40); c41 = Vector512.FusedMultiplyAdd(ai, b1, c41);
            ai = Vector512.Create(a[5]); c50 = Vector512.FusedMultiplyAdd(ai, b0, c50); c51 = Vector512.FusedMultiplyAdd(ai, b1, c51);
        }
        AddRow512(c, c00, c01); AddRow512(c + ldc, c10, c11); AddRow512(c + 2 * ldc, c20, c21);
        AddRow512(c + 3 * ldc, c30, c31); AddRow512(c + 4 * ldc, c40, c41); AddRow512(c + 5 * ldc, c50, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow512(float* c, Vector512<float> v0, Vector512<float> v1)
    {
        (Vector512.Load(c) + v0).Store(c);
        (Vector512.Load(c + 16) + v1).Store(c + 16);
    }

    // 6×16 tile: 12 ymm accumulators of the 16 AVX2 registers, same scheme as Kernel512.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256(int kc, float* a, float* b, float* c, int ldc)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
            c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++, a += MR, b += 16)
        {
            var b0 = Vector256.Load(b);
            var b1 = Vector256.Load(b + 8);
            var ai = Vector256.Create(a[0]); c00 = Fma.MultiplyAdd(ai, b0, c00); c01 = Fma.MultiplyAdd(ai, b1, c01);
            ai = Vector256.Create(a[1]); c10 = Fma.MultiplyAdd(ai, b0, c10); c11 = Fma.MultiplyAdd(ai, b1, c11);
            ai = Vector256.Create(a[2]); c20 = Fma.MultiplyAdd(ai, b0, c20); c21 = Fma.MultiplyAdd(ai, b1, c21);
            ai = Vector256.Create(a[3]); c30 = Fma.MultiplyAdd(ai, b0, c30); c31 = Fma.MultiplyAdd(ai, b1, c31);
            ai = Vector256.Create(a[4]); c40 = Fma.MultiplyAdd(ai, b0, c40); c41 = Fma.MultiplyAdd(ai, b1, c41);
            ai = Vector256.Create(a[5]); c50 = Fma.MultiplyAdd(ai, b0, c50); c51 = Fma.MultiplyAdd(ai, b1, c51);
        }
        AddRow256(c, c00, c01); AddRow256(c + ldc, c10, c11); AddRow256(c + 2 * ldc, c20, c21);
        AddRow256(c + 3 * ldc, c30, c31); AddRow256(c + 4 * ldc, c40, c41); AddRow256(c + 5 * ldc, c50, c51);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow256(float* c, Vector256<float> v0, Vector256<float> v1)
    {
        (Vector256.Load(c) + v0).Store(c);
        (Vector256.Load(c + 8) + v1).Store(c + 8);
    }

    // Any other CPU: the same tile in scalar code (NR = 16 here), accumulating in a stack tile.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelScalar(int kc, float* a, float* b, float* c, int ldc)
    {
        const int nr = 16;
        float* acc = stackalloc float[MR * nr];
        new Span<float>(acc, MR * nr).Clear();
        for (int p = 0; p < kc; p++, a += MR, b += nr)
            for (int i = 0; i < MR; i++)
                for (int j = 0; j < nr; j++) acc[i * nr + j] += a[i] * b[j];
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < nr; j++) c[i * ldc + j] += acc[i * nr + j];
    }

    // Pack buffers are per thread and reused across calls: one pinned allocation, 64-byte aligned panels.
    [ThreadStatic] private static float[]? t_pack;

    private static float* PackBuffers(out float* packB)
    {
        const int sizeA = MC * KC, sizeB = KC * NC;
        t_pack ??= GC.AllocateUninitializedArray<float>(sizeA + sizeB + 32, pinned: true);
        float* p = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(t_pack));
        p = (float*)(((nint)p + 63) & ~(nint)63);
        packB = p + sizeA;
        return p;
    }

    private static void Validate(int m, int n, int k, int aLength, int aRowStride, int aColStride,
        int bLength, int bRowStride, int bColStride, int biasLength, int outputLength)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentOutOfRangeException(nameof(m), $"matmul sizes must be ≥ 0: M={m}, N={n}, K={k}");
        if (aRowStride < 0 || aColStride < 0 || bRowStride < 0 || bColStride < 0)
            throw new ArgumentOutOfRangeException(nameof(aRowStride), $"matmul strides must be ≥ 0: a ({aRowStride}, {aColStride}), b ({bRowStride}, {bColStride})");
        if (Extent(m, k, aRowStride, aColStride) > aLength)
            throw new ArgumentException($"matmul: a has {aLength} elements, too few for op(a) [M={m}, K={k}] with strides ({aRowStride}, {aColStride})");
        if (Extent(k, n, bRowStride, bColStride) > bLength)
            throw new ArgumentException($"matmul: b has {bLength} elements, too few for op(b) [K={k}, N={n}] with strides ({bRowStride}, {bColStride})");
        if (biasLength != 0 && biasLength != n)
            throw new ArgumentException($"matmul: bias has {biasLength} elements, expected N={n} (or none)");
        if ((long)m * n > outputLength)
            throw new ArgumentException($"matmul: output has {outputLength} elements, too few for [M={m}, N={n}]");
    }

    private static long Extent(int rows, int cols, int rowStride, int colStride) =>
        rows == 0 || cols == 0 ? 0 : (long)(rows - 1) * rowStride + (long)(cols - 1) * colStride + 1;
}
