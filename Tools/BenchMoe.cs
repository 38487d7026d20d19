using System.Diagnostics;
using Llm.Autograd;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Llm.Training;

namespace Llm.Tools;

/// <summary>
/// bench's mixture-of-experts row: training steps of an MoE preset (switch-tiny) against the dense model of the same
/// active parameters (the same config without <see cref="DecoderConfig.Moe"/>: a top-1 token passes one expert FFN of
/// the dense FFN's shape, plus the router), on the chosen backend: tokens/s, the memory of parameters, gradients, AdamW
/// moments and the tape's activations, and the fraction of (token, choice) slots dropped at capacity.
/// </summary>
public static class BenchMoe
{
    /// <param name="ActiveParameters">what one token's forward uses: all but the (E − k) unchosen experts of each MoE layer.</param>
    /// <param name="MemoryMiB">parameters + gradients + AdamW m, v + the tape's pooled activations, MiB (allocations, not resident).</param>
    /// <param name="DroppedFraction">slots of the timed steps whose expert was full; 0 for the dense model.</param>
    public sealed record Row(string Model, long Parameters, long ActiveParameters, double StepMs, double TokensPerSecond,
        double ParametersMiB, double GradientsMiB, double AdamWMiB, double ActivationsMiB, double MemoryMiB, double DroppedFraction);

    /// <summary>The MoE preset and its dense twin, each warmed up by one step, then <paramref name="steps"/> timed.</summary>
    public sealed record MoeResult(string Preset, int Batch, int Seq, Row Moe, Row Dense);

    public static MoeResult Run(IBackend backend, string preset, int batch, int seq, int steps, TextWriter log)
    {
        var moe = DecoderConfig.FromPreset(preset);
        if (moe.Moe is null) throw new ArgumentException($"--moe-preset '{preset}' has no mixture of experts (try switch-tiny or gshard-tiny)");
        seq = Math.Min(seq, moe.ContextLength);
        var moeRow = Measure(backend, preset, moe, batch, seq, steps);
        var denseRow = Measure(backend, preset + " dense", moe with { Moe = null }, batch, seq, steps);
        foreach (var r in new[] { moeRow, denseRow })
            log.WriteLine($"{r.Model}: {r.Parameters / 1e6:F2}M parameters ({r.ActiveParameters / 1e6:F2}M active), B={batch} T={seq}: step {r.StepMs:F0} ms, " +
                          $"{r.TokensPerSecond:F0} tokens/s; memory {r.MemoryMiB:F1} MiB (parameters {r.ParametersMiB:F1}, gradients {r.GradientsMiB:F1}, " +
                          $"AdamW {r.AdamWMiB:F1}, activations {r.ActivationsMiB:F1}); dropped {r.DroppedFraction:P1} of the slots");
        return new MoeResult(preset, batch, seq, moeRow, denseRow);
    }

    private static Row Measure(IBackend backend, string name, DecoderConfig config, int batch, int seq, int steps)
    {
        const double MiB = 1024.0 * 1024.0;
        var model = new Decoder(backend, config);
        model.InitializeWeights(1);
        var opt = new AdamW(model.Parameters);
        using var tape = new Tape(backend);
        var rng = new Common.Rng(2);
        int bt = batch * seq;
        var inputs = new int[bt];
        var targets = new int[bt];
        for (int i = 0; i < bt; i++) { inputs[i] = rng.NextInt(config.VocabSize); targets[i] = rng.NextInt(config.VocabSize); }
        var tgt = backend.Allocate(DType.I32, [batch, seq], "targets");
        backend.Upload<int>(targets, tgt);
        var times = new List<double>();
        long routed = 0, dropped = 0;
        for (int s = 0; s < steps + 1; s++)   // step 0 warms up the JIT, the pipelines and the tape's pool
        {
            var sw = Stopwatch.StartNew();
            var output = model.Forward(tape, new TokenBatch(inputs, targets, batch, seq));
            var losses = tape.CrossEntropy(output.Logits, tgt);
            var dLosses = tape.Temp(losses.Value.DType, losses.Shape, "dlosses");
            backend.Fill(dLosses, 1.0 / bt);
            var seeds = new List<(Var, Tensor)> { (losses, dLosses) };
            foreach (var aux in output.Auxiliary)
            {
                var d = tape.Temp(aux.Value.Value.DType, aux.Value.Shape, "d" + aux.Name);
                backend.Fill(d, aux.Weight);
                seeds.Add((aux.Value, d));
            }
            model.Parameters.ZeroGrad();
            tape.Backward(seeds);
            AdamW.ClipGradientNorm(model.Parameters, 1.0);
            opt.Update(1e-4f);
            backend.Synchronize();
            if (s > 0)
            {
                times.Add(sw.Elapsed.TotalMilliseconds);
                foreach (var slots in output.RoutingSlots)
                {
                    var host = new int[slots.Length];
                    backend.Download<int>(slots, host);
                    routed += host.Length;
                    dropped += host.Count(x => x < 0);
                }
            }
            tape.Reset();
        }
        times.Sort();
        double step = times[times.Count / 2];
        double values = model.Parameters.Arenas.Sum(x => (long)x.Values.Length * x.Values.DType.Size()) / MiB;
        double grads = model.Parameters.Arenas.Sum(x => x.Grads is { } g ? (long)g.Length * g.DType.Size() : 0) / MiB;
        double adam = opt.M.Concat(opt.V).Sum(x => x is null ? 0 : (long)x.Length * x.DType.Size()) / MiB;
        double activations = tape.PooledBytes / MiB;
        long total = model.Parameters.Count, active = total;
        if (config.Moe is { } m)
        {
            long perExpert = (long)config.Channels * config.FfnWidth * (config.Gated ? 3 : 2);
            int moeLayers = Enumerable.Range(0, config.Layers).Count(m.IsMoeLayer);
            active -= moeLayers * (long)(m.Experts - m.TopK) * perExpert;
        }
        backend.Release(tgt);
        return new Row(name, total, active, step, bt / (step / 1000), values, grads, adam, activations, values + grads + adam + activations,
            routed == 0 ? 0 : (double)dropped / routed);
    }
}
