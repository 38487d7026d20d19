using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;

namespace Llm.Tools;

/// <summary>`bench`: matmul GFLOP/s and a GPT-2 training step; with --compare-torch, PyTorch CPU in the same run.</summary>
internal static class BenchCommand
{
    public static Command Create(TextWriter stdout)
    {
        var preset = Cli.Opt("--preset", "model for the training-step benchmark", "gpt2");
        var batch = Cli.Opt("--batch", "B sequences", 4);
        var seq = Cli.Opt("--seq", "T tokens per sequence", 64);
        var steps = Cli.Opt("--steps", "timed steps (after one warm-up step); the median is reported", 3);
        var size = Cli.Opt("--matmul-size", "n for the n×n×n matmul", 1024);
        var skipNaive = Cli.Opt("--skip-naive", "skip the slow scalar matmul definition", false);
        var torch = Cli.Opt("--compare-torch", "also run Tools/bench/torch_gpt2_step.py with Debian's python3-torch", false);
        var json = Cli.Opt("--json", "print one JSON object with every number", false);
        var bandwidth = Cli.Opt("--bandwidth-mib", "buffer of the memory-bandwidth test (far above the last-level cache)", 512);
        var decodePreset = Cli.Opt<string?>("--decode-preset", "model of the greedy-decode benchmark (default: --preset)");
        var decodePrompt = Cli.Opt("--decode-prompt", "prompt tokens of the decode benchmark", 64);
        var decodeTokens = Cli.Opt("--decode-tokens", "new tokens of the decode benchmark, with and without the KV cache (0 skips it)", 64);
        var attentionSeq = Cli.Opt("--attention-seq", "T of the attention forward+backward benchmark (0 skips it)", 2048);
        var attentionBatch = Cli.Opt("--attention-batch", "B of the attention benchmark", 1);
        var moePreset = Cli.Opt<string?>("--moe-preset", "an MoE preset (switch-tiny) to train against its dense twin of the same active parameters: tokens/s, memory, dropped slots (default: skipped)");
        var table = Cli.Opt<string?>("--write-table", "replace the table between <!-- bench:BACKEND:start --> and <!-- bench:BACKEND:end --> in this file (the README)");
        var cmd = new Command("bench", "Measure matmul GFLOP/s, a GPT-2 training step and peak memory.")
        { preset, batch, seq, steps, size, skipNaive, torch, json, table, bandwidth, decodePreset, decodePrompt, decodeTokens, attentionSeq, attentionBatch, moePreset };
        cmd.SetAction(p =>
        {
            // checked before a device opens: a value that cannot run is refused at once, not after minutes of measuring
            var o = new Bench.Options(p.GetValue(preset)!, p.GetValue(batch), p.GetValue(seq), p.GetValue(steps), p.GetValue(size), p.GetValue(skipNaive),
                BandwidthMiB: p.GetValue(bandwidth), DecodePreset: p.GetValue(decodePreset), DecodePrompt: p.GetValue(decodePrompt),
                DecodeTokens: p.GetValue(decodeTokens), AttentionSeq: p.GetValue(attentionSeq), AttentionBatch: p.GetValue(attentionBatch), MoePreset: p.GetValue(moePreset)).Validate();
            bool asJson = p.GetValue(json);
            var log = asJson ? TextWriter.Null : stdout;
            using var backend = Cli.CreateBackend(p, log);
            // bench always names the device, its driver and limits (--verbose has printed them already)
            if (backend is Vulkan.VulkanBackend vk && !p.GetValue(Cli.VerboseOption)) log.WriteLine(vk.Info.ToString());
            if (p.GetValue(table) is { } target) Markers(target, backend.Name);  // fail before minutes of measuring
            var result = Bench.Run(backend, o, log);
            JsonElement? torchResult = p.GetValue(torch) ? RunTorch(o, result, log) : null;
            JsonElement? torchDecode = p.GetValue(torch) && (result.Decode is not null || result.Attention is not null) ? RunTorchDecode(o, result, log) : null;
            if (p.GetValue(table) is { } readme) WriteTable(readme, result, torchResult, torchDecode);
            // NaN where a measure was skipped (--skip-naive): written as the string "NaN", which plain JSON numbers cannot say
            if (asJson) stdout.WriteLine(JsonSerializer.Serialize(new { llm = result, torch = torchResult, torch_decode = torchDecode },
                new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the PyTorch twin of the benchmark; returns its JSON, or null (with the reason printed) when it cannot run.</summary>
    private static JsonElement? RunTorch(Bench.Options o, Bench.Result r, TextWriter log)
    {
        var config = Models.DecoderConfig.FromPreset(o.Preset);
        if (RunScript("torch_gpt2_step.py",
                [$"{o.MatMulSize}", $"{o.Batch}", $"{o.Seq}", $"{o.Steps}", $"{config.Layers}", $"{config.Heads}", $"{config.Channels}", $"{config.VocabSize}", $"{config.ContextLength}", $"{Environment.ProcessorCount}"],
                log, failed: "PyTorch comparison failed (install python3-torch libopenblas0-pthread)", skipped: "PyTorch comparison skipped") is not { } doc)
            return null;
        double mm = doc.GetProperty("matmul_gflops").GetDouble(), step = doc.GetProperty("step_ms").GetDouble(), rss = doc.GetProperty("peak_rss_mib").GetDouble();
        log.WriteLine($"PyTorch {doc.GetProperty("torch")} ({doc.GetProperty("threads")} threads, OpenBLAS {doc.GetProperty("openblas_core")}): matmul {mm:F2} GFLOP/s = {mm / r.Machine.FmaGflops:P0} of the FMA peak; " +
                      $"step {step:F0} ms (forward {doc.GetProperty("forward_ms").GetDouble():F0}, backward {doc.GetProperty("backward_ms").GetDouble():F0}, AdamW {doc.GetProperty("adamw_ms").GetDouble():F0}); peak memory (VmHWM) {rss:F0} MiB");
        log.WriteLine($"llm.cs / PyTorch: matmul {r.FastGflops / mm:F2}×, step time {r.StepMs / step:F2}×, peak memory {r.PeakMemoryMiB / rss:F2}×");
        return doc;
    }

    /// <summary>Runs Tools/bench/torch_decode.py: PyTorch's greedy decode with a KV cache and its attention at the same
    /// sizes; returns its JSON, or null (with the reason printed).</summary>
    private static JsonElement? RunTorchDecode(Bench.Options o, Bench.Result r, TextWriter log)
    {
        var c = Models.DecoderConfig.FromPreset(o.DecodeModel);
        var d = r.Decode;
        var a = r.Attention;
        if (RunScript("torch_decode.py",
                [$"{c.Layers}", $"{c.Heads}", $"{c.Channels}", $"{c.VocabSize}", $"{c.ContextLength}", $"{c.FfnWidth}",
                 $"{(d is null ? 0 : o.DecodePrompt)}", $"{(d is null ? 0 : o.DecodeTokens)}",
                 $"{a?.Batch ?? 0}", $"{a?.Seq ?? 0}", $"{a?.Heads ?? 0}", $"{a?.HeadSize ?? 0}", $"{Environment.ProcessorCount}"],
                log, failed: "PyTorch decode/attention comparison failed", skipped: "PyTorch decode comparison skipped") is not { } doc)
            return null;
        if (d is not null && doc.GetProperty("decode") is { ValueKind: JsonValueKind.Object } td)
        {
            double cached = td.GetProperty("cached_tokens_per_s").GetDouble(), uncached = td.GetProperty("uncached_tokens_per_s").GetDouble();
            long tp = td.GetProperty("parameters").GetInt64();
            double limit = r.Machine.ReadGBps * 1e9 / (4.0 * tp);
            log.WriteLine($"PyTorch decode (GPT-2-shaped, {tp / 1e6:F1}M parameters, {doc.GetProperty("threads")} threads): KV cache {cached:F2} tokens/s (prefill {td.GetProperty("cached_prefill_ms").GetDouble():F0} ms) = {cached / limit:P1} of the host's bandwidth limit {limit:F1} tokens/s; " +
                          $"without it {uncached:F2} tokens/s = {uncached / limit:P1}");
            log.WriteLine($"llm.cs / PyTorch decode tokens/s: KV cache {d.CachedTokensPerSecond / cached:F2}×, without it {d.UncachedTokensPerSecond / uncached:F2}×");
        }
        if (a is not null && doc.GetProperty("attention") is { ValueKind: JsonValueKind.Object } ta)
        {
            foreach (var (key, name) in new[] { ("plain", "explicit softmax(QKᵀ/√d)V, probabilities [B, NH, T, T] kept"), ("sdpa", "F.scaled_dot_product_attention") })
            {
                if (ta.GetProperty(key) is not { ValueKind: JsonValueKind.Object } t) { log.WriteLine($"PyTorch attention {name}: {ta.GetProperty(key + "_note").GetString()}"); continue; }
                double ms = t.GetProperty("total_ms").GetDouble();
                log.WriteLine($"PyTorch attention B={a.Batch} T={a.Seq}, {name}: forward {t.GetProperty("forward_ms").GetDouble():F1} ms, backward {t.GetProperty("backward_ms").GetDouble():F1} ms, total {ms:F1} ms " +
                              $"(llm.cs / PyTorch {a.TotalMs / ms:F2}×); peak memory above the start (VmHWM delta) {t.GetProperty("peak_delta_mib").GetDouble():F0} MiB, of it probabilities {t.GetProperty("probs_mib").GetDouble():F0} MiB");
            }
        }
        return doc;
    }

    /// <summary>Runs Tools/bench/<paramref name="script"/> (copied beside llm) with Debian's python3 and parses the one JSON
    /// object it prints; null, with <paramref name="failed"/> or <paramref name="skipped"/> and the reason logged, when
    /// the script fails or there is no python3.</summary>
    private static JsonElement? RunScript(string script, IEnumerable<string> arguments, TextWriter log, string failed, string skipped)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "bench", script));
        foreach (string argument in arguments) psi.ArgumentList.Add(argument);
        try
        {
            using var proc = Process.Start(psi)!;
            string output = proc.StandardOutput.ReadToEnd();
            string error = proc.StandardError.ReadToEnd();
            proc.WaitForExit();
            if (proc.ExitCode == 0) return JsonDocument.Parse(output).RootElement;
            log.WriteLine($"{failed}: {error.Trim().Split('\n').LastOrDefault()}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            log.WriteLine($"{skipped}: /usr/bin/python3 not found ({e.Message})");
        }
        return null;
    }

    /// <summary>The file's text and where its table for <paramref name="backend"/> sits: one table per backend.</summary>
    private static (string Text, string Start, int Begin, int End) Markers(string path, string backend)
    {
        string start = $"<!-- bench:{backend}:start -->", end = $"<!-- bench:{backend}:end -->";
        string text = File.Exists(path) ? File.ReadAllText(path) : throw new FileNotFoundException($"--write-table: {path} does not exist");
        int i = text.IndexOf(start, StringComparison.Ordinal), j = text.IndexOf(end, StringComparison.Ordinal);
        if (i < 0 || j < i) throw new InvalidDataException($"{path}: no '{start}' ... '{end}' markers to replace");
        return (text, start, i, j);
    }

    /// <summary>Replaces the measured table in <paramref name="path"/> so the README's numbers come from a run, not a hand.</summary>
    private static void WriteTable(string path, Bench.Result r, JsonElement? torch, JsonElement? torchDecode)
    {
        var (text, start, i, j) = Markers(path, r.Backend);
        string cpu = r.Machine.Cpu;
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        string torchNote = torch is { } tv
            ? $"PyTorch {tv.GetProperty("torch")} with {tv.GetProperty("threads")} threads, OpenBLAS kernels {tv.GetProperty("openblas_core")} (OPENBLAS_CORETYPE={Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE") ?? "unset"})"
            : "PyTorch not run";
        var m = r.Machine;
        string peakNote = $"measured fp32 FMA peak {m.FmaGflops.ToString("F0", inv)} GFLOP/s ({m.Isa}, all cores), memory read bandwidth {m.ReadGBps.ToString("F1", inv)} GB/s";
        string Frac(double x) => (100 * x).ToString("F0", inv) + "%";
        string TFrac(string prop, double peak) => torch is { } t ? Frac(t.GetProperty(prop).GetDouble() / peak) : "—";
        double stepFlops = 6.0 * r.Parameters * r.Batch * r.Seq;
        string torchStepGflops = torch is { } ts ? (stepFlops / (ts.GetProperty("step_ms").GetDouble() / 1000) / 1e9).ToString("F1", inv) + " GFLOP/s" : "—";
        string torchStepFrac = torch is { } tf ? Frac(stepFlops / (tf.GetProperty("step_ms").GetDouble() / 1000) / 1e9 / m.FmaGflops) : "—";
        var mem = r.Memory;
        string T(string prop, string format, string unit) => torch is { } t ? t.GetProperty(prop).GetDouble().ToString(format, inv) + unit : "—";
        var rows = new List<string>
        {
            r.Device is null ? $"Machine: {cpu}, {Environment.ProcessorCount} cores, {peakNote}; {DateTime.UtcNow:yyyy-MM-dd}; {torchNote}."
                             : $"Device: {r.Device}; host {cpu}, {Environment.ProcessorCount} cores, {peakNote}; {DateTime.UtcNow:yyyy-MM-dd}; {torchNote}.",
            "",
            $"| measure | llm.cs `{r.Backend}` | PyTorch CPU |",
            "|---|---|---|",
            $"| matmul {r.MatMulSize}³, CPU scalar definition | {r.NaiveGflops.ToString("F2", inv)} GFLOP/s | — |",
            $"| matmul {r.MatMulSize}³, `{r.Backend}` | {r.FastGflops.ToString("F1", inv)} GFLOP/s | {T("matmul_gflops", "F1", " GFLOP/s")} |",
            $"| — of the FMA peak | {Frac(r.MatMulFractionOfPeak)} | {TFrac("matmul_gflops", m.FmaGflops)} |",
            $"| {r.Preset} ({r.Parameters / 1e6:F1}M) training step, B={r.Batch} T={r.Seq} | {r.StepMs:F0} ms | {T("step_ms", "F0", " ms")} |",
            $"| — forward | {r.ForwardMs:F0} ms | {T("forward_ms", "F0", " ms")} |",
            $"| — backward (with gradient clipping) | {r.BackwardMs:F0} ms | {T("backward_ms", "F0", " ms")} |",
            $"| — AdamW | {r.AdamWMs:F0} ms | {T("adamw_ms", "F0", " ms")} |",
            $"| tokens/s | {r.TokensPerSecond:F0} | {(torch is { } t2 ? (r.Batch * r.Seq / (t2.GetProperty("step_ms").GetDouble() / 1000)).ToString("F0", inv) : "—")} |",
            $"| step 6·P·B·T flops per second | {r.StepGflops.ToString("F1", inv)} GFLOP/s | {torchStepGflops} |",
            $"| — of the FMA peak | {Frac(r.StepFractionOfPeak)} | {torchStepFrac} |",
            $"| AdamW 7·4·P bytes per second, of the read bandwidth | {r.AdamWGBps.ToString("F1", inv)} GB/s, {Frac(r.AdamWFractionOfBandwidth)} | {(torch is { } ta ? (7.0 * 4 * r.Parameters / (ta.GetProperty("adamw_ms").GetDouble() / 1000) / 1e9).ToString("F1", inv) + " GB/s" : "—")} |",
            $"| peak resident set (VmHWM, host) | {r.PeakMemoryMiB:F0} MiB | {T("peak_rss_mib", "F0", " MiB")} |",
            $"| — at the highest sample ({mem.Phase}) | parameters {mem.ParametersMiB:F0}, gradients {mem.GradientsMiB:F0}, AdamW m+v {mem.AdamWMiB:F0}, tape pool {mem.TapePoolMiB:F0} (logits/probs/dLogits {mem.LogitsMiB:F0}), other managed {mem.GcOtherMiB:F0}, native/runtime {mem.NativeMiB:F0} MiB | — |",
        };
        if (r.Decode is { } d)
        {
            var td = torchDecode is { } tdv && tdv.GetProperty("decode") is { ValueKind: JsonValueKind.Object } x ? x : (JsonElement?)null;
            string TD(string prop) => td is { } t ? t.GetProperty(prop).GetDouble().ToString("F2", inv) + " tokens/s" : "—";
            string TDFrac(string prop) => td is { } t ? Frac(t.GetProperty(prop).GetDouble() / (m.ReadGBps * 1e9 / (4.0 * t.GetProperty("parameters").GetInt64()))) : "—";
            string limit = d.BandwidthLimitTokensPerSecond is { } l ? $"{l.ToString("F1", inv)} tokens/s" : "the device's (not measured)";
            rows.Add($"| greedy decode {d.Preset} ({d.Parameters / 1e6:F1}M), batch 1, prompt {d.PromptTokens} + {d.NewTokens} tokens, KV cache | {d.CachedTokensPerSecond.ToString("F2", inv)} tokens/s | {TD("cached_tokens_per_s")} |");
            rows.Add($"| — of the read-bandwidth limit (bandwidth / 4·P = {limit}) | {(d.CachedFractionOfLimit is { } cf ? Frac(cf) : "—")} | {TDFrac("cached_tokens_per_s")} |");
            rows.Add($"| — without the KV cache | {d.UncachedTokensPerSecond.ToString("F2", inv)} tokens/s | {TD("uncached_tokens_per_s")} |");
        }
        if (r.Attention is { } at)
        {
            JsonElement? Ta(string key) => torchDecode is { } tdv && tdv.GetProperty("attention") is { ValueKind: JsonValueKind.Object } x
                && x.GetProperty(key) is { ValueKind: JsonValueKind.Object } y ? y : null;
            string Ms(string key) => Ta(key) is { } t ? t.GetProperty("total_ms").GetDouble().ToString("F0", inv) + " ms" : "—";
            string Mem(string key) => Ta(key) is { } t ? t.GetProperty("peak_delta_mib").GetDouble().ToString("F0", inv) + " MiB (VmHWM delta)" : "—";
            rows.Add($"| attention forward+backward, causal, B={at.Batch} T={at.Seq} NH={at.Heads} hs={at.HeadSize} | {at.TotalMs.ToString("F0", inv)} ms | plain softmax(QKᵀ/√d)V {Ms("plain")}; SDPA {Ms("sdpa")} |");
            rows.Add($"| — memory kept for backward | rowMax+rowSum {(at.SavedBytes / 1024.0).ToString("F0", inv)} KiB (probabilities would be {(at.ProbsBytes / 1048576.0).ToString("F0", inv)} MiB) | plain {Mem("plain")}; SDPA {Mem("sdpa")} |");
        }
        if (r.Device is not null) rows.Add($"| host↔device bytes per step (batch uploaded once) | {r.BytesMovedPerStep:N0} | — |");
        if (r.PerStep is { } c) rows.Add($"| dispatches, barriers, submits per step | {c.Dispatches:N0}, {c.Barriers:N0}, {c.Submits:N0} | — |");
        string table = string.Join('\n', rows);
        IO.AtomicFile.WriteAllText(path, text[..(i + start.Length)] + "\n" + table + "\n" + text[j..]);
    }
}
