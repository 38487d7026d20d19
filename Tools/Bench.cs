using System.Diagnostics;
using Llm.Autograd;
using Llm.Cpu;
using Llm.Models;
using Llm.Tensors;
using Llm.Training;

namespace Llm.Tools;

/// <summary>
/// `bench`: this machine's FMA peak and memory bandwidth (<see cref="MachinePeak"/>), matmul GFLOP/s at 1024³ (the
/// scalar definition vs the fast path), then one GPT-2 training step split into forward, backward and AdamW, and the
/// process's peak memory with what held it. Numbers are measured, never asserted.
/// </summary>
public static class Bench
{
    /// <param name="DecodePreset">model of the decode benchmark; null: the same as <paramref name="Preset"/>.</param>
    /// <param name="DecodeTokens">new tokens of greedy decoding after a <paramref name="DecodePrompt"/>-token prompt; 0 skips it.</param>
    /// <param name="AttentionSeq">T of the attention forward+backward benchmark; 0 skips it.</param>
    public sealed record Options(string Preset = "gpt2", int Batch = 4, int Seq = 64, int Steps = 3, int MatMulSize = 1024, bool SkipNaive = false, bool Json = false,
        int BandwidthMiB = 512, string? DecodePreset = null, int DecodePrompt = 64, int DecodeTokens = 64,
        int AttentionSeq = 2048, int AttentionBatch = 1, int AttentionHeads = 12, int AttentionHeadSize = 64, string? MoePreset = null)
    {
        public string DecodeModel => DecodePreset ?? Preset;

        /// <summary>The largest n whose n×n matrix fits one array (n² ≤ 2³¹ − 1).</summary>
        public const int MaxMatMulSize = 46340;

        /// <summary>Throws naming the first option (as `bench` spells it) that cannot run; returns this.</summary>
        public Options Validate()
        {
            if (Batch < 1) throw new ArgumentException($"--batch must be ≥ 1, got {Batch}");
            if (Seq < 1) throw new ArgumentException($"--seq must be ≥ 1, got {Seq}");
            if (Steps < 1) throw new ArgumentException($"--steps must be ≥ 1, got {Steps}");
            if (MatMulSize is < 1 or > MaxMatMulSize) throw new ArgumentException($"--matmul-size must be in [1, {MaxMatMulSize}], got {MatMulSize}");
            if (BandwidthMiB is < 1 or > 1 << 16) throw new ArgumentException($"--bandwidth-mib must be in [1, 65536], got {BandwidthMiB}");
            var config = DecoderConfig.FromPreset(Preset);  // an unknown preset throws naming the known ones
            if (Seq > config.ContextLength)
                throw new ArgumentException($"--seq {Seq} exceeds the context length {config.ContextLength} of preset '{Preset}'");
            if (DecodeTokens < 0) throw new ArgumentException($"--decode-tokens must be ≥ 0 (0 skips the decode benchmark), got {DecodeTokens}");
            if (DecodePrompt < 1) throw new ArgumentException($"--decode-prompt must be ≥ 1, got {DecodePrompt}");
            if (DecodeTokens > 0)
            {
                DecoderConfig decode;
                try { decode = DecoderConfig.FromPreset(DecodeModel); }
                catch (ArgumentException e) { throw new ArgumentException($"--decode-preset: {e.Message}"); }
                if (DecodePrompt + DecodeTokens > decode.ContextLength)
                    throw new ArgumentException($"--decode-prompt {DecodePrompt} plus --decode-tokens {DecodeTokens} exceeds the context length {decode.ContextLength} of preset '{DecodeModel}'");
            }
            if (AttentionSeq is < 0 or > 1 << 16) throw new ArgumentException($"--attention-seq must be in [0, 65536] (0 skips the attention benchmark), got {AttentionSeq}");
            if (AttentionBatch < 1) throw new ArgumentException($"--attention-batch must be ≥ 1, got {AttentionBatch}");
            if (MoePreset is { } moe && DecoderConfig.FromPreset(moe).Moe is null)
                throw new ArgumentException($"--moe-preset '{moe}' has no mixture of experts (try switch-tiny or gshard-tiny)");
            if (AttentionHeads < 1) throw new ArgumentException($"--attention-heads must be ≥ 1, got {AttentionHeads}");
            if (AttentionHeadSize < 1) throw new ArgumentException($"--attention-head-size must be ≥ 1, got {AttentionHeadSize}");
            if ((long)AttentionBatch * AttentionSeq * AttentionHeads * AttentionHeadSize > int.MaxValue)
                throw new ArgumentException($"--attention-batch × --attention-seq × --attention-heads × --attention-head-size must fit one tensor (≤ {int.MaxValue} elements)");
            return this;
        }
    }

    /// <param name="MatMulFractionOfPeak">FastGflops / the machine's FMA peak.</param>
    /// <param name="StepGflops">6·P·B·T flops (forward 2·P·B·T, backward 4·P·B·T; attention's T² terms left out) per StepMs.</param>
    /// <param name="AdamWGBps">AdamW's 7·4·P bytes (reads θ, g, m, v; writes θ, m, v) per AdamWMs.</param>
    /// <param name="PeakMemoryMiB">VmHWM, the process's peak resident set (what PyTorch's side reports too), counted from
    /// the end of the bandwidth test where Linux lets it be reset.</param>
    public sealed record Result(string Backend, MachinePeak.Result Machine, int MatMulSize, double NaiveGflops, double FastGflops,
        double MatMulFractionOfPeak, string Preset, long Parameters, int Batch, int Seq, double ForwardMs, double BackwardMs,
        double AdamWMs, double StepMs, double TokensPerSecond, double StepGflops, double StepFractionOfPeak, double AdamWGBps,
        double AdamWFractionOfBandwidth, double PeakMemoryMiB, MemoryBreakdown Memory, long BytesMovedPerStep, string? Device,
        Vulkan.VulkanCounters? PerStep = null, DecodeResult? Decode = null, AttentionResult? Attention = null, BenchMoe.MoeResult? Moe = null);

    /// <summary>Greedy decoding at batch 1: a prompt of <paramref name="PromptTokens"/>, then <paramref name="NewTokens"/>.</summary>
    /// <param name="CachedTokensPerSecond">Generator.Generate (KV cache): tokens after the first over the time after the
    /// first (the first token's time is the prefill, <paramref name="CachedPrefillMs"/>).</param>
    /// <param name="UncachedTokensPerSecond">Generator.GenerateWithoutCache, counted the same way.</param>
    /// <param name="WeightBytesPerToken">4·P: every f32 weight read once per token (the tied head once).</param>
    /// <param name="BandwidthLimitTokensPerSecond">the host's read bandwidth / WeightBytesPerToken; null on Vulkan,
    /// where the device's bandwidth is not measured.</param>
    public sealed record DecodeResult(string Preset, long Parameters, int PromptTokens, int NewTokens, double CachedPrefillMs,
        double CachedTokensPerSecond, double UncachedPrefillMs, double UncachedTokensPerSecond, long WeightBytesPerToken,
        double? BandwidthLimitTokensPerSecond, double? CachedFractionOfLimit, double? UncachedFractionOfLimit);

    /// <summary>The attention op alone, causal, q, k, v [B, T, NH, hs]: best forward and backward times.</summary>
    /// <param name="SavedBytes">what the op keeps for backward besides q, k, v and the output: rowMax and rowSum [B, NH, T].</param>
    /// <param name="ProbsBytes">what a [B, NH, T, T] f32 probability tensor would take: 4·B·NH·T².</param>
    /// <param name="TensorBytes">every tensor of the benchmark: q, k, v, output, dOutput, dq, dk, dv, rowMax, rowSum.</param>
    public sealed record AttentionResult(int Batch, int Seq, int Heads, int HeadSize, double ForwardMs, double BackwardMs, double TotalMs,
        double Gflops, long SavedBytes, long ProbsBytes, long TensorBytes);

    /// <summary>
    /// What the process held at the sampled moment of highest resident set (after forward, backward or AdamW of a step),
    /// MiB. Arenas, pool and logits are counted from their allocations; ManagedMiB is the GC heap's allocated bytes
    /// (GC.GetTotalMemory, garbage not yet collected included); GcOtherMiB = ManagedMiB − what the CPU backend's tensors
    /// (managed arrays) account for; NativeMiB = resident − ManagedMiB: the runtime, JIT code, stacks, native libraries,
    /// free GC pages not yet given back. On Vulkan the tensors live on the device and are not in these numbers.
    /// </summary>
    /// <param name="Phase">where the highest sample was taken, e.g. "step 1 backward".</param>
    /// <param name="LogitsMiB">logits, probs and dLogits [B, T, V] (part of TapePoolMiB).</param>
    public sealed record MemoryBreakdown(string Phase, double ResidentMiB, double ParametersMiB, double GradientsMiB,
        double AdamWMiB, double TapePoolMiB, double LogitsMiB, double GcOtherMiB, double NativeMiB, double ManagedMiB);

    public static Result Run(IBackend backend, Options o, TextWriter log)
    {
        o.Validate();
        // Measured first, while the process is small: the read buffer is native memory, freed before the model exists.
        var machine = MachinePeak.Measure(o.BandwidthMiB);
        // The read buffer is bench's own, not the model's: start the peak (VmHWM) afresh once it is gone.
        bool reset = MemorySampler.ResetPeak();
        log.WriteLine($"cpu: {machine.Cpu}, {machine.Cores} cores, {machine.Isa}; measured fp32 FMA peak {machine.FmaGflops:F0} GFLOP/s, " +
                      $"memory read bandwidth {machine.ReadGBps:F1} GB/s (parallel streaming sum over {machine.ReadBufferMiB} MiB)");
        int n = o.MatMulSize;
        double naive = o.SkipNaive ? double.NaN : MatMulGflops(new CpuBackend(fastPaths: false), n, repeats: 1);
        if (!o.SkipNaive) log.WriteLine($"matmul {n}x{n}x{n} scalar definition: {naive,8:F2} GFLOP/s");
        double fast = MatMulGflops(backend, n, repeats: 5);
        log.WriteLine($"matmul {n}x{n}x{n} {backend.Name}: {fast,8:F2} GFLOP/s = {fast / machine.FmaGflops:P0} of the FMA peak");

        var config = DecoderConfig.FromPreset(o.Preset);
        var model = new Decoder(backend, config);
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
        Vulkan.VulkanCounters? perStep = null;
        var memory = new MemorySampler(model, opt, tape, (long)bt * config.VocabSize);
        memory.Sample("before step 0");
        for (int s = 0; s < o.Steps + 1; s++)  // step 0 warms up the JIT and the activation pool
        {
            long before = Transferred(backend);
            var countersBefore = (backend as Vulkan.VulkanBackend)?.Counters;
            var sw = Stopwatch.StartNew();
            var losses = tape.CrossEntropy(model.Forward(tape, ids), tgt);
            backend.Synchronize();
            double tf = sw.Elapsed.TotalMilliseconds;
            memory.Sample($"step {s} forward");
            sw.Restart();
            model.Parameters.ZeroGrad();
            tape.Backward(losses, dLosses);
            AdamW.ClipGradientNorm(model.Parameters, 1.0);
            backend.Synchronize();
            double tb = sw.Elapsed.TotalMilliseconds;
            memory.Sample($"step {s} backward");
            sw.Restart();
            opt.Update(1e-4f);
            backend.Synchronize();
            double ta = sw.Elapsed.TotalMilliseconds;
            memory.Sample($"step {s} AdamW");
            tape.Reset();
            moved = Transferred(backend) - before;
            if (backend is Vulkan.VulkanBackend counted) perStep = counted.Counters - countersBefore!.Value;
            if (s == 0) continue;
            fwd.Add(tf); bwd.Add(tb); upd.Add(ta);
            log.WriteLine($"step {s}: forward {tf:F0} ms, backward {tb:F0} ms, AdamW {ta:F0} ms");
        }
        double f = Median(fwd), b = Median(bwd), a = Median(upd), step = f + b + a;
        long p = model.Parameters.Count;
        double stepGflops = 6.0 * p * bt / (step / 1000) / 1e9, adamGBps = 7.0 * 4 * p / (a / 1000) / 1e9;
        double peak = MemorySampler.Status("VmHWM") / (1024.0 * 1024.0);
        var mem = memory.Peak;
        log.WriteLine($"{o.Preset} ({p / 1e6:F1}M parameters) B={o.Batch} T={o.Seq}: forward {f:F0} ms, backward {b:F0} ms, AdamW {a:F0} ms, step {step:F0} ms, {bt / (step / 1000):F0} tokens/s");
        log.WriteLine($"step: 6·P·B·T = {6.0 * p * bt / 1e9:F1} GFLOP in {step:F0} ms = {stepGflops:F1} GFLOP/s = {stepGflops / machine.FmaGflops:P0} of the FMA peak; " +
                      $"AdamW: 7·4·P = {7.0 * 4 * p / 1e9:F2} GB in {a:F0} ms = {adamGBps:F1} GB/s = {adamGBps / machine.ReadGBps:P0} of the read bandwidth");
        log.WriteLine($"peak memory (VmHWM{(reset ? ", since the bandwidth buffer was freed" : ", including the bandwidth buffer")}): {peak:F0} MiB; at the highest sample ({mem.Phase}, resident {mem.ResidentMiB:F0} MiB): " +
                      $"parameters {mem.ParametersMiB:F0}, gradients {mem.GradientsMiB:F0}, AdamW m+v {mem.AdamWMiB:F0}, tape pool {mem.TapePoolMiB:F0} " +
                      $"(of it logits/probs/dLogits {mem.LogitsMiB:F0}), other managed {mem.GcOtherMiB:F0}, native/runtime {mem.NativeMiB:F0} MiB");
        if (backend is Vulkan.VulkanBackend v)
        {
            log.WriteLine($"device memory allocated: {v.BytesAllocated / (1024.0 * 1024.0):F0} MiB; host<->device per step: {moved:N0} bytes (bench uploads its batch once; training adds 2·B·T·4 bytes of ids and targets)");
            log.WriteLine($"per step: {perStep}");
        }
        // the training step's model, optimizer and tape are not needed any more: free them before the next models
        tape.Dispose(); model = null!; opt = null!;
        GC.Collect();
        var decode = o.DecodeTokens > 0 ? RunDecode(backend, o, machine, log) : null;
        var attention = o.AttentionSeq > 0 ? RunAttention(backend, o, log) : null;
        var moe = o.MoePreset is { } moePreset ? BenchMoe.Run(backend, moePreset, o.Batch, o.Seq, o.Steps, log) : null;
        return new Result(backend.Name, machine, n, naive, fast, fast / machine.FmaGflops, o.Preset, p, o.Batch, o.Seq, f, b, a, step,
            bt / (step / 1000), stepGflops, stepGflops / machine.FmaGflops, adamGBps, adamGBps / machine.ReadGBps, peak, mem, moved,
            backend is Vulkan.VulkanBackend vd ? $"{vd.Info.Name} ({vd.Info.Type}, {vd.Info.DriverName})" : null, perStep, decode, attention, moe);
    }

    /// <summary>Greedy decoding of a random prompt with and without the KV cache; a short untimed run first (JIT, pools).</summary>
    public static DecodeResult RunDecode(IBackend backend, Options o, MachinePeak.Result machine, TextWriter log)
    {
        var config = DecoderConfig.FromPreset(o.DecodeModel);
        var model = new Decoder(backend, config);
        model.InitializeWeights(4);
        var rng = new Common.Rng(5);
        var prompt = new int[o.DecodePrompt];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = rng.NextInt(config.VocabSize);
        var greedy = new Inference.SamplingOptions { Temperature = 0 };
        // one timing: the first token's time (the prompt's forward, the prefill) and the tokens after it per second
        (double PrefillMs, double TokensPerSecond) Time(Func<IEnumerable<int>> generate)
        {
            var sw = Stopwatch.StartNew();
            double first = 0;
            int count = 0;
            foreach (int _ in generate())
                if (count++ == 0) first = sw.Elapsed.TotalSeconds;
            double total = sw.Elapsed.TotalSeconds;
            return (first * 1000, count > 1 ? (count - 1) / (total - first) : count / total);
        }
        Time(() => Inference.Generator.Generate(model, prompt, Math.Min(2, o.DecodeTokens), new Inference.Sampler(greedy)));
        Time(() => Inference.Generator.GenerateWithoutCache(model, prompt, Math.Min(2, o.DecodeTokens), new Inference.Sampler(greedy)));
        var cached = Time(() => Inference.Generator.Generate(model, prompt, o.DecodeTokens, new Inference.Sampler(greedy)));
        var uncached = Time(() => Inference.Generator.GenerateWithoutCache(model, prompt, o.DecodeTokens, new Inference.Sampler(greedy)));
        long p = model.Parameters.Count, bytes = 4 * p;
        bool host = backend is CpuBackend;
        double? limit = host ? machine.ReadGBps * 1e9 / bytes : null;
        log.WriteLine($"decode {o.DecodeModel} ({p / 1e6:F1}M parameters), batch 1, greedy, prompt {o.DecodePrompt} + {o.DecodeTokens} new tokens: " +
                      $"KV cache {cached.TokensPerSecond:F2} tokens/s (prefill {cached.PrefillMs:F0} ms), without it {uncached.TokensPerSecond:F2} tokens/s (first token {uncached.PrefillMs:F0} ms)");
        log.WriteLine(limit is { } l
            ? $"decode: 4·P = {bytes / 1e6:F0} MB of weights read per token; at the read bandwidth {machine.ReadGBps:F1} GB/s that limits decoding to {l:F1} tokens/s: " +
              $"KV cache {cached.TokensPerSecond / l:P1} of it, without it {uncached.TokensPerSecond / l:P1}"
            : $"decode: 4·P = {bytes / 1e6:F0} MB of weights read per token; the limit it sets is the device's bandwidth over that, not measured here (the host's {machine.ReadGBps:F1} GB/s bounds only the CPU backend)");
        return new DecodeResult(o.DecodeModel, p, o.DecodePrompt, o.DecodeTokens, cached.PrefillMs, cached.TokensPerSecond, uncached.PrefillMs,
            uncached.TokensPerSecond, bytes, limit, limit is { } a ? cached.TokensPerSecond / a : null, limit is { } u ? uncached.TokensPerSecond / u : null);
    }

    /// <summary>The backend's attention op forward and backward at [B, T, NH, hs], causal; best of 3 after a warm-up.</summary>
    public static AttentionResult RunAttention(IBackend backend, Options o, TextWriter log)
    {
        int B = o.AttentionBatch, T = o.AttentionSeq, NH = o.AttentionHeads, hs = o.AttentionHeadSize;
        int[] shape = [B, T, NH, hs];
        var rng = new Common.Rng(6);
        var host = new float[B * T * NH * hs];
        Tensor Random(string name)
        {
            for (int i = 0; i < host.Length; i++) host[i] = (float)rng.NextGaussian();
            var t = backend.Allocate(DType.F32, shape, name);
            backend.Upload<float>(host, t);
            return t;
        }
        var tensors = new List<Tensor>();
        Tensor Keep(Tensor t) { tensors.Add(t); return t; }
        var q = Keep(Random("q")); var k = Keep(Random("k")); var v = Keep(Random("v")); var dOut = Keep(Random("dOut"));
        var output = Keep(backend.Allocate(DType.F32, shape, "out"));
        var dq = Keep(backend.Allocate(DType.F32, shape, "dq")); var dk = Keep(backend.Allocate(DType.F32, shape, "dk")); var dv = Keep(backend.Allocate(DType.F32, shape, "dv"));
        var rowMax = Keep(backend.Allocate(DType.F32, [B, NH, T], "rowMax")); var rowSum = Keep(backend.Allocate(DType.F32, [B, NH, T], "rowSum"));
        double bestF = double.MaxValue, bestB = double.MaxValue;
        for (int r = 0; r < 4; r++)  // r = 0 warms up
        {
            var sw = Stopwatch.StartNew();
            backend.Attention(q, k, v, null, AttentionMask.Causal, output, rowMax, rowSum);
            backend.Synchronize();
            double tf = sw.Elapsed.TotalMilliseconds;
            foreach (var g in new[] { dq, dk, dv }) backend.Fill(g, 0);
            backend.Synchronize();
            sw.Restart();
            backend.AttentionBackward(dOut, q, k, v, null, AttentionMask.Causal, output, rowMax, rowSum, dq, dk, dv, null);
            backend.Synchronize();
            double tb = sw.Elapsed.TotalMilliseconds;
            if (r > 0) { bestF = Math.Min(bestF, tf); bestB = Math.Min(bestB, tb); }
        }
        long saved = 2L * 4 * B * NH * T, probs = 4L * B * NH * T * T, all = tensors.Sum(t => (long)t.Length * 4);
        // causal: T(T+1)/2 query·key pairs per head, 2·hs multiply-adds each in forward (q·k, p·v), 4·hs in backward (+ the recomputed q·k)
        double pairs = (double)B * NH * T * (T + 1) / 2, flops = pairs * hs * 2 * (2 + 5);
        double gflops = flops / ((bestF + bestB) / 1000) / 1e9;
        log.WriteLine($"attention B={B} T={T} NH={NH} hs={hs} causal, {backend.Name}: forward {bestF:F1} ms, backward {bestB:F1} ms, total {bestF + bestB:F1} ms ({gflops:F1} GFLOP/s of 14·hs flops per visible pair); " +
                      $"kept for backward: rowMax+rowSum {saved / 1024.0:F0} KiB, where probabilities [B, NH, T, T] would take {probs / (1024.0 * 1024.0):F0} MiB; all its tensors {all / (1024.0 * 1024.0):F0} MiB");
        foreach (var t in tensors) backend.Release(t);
        return new AttentionResult(B, T, NH, hs, bestF, bestB, bestF + bestB, gflops, saved, probs, all);
    }

    /// <summary>Samples the resident set and what is known to hold it; keeps the sample with the largest resident set.</summary>
    private sealed class MemorySampler(Decoder model, AdamW opt, Tape tape, long logitsElements)
    {
        private const double MiB = 1024.0 * 1024.0;
        public MemoryBreakdown Peak { get; private set; } = new("none", 0, 0, 0, 0, 0, 0, 0, 0, 0);

        public void Sample(string phase)
        {
            double resident = Status("VmRSS") / MiB;
            if (resident <= Peak.ResidentMiB) return;
            bool host = model.Backend is CpuBackend;
            double values = model.Parameters.Arenas.Sum(x => (long)x.Values.Length * x.Values.DType.Size()) / MiB;
            double grads = model.Parameters.Arenas.Sum(x => x.Grads is { } g ? (long)g.Length * g.DType.Size() : 0) / MiB;   // frozen: none
            double adam = opt.M.Concat(opt.V).Sum(x => x is null ? 0 : (long)x.Length * x.DType.Size()) / MiB;
            double pool = tape.PooledBytes / MiB, logits = 3.0 * logitsElements * model.Parameters.DType.Size() / MiB;
            double managed = GC.GetTotalMemory(false) / MiB;
            double inGc = host ? values + grads + adam + pool : 0;
            Peak = new(phase, resident, values, grads, adam, pool, logits, managed - inGc, resident - managed, managed);
        }

        /// <summary>Writing 5 to /proc/self/clear_refs sets VmHWM back to the current resident set (Linux ≥ 4.0).</summary>
        public static bool ResetPeak()
        {
            try { File.WriteAllText("/proc/self/clear_refs", "5"); return true; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
        }

        /// <summary>A "Name: N kB" line of /proc/self/status in bytes (Linux); 0 where there is none.</summary>
        public static long Status(string name)
        {
            try
            {
                foreach (var line in File.ReadLines("/proc/self/status"))
                    if (line.StartsWith(name + ":", StringComparison.Ordinal))
                        return long.Parse(line[(name.Length + 1)..].Trim().Split(' ')[0]) * 1024;
            }
            catch (IOException) { }
            return name == "VmHWM" ? Process.GetCurrentProcess().PeakWorkingSet64 : Process.GetCurrentProcess().WorkingSet64;
        }
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
