using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Llm.Tools;

/// <summary>
/// What this machine can do at most, measured, so that bench's numbers read as fractions of it and compare across
/// machines: the CPU model, the fp32 FMA peak of all cores together, and the streaming read bandwidth of memory.
/// </summary>
public static class MachinePeak
{
    /// <param name="Isa">the widest vector the FMA loop ran on: "avx512", "avx2" or "scalar".</param>
    /// <param name="FmaGflops">fp32 GFLOP/s, one FMA = 2 flops, every core at once.</param>
    /// <param name="ReadGBps">GB/s (10⁹ bytes) of a parallel streaming sum over <paramref name="ReadBufferMiB"/> MiB.</param>
    public sealed record Result(string Cpu, int Cores, string Isa, double FmaGflops, double ReadGBps, int ReadBufferMiB);

    /// <summary>"model name" from /proc/cpuinfo (Linux), else the architecture.</summary>
    public static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null) return line.Split(':', 2)[1].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <param name="bufferMiB">the read test's buffer: at least 8× the last-level cache so that it measures DRAM.</param>
    public static Result Measure(int bufferMiB = 512, double seconds = 0.4)
    {
        string isa = Vector512.IsHardwareAccelerated ? "avx512" : Vector256.IsHardwareAccelerated ? "avx2" : "scalar";
        return new Result(CpuModel(), Environment.ProcessorCount, isa, FmaGflops(seconds), ReadGBps(bufferMiB), bufferMiB);
    }

    /// <summary>Best of 20 short runs of every core doing <see cref="FmaChains"/> for a fixed count (many short runs, so
    /// one lands in a quiet moment of a shared machine); 2 flops per lane per FMA.</summary>
    public static double FmaGflops(double seconds = 0.4)
    {
        int cores = Environment.ProcessorCount;
        int lanes = Vector512.IsHardwareAccelerated ? 16 : Vector256.IsHardwareAccelerated ? 8 : 1;
        // Calibrate on one core so a run takes about `seconds / 20`, then time all cores together.
        long iterations = 1 << 16;
        while (true)
        {
            var sw = Stopwatch.StartNew();
            FmaChains.Run(iterations);
            if (sw.Elapsed.TotalSeconds > seconds / 80 || iterations > 1L << 34) { iterations = (long)(iterations * (seconds / 20) / sw.Elapsed.TotalSeconds) + 1; break; }
            iterations *= 4;
        }
        double best = double.MaxValue;
        float sink = 0;
        for (int r = 0; r < 20; r++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, cores, new ParallelOptions { MaxDegreeOfParallelism = cores }, _ => { float s = FmaChains.Run(iterations); if (s == 12345) sink += s; });
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        GC.KeepAlive(sink);
        return 2.0 * FmaChains.Chains * lanes * iterations * cores / best / 1e9;
    }

    /// <summary>Best of 5 parallel sums over a buffer of <paramref name="mib"/> MiB (native memory, freed after, so
    /// it never counts in the training step's peak): bytes read / seconds.</summary>
    public static unsafe double ReadGBps(int mib = 512)
    {
        long bytes = (long)mib << 20;
        float* p = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            long n = bytes / sizeof(float);
            int cores = Environment.ProcessorCount;
            // Fill in parallel too, so each core's half is already faulted in and no page fault lands in the timing.
            Parallel.For(0, cores, c => new Span<float>(p + n * c / cores, (int)(n * (c + 1) / cores - n * c / cores)).Fill(1f));
            double best = double.MaxValue;
            float sink = 0;
            for (int r = 0; r < 5; r++)
            {
                var sw = Stopwatch.StartNew();
                Parallel.For(0, cores, new ParallelOptions { MaxDegreeOfParallelism = cores }, c =>
                {
                    float s = StreamSum(p + n * c / cores, n * (c + 1) / cores - n * c / cores);
                    if (s == 12345) sink += s;
                });
                best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            GC.KeepAlive(sink);
            return bytes / best / 1e9;
        }
        finally { NativeMemory.AlignedFree(p); }
    }

    /// <summary>Σ p[0..n): four independent vector sums, so the adds never wait on each other and loads set the pace.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe float StreamSum(float* p, long n)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 64 <= n; i += 64)
            {
                s0 += Vector512.Load(p + i); s1 += Vector512.Load(p + i + 16);
                s2 += Vector512.Load(p + i + 32); s3 += Vector512.Load(p + i + 48);
            }
            float t = Vector512.Sum(s0 + s1 + s2 + s3);
            for (; i < n; i++) t += p[i];
            return t;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i + 32 <= n; i += 32)
            {
                s0 += Vector256.Load(p + i); s1 += Vector256.Load(p + i + 8);
                s2 += Vector256.Load(p + i + 16); s3 += Vector256.Load(p + i + 24);
            }
            float t = Vector256.Sum(s0 + s1 + s2 + s3);
            for (; i < n; i++) t += p[i];
            return t;
        }
        float a = 0, b = 0, c = 0, d = 0;
        for (; i + 4 <= n; i += 4) { a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3]; }
        for (; i < n; i++) a += p[i];
        return a + b + c + d;
    }
}

/// <summary>
/// acc_j ← acc_j · x + y on <see cref="Chains"/> independent accumulators: enough chains to cover the FMA latency
/// (4–5 cycles) times the FMA ports (2) of current x86 cores, few enough to stay in the 16 ymm / 32 zmm registers.
/// </summary>
internal static class FmaChains
{
    public const int Chains = 12;

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Run(long iterations)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var x = Vector512.Create(0.999999f); var y = Vector512.Create(1e-7f);
            Vector512<float> a0 = Vector512.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
            for (long i = 0; i < iterations; i++)
            {
                a0 = Vector512.FusedMultiplyAdd(a0, x, y); a1 = Vector512.FusedMultiplyAdd(a1, x, y); a2 = Vector512.FusedMultiplyAdd(a2, x, y);
                a3 = Vector512.FusedMultiplyAdd(a3, x, y); a4 = Vector512.FusedMultiplyAdd(a4, x, y); a5 = Vector512.FusedMultiplyAdd(a5, x, y);
                a6 = Vector512.FusedMultiplyAdd(a6, x, y); a7 = Vector512.FusedMultiplyAdd(a7, x, y); a8 = Vector512.FusedMultiplyAdd(a8, x, y);
                a9 = Vector512.FusedMultiplyAdd(a9, x, y); a10 = Vector512.FusedMultiplyAdd(a10, x, y); a11 = Vector512.FusedMultiplyAdd(a11, x, y);
            }
            return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            var x = Vector256.Create(0.999999f); var y = Vector256.Create(1e-7f);
            Vector256<float> a0 = Vector256.Create(1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
            for (long i = 0; i < iterations; i++)
            {
                a0 = Vector256.FusedMultiplyAdd(a0, x, y); a1 = Vector256.FusedMultiplyAdd(a1, x, y); a2 = Vector256.FusedMultiplyAdd(a2, x, y);
                a3 = Vector256.FusedMultiplyAdd(a3, x, y); a4 = Vector256.FusedMultiplyAdd(a4, x, y); a5 = Vector256.FusedMultiplyAdd(a5, x, y);
                a6 = Vector256.FusedMultiplyAdd(a6, x, y); a7 = Vector256.FusedMultiplyAdd(a7, x, y); a8 = Vector256.FusedMultiplyAdd(a8, x, y);
                a9 = Vector256.FusedMultiplyAdd(a9, x, y); a10 = Vector256.FusedMultiplyAdd(a10, x, y); a11 = Vector256.FusedMultiplyAdd(a11, x, y);
            }
            return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
        }
        float s0 = 1, s1 = 1, s2 = 1, s3 = 1, s4 = 1, s5 = 1, s6 = 1, s7 = 1, s8 = 1, s9 = 1, s10 = 1, s11 = 1;
        for (long i = 0; i < iterations; i++)
        {
            s0 = MathF.FusedMultiplyAdd(s0, 0.999999f, 1e-7f); s1 = MathF.FusedMultiplyAdd(s1, 0.999999f, 1e-7f); s2 = MathF.FusedMultiplyAdd(s2, 0.999999f, 1e-7f);
            s3 = MathF.FusedMultiplyAdd(s3, 0.999999f, 1e-7f); s4 = MathF.FusedMultiplyAdd(s4, 0.999999f, 1e-7f); s5 = MathF.FusedMultiplyAdd(s5, 0.999999f, 1e-7f);
            s6 = MathF.FusedMultiplyAdd(s6, 0.999999f, 1e-7f); s7 = MathF.FusedMultiplyAdd(s7, 0.999999f, 1e-7f); s8 = MathF.FusedMultiplyAdd(s8, 0.999999f, 1e-7f);
            s9 = MathF.FusedMultiplyAdd(s9, 0.999999f, 1e-7f); s10 = MathF.FusedMultiplyAdd(s10, 0.999999f, 1e-7f); s11 = MathF.FusedMultiplyAdd(s11, 0.999999f, 1e-7f);
        }
        return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7 + s8 + s9 + s10 + s11;
    }
}
