using System.Diagnostics;
using Llm.Autograd;
using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Llm.Training;

namespace Llm.Tools;

/// <summary>
/// `bench`: matmul GFLOP/s at 1024³ (the scalar definition vs the fast path), then one GPT-2 training step split into
/// forward, backward and AdamW, and the process's peak memory. Numbers are measured, never asserted.
/// </summary>
public static class Bench
{
    public sealed record Options(string Preset = "gpt2", int Batch = 4, int Seq = 64, int Steps = 3, int MatMulSize = 1024, bool SkipNaive = false, bool Json = false)
    {
        /// <summary>The largest n whose n×n matrix fits one array (n² ≤ 2³¹ − 1).</summary>
        public const int MaxMatMulSize = 46340;

        /// <summary>Throws naming the first option (as `bench` spells it) that cannot run; returns this.</summary>
        public Options Validate()
        {
            if (Batch < 1) throw new ArgumentException($"--batch must be ≥ 1, got {Batch}");
            if (Seq < 1) throw new ArgumentException($"--seq must be ≥ 1, got {Seq}");
            if (Steps < 1) throw new ArgumentException($"--steps must be ≥ 1, got {Steps}");
            if (MatMulSize is < 1 or > MaxMatMulSize) throw new ArgumentException($"--matmul-size must be in [1, {MaxMatMulSize}], got {MatMulSize}");
            var config = Gpt2Config.FromPreset(Preset);  // an unknown preset throws naming the known ones
            if (Seq > config.ContextLength)
                throw new ArgumentException($"--seq {Seq} exceeds the context length {config.ContextLength} of preset '{Preset}'");
            return this;
        }
    }

    public sealed record Result(string Backend, int MatMulSize, double NaiveGflops, double FastGflops,
        string Preset, long Parameters, int Batch, int Seq, double ForwardMs, double BackwardMs, double AdamWMs, double StepMs,
        double TokensPerSecond, double PeakMemoryMiB, long BytesMovedPerStep, string? Device);

    public static Result Run(IBackend backend, Options o, TextWriter log)
    {
        o.Validate();
        if (backend is not Vulkan.VulkanBackend) log.WriteLine($"cpu: {Environment.ProcessorCount} cores, Vector512: {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}, Vector256: {System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated}");
        int n = o.MatMulSize;
        double naive = o.SkipNaive ? double.NaN : MatMulGflops(new CpuBackend(fastPaths: false), n, repeats: 1);
        if (!o.SkipNaive) log.WriteLine($"matmul {n}x{n}x{n} scalar definition: {naive,8:F2} GFLOP/s");
        double fast = MatMulGflops(backend, n, repeats: 5);
        log.WriteLine($"matmul {n}x{n}x{n} {backend.Name}: {fast,8:F2} GFLOP/s");

        var config = Gpt2Config.FromPreset(o.Preset);
        var model = new Gpt2(backend, config);
        model.InitializeWeights(1);
        var opt = new AdamW(model.Parameters);
        var tape = new Tape(backend);
        var rng = new Common.Rng(2);
        int bt = o.Batch * o.Seq;
        var inputs = new int[bt]; var targets = new int[bt];
        for (int i = 0; i < bt; i++) { inputs[i] = rng.NextInt(config.VocabSize); targets[i] = rng.NextInt(config.VocabSize); }
        var ids = backend.Allocate(DType.I32, [o.Batch, o.Seq], "inputs");
        var tgt = backend.Allocate(DType.I32, [o.Batch, o.Seq], "targets");
        backend.Upload<int>(inputs, ids); backend.Upload<int>(targets, tgt);
        var dLosses = backend.Allocate(DType.F32, [bt], "dlosses");
        backend.Fill(dLosses, 1.0 / bt);

        var fwd = new List<double>(); var bwd = new List<double>(); var upd = new List<double>();
        long moved = 0;
        for (int s = 0; s < o.Steps + 1; s++)  // step 0 warms up the JIT and the activation pool
        {
            long before = Transferred(backend);
            var sw = Stopwatch.StartNew();
            var losses = tape.CrossEntropy(model.Forward(tape, ids), tgt);
            backend.Synchronize();
            double tf = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            model.Parameters.ZeroGrad();
            tape.Backward(losses, dLosses);
            AdamW.ClipGradientNorm(model.Parameters, 1.0);
            backend.Synchronize();
            double tb = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            opt.Update(1e-4f);
            backend.Synchronize();
            double ta = sw.Elapsed.TotalMilliseconds;
            tape.Reset();
            moved = Transferred(backend) - before;
            if (s == 0) continue;
            fwd.Add(tf); bwd.Add(tb); upd.Add(ta);
            log.WriteLine($"step {s}: forward {tf:F0} ms, backward {tb:F0} ms, AdamW {ta:F0} ms");
        }
        double f = Median(fwd), b = Median(bwd), a = Median(upd), step = f + b + a;
        double peak = Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0);
        log.WriteLine($"{o.Preset} ({model.Parameters.Count / 1e6:F1}M parameters) B={o.Batch} T={o.Seq}: forward {f:F0} ms, backward {b:F0} ms, AdamW {a:F0} ms, step {step:F0} ms, {bt / (step / 1000):F0} tokens/s");
        log.WriteLine($"peak memory (working set): {peak:F0} MiB");
        if (backend is Vulkan.VulkanBackend v)
            log.WriteLine($"device memory allocated: {v.BytesAllocated / (1024.0 * 1024.0):F0} MiB; host<->device per step: {moved:N0} bytes (bench uploads its batch once; training adds 2·B·T·4 bytes of ids and targets)");
        return new Result(backend.Name, n, naive, fast, o.Preset, model.Parameters.Count, o.Batch, o.Seq, f, b, a, step, bt / (step / 1000), peak, moved,
            backend is Vulkan.VulkanBackend vd ? $"{vd.Info.Name} ({vd.Info.Type}, {vd.Info.DriverName})" : null);
    }

    /// <summary>Best of <paramref name="repeats"/> timings of C = A·B at n³ through the backend's MatMul op.</summary>
    public static double MatMulGflops(IBackend backend, int n, int repeats)
    {
        var rng = new Common.Rng(3);
        var host = new float[n * n];
        for (int i = 0; i < host.Length; i++) host[i] = (float)rng.NextGaussian();
        var a = backend.Allocate(DType.F32, [n, n], "a");
        var b = backend.Allocate(DType.F32, [n, n], "b");
        var c = backend.Allocate(DType.F32, [n, n], "c");
        backend.Upload<float>(host, a); backend.Upload<float>(host, b);
        backend.MatMul(a, b, null, c); // warm-up (JIT, pack buffers, threads)
        backend.Synchronize();
        double best = double.MaxValue;
        for (int r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            backend.MatMul(a, b, null, c);
            backend.Synchronize();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }

    /// <summary>Host↔device bytes so far (0 on the CPU, where nothing moves).</summary>
    private static long Transferred(IBackend backend) => backend is Vulkan.VulkanBackend v ? v.BytesUploaded + v.BytesDownloaded : 0;

    private static double Median(List<double> xs)
    {
        var s = xs.OrderBy(x => x).ToList();
        return s.Count == 0 ? double.NaN : s[s.Count / 2];
    }
}
