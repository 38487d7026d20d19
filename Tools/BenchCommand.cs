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
        var table = Cli.Opt<string?>("--write-table", "replace the table between <!-- bench:BACKEND:start --> and <!-- bench:BACKEND:end --> in this file (the README)");
        var cmd = new Command("bench", "Measure matmul GFLOP/s, a GPT-2 training step and peak memory.")
        { preset, batch, seq, steps, size, skipNaive, torch, json, table, bandwidth };
        cmd.SetAction(p =>
        {
            // checked before a device opens: a value that cannot run is refused at once, not after minutes of measuring
            var o = new Bench.Options(p.GetValue(preset)!, p.GetValue(batch), p.GetValue(seq), p.GetValue(steps), p.GetValue(size), p.GetValue(skipNaive),
                BandwidthMiB: p.GetValue(bandwidth)).Validate();
            bool asJson = p.GetValue(json);
            var log = asJson ? TextWriter.Null : stdout;
            using var backend = Cli.CreateBackend(p, log);
            // bench always names the device, its driver and limits (--verbose has printed them already)
            if (backend is Vulkan.VulkanBackend vk && !p.GetValue(Cli.VerboseOption)) log.WriteLine(vk.Info.ToString());
            if (p.GetValue(table) is { } target) Markers(target, backend.Name);  // fail before minutes of measuring
            var result = Bench.Run(backend, o, log);
            JsonElement? torchResult = p.GetValue(torch) ? RunTorch(o, result, log) : null;
            if (p.GetValue(table) is { } readme) WriteTable(readme, result, torchResult);
            // NaN where a measure was skipped (--skip-naive): written as the string "NaN", which plain JSON numbers cannot say
            if (asJson) stdout.WriteLine(JsonSerializer.Serialize(new { llm = result, torch = torchResult },
                new JsonSerializerOptions { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the PyTorch twin of the benchmark; returns its JSON, or null (with the reason printed) when it cannot run.</summary>
    private static JsonElement? RunTorch(Bench.Options o, Bench.Result r, TextWriter log)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "bench", "torch_gpt2_step.py");
        var config = Models.DecoderConfig.FromPreset(o.Preset);
        var psi = new ProcessStartInfo("/usr/bin/python3")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
            ArgumentList = { script, $"{o.MatMulSize}", $"{o.Batch}", $"{o.Seq}", $"{o.Steps}", $"{config.Layers}", $"{config.Heads}", $"{config.Channels}", $"{config.VocabSize}", $"{config.ContextLength}", $"{Environment.ProcessorCount}" },
        };
        try
        {
            using var proc = Process.Start(psi)!;
            string output = proc.StandardOutput.ReadToEnd();
            string error = proc.StandardError.ReadToEnd();
            proc.WaitForExit();
            if (proc.ExitCode != 0)
            {
                log.WriteLine($"PyTorch comparison failed (install python3-torch libopenblas0-pthread): {error.Trim().Split('\n').LastOrDefault()}");
                return null;
            }
            var doc = JsonDocument.Parse(output).RootElement;
            double mm = doc.GetProperty("matmul_gflops").GetDouble(), step = doc.GetProperty("step_ms").GetDouble(), rss = doc.GetProperty("peak_rss_mib").GetDouble();
            log.WriteLine($"PyTorch {doc.GetProperty("torch")} ({doc.GetProperty("threads")} threads, OpenBLAS {doc.GetProperty("openblas_core")}): matmul {mm:F2} GFLOP/s = {mm / r.Machine.FmaGflops:P0} of the FMA peak; " +
                          $"step {step:F0} ms (forward {doc.GetProperty("forward_ms").GetDouble():F0}, backward {doc.GetProperty("backward_ms").GetDouble():F0}, AdamW {doc.GetProperty("adamw_ms").GetDouble():F0}); peak memory (VmHWM) {rss:F0} MiB");
            log.WriteLine($"llm.cs / PyTorch: matmul {r.FastGflops / mm:F2}×, step time {r.StepMs / step:F2}×, peak memory {r.PeakMemoryMiB / rss:F2}×");
            return doc;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            log.WriteLine($"PyTorch comparison skipped: /usr/bin/python3 not found ({e.Message})");
            return null;
        }
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
    private static void WriteTable(string path, Bench.Result r, JsonElement? torch)
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
        if (r.Device is not null) rows.Add($"| host↔device bytes per step (batch uploaded once) | {r.BytesMovedPerStep:N0} | — |");
        if (r.PerStep is { } c) rows.Add($"| dispatches, barriers, submits per step | {c.Dispatches:N0}, {c.Barriers:N0}, {c.Submits:N0} | — |");
        string table = string.Join('\n', rows);
        IO.AtomicFile.WriteAllText(path, text[..(i + start.Length)] + "\n" + table + "\n" + text[j..]);
    }
}
