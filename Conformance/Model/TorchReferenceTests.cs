// The model against PyTorch. Fixtures/torch/gpt2_tiny.safetensors (rerun: /usr/bin/python3
// Tools/fixtures/torch_gpt2_fixtures.py; its header says what it holds) is a tiny random GPT-2 (V=67, ctx=13, L=2,
// NH=3, C=27; B=2, T=11) with its logits, losses, every gradient, and the weights and AdamW moments after three
// Trainer steps, computed by torch in float64 and rounded to f32 once. The other tests compare the project with
// itself; these hold its definitions (GeLU's constant, the biased variance, 1/√hs, ε outside AdamW's root, decay on
// matrices only, the clip, the schedule) to an implementation written outside it, on every subject backend, on the
// scalar CPU definitions in F32, and on the F64 oracle. Shapes: B batch, T time, V vocabulary.
using Llm.Autograd;
using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Llm.Training;
using Xunit;
using Xunit.Abstractions;

namespace Llm.Conformance.Model;

public sealed class TorchReferenceTests(ITestOutputHelper output)
{
    /// <summary>One backend's results on the fixture, widened to double.</summary>
    private sealed record Run(double[] Logits, double[] Losses, double Loss, Dictionary<string, double[]> Grads,
        double[] GradNorms, double[] StepLosses,
        Dictionary<string, double[]> Weights, Dictionary<string, double[]> M, Dictionary<string, double[]> V);

    /// <summary>
    /// Per element |a − b| ≤ tol·(|b| + rms(b)), i.e. rtol = tol and atol = tol·rms(b): an element that cancels to near
    /// zero is held to its tensor's scale rather than to its own. The worst element measured on every backend
    /// (cpu-fast, cpu-scalar, lavapipe's three variants), as fractions of these bounds: logits 0.45, losses 0.28,
    /// gradients 0.23, norms 0.06, weights 0.27, m 0.29, v 0.21; in F64 0.41, 0.23, 0.48, 0.14, 0.37, 0.18, 0.34.
    /// <para>f32 against the exact values: each f32 operation rounds by ≤ u = 6e-8; a dot product of K ≤ 4C = 108
    /// terms errs by ~√K·u ≈ 6e-7 of its terms' scale, LayerNorm divides the error of x − mean by σ, and ~20 such ops
    /// chain from the embeddings to the logits: logits 4e-6 (measured ≤ 1.9e-6 of |b| + rms). Losses 1e-6: the
    /// log-sum-exp of ~5 nats carries the logits' absolute error. Gradients 2e-5: the backward's differences of
    /// near-equal sums (LayerNorm's dx, softmax's p(dy − Σp·dy)) cost about a digit. The norm 1e-6: one sum of 2·10⁴
    /// squares. After three steps the weights 2e-6: they move by Σ lr_s = 4e-3 and the update lr·m̂/(√v̂ + ε) inherits
    /// the gradients' relative error (≤ 1e-4 even for small ones), ≤ 4e-7 absolute; m and v 3e-5: three clipped
    /// gradients, and their squares, summed.</para>
    /// <para>What they catch: GeLU's 0.044715 → 0.0447 moves GeLU by up to 8.7e-6 (near |x| ≈ 1.8; its inputs have
    /// std ~1.5 here), ~4e-6 of the MLP output's scale, and the logits by 1.4e-5 of |b| + rms: 3.5× the bound
    /// (<see cref="AWrongGeluConstantIsCaught"/>). The wrong definitions of <see cref="AWrongDefinitionIsCaught"/>
    /// fail by 28× (LayerNorm ε 1e-6), 160× (no weight decay) and 5·10³× or more (the rest): an unbiased
    /// variance scales LayerNorm's output by √(26/27), 1/hs divides the scores by 3, no decay leaves lr·0.1·|w| ≈
    /// 6e-5 a step.</para>
    /// <para>F64 (the definition) against the file: the file rounds to f32 (≤ 2⁻²⁴ of |b|): 1e-7. m and v 1e-6:
    /// torch's clip_grad_norm_ scales by max/(norm + 1e-6), the project by (float)(max/norm), relative 1e-6/norm ≈
    /// 1.6e-7 in m and twice that in v (the weights do not see it: m̂/√v̂ does not depend on the gradients'
    /// scale).</para>
    /// </summary>
    [Flags]
    private enum Part { Forward = 1, Backward = 2, Steps = 4, All = 7 }

    private sealed record Bounds(double Logits, double Losses, double Grads, double Norms, double Weights, double M, double V);

    private static readonly Bounds F32 = new(Logits: 4e-6, Losses: 1e-6, Grads: 2e-5, Norms: 1e-6, Weights: 2e-6, M: 3e-5, V: 3e-5);
    private static readonly Bounds F64 = new(Logits: 1e-7, Losses: 1e-7, Grads: 1e-7, Norms: 1e-7, Weights: 1e-7, M: 1e-6, V: 1e-6);

    public static TheoryData<string> Subjects()
    {
        var names = new TheoryData<string> { "cpu-scalar", "cpu-scalar-f64" };
        foreach (var s in Backends.Subjects) names.Add(s.Name);
        return names;
    }

    private static (IBackend Backend, DType DType) Open(string subject) => subject switch
    {
        "cpu-scalar" => (Oracle.Backend, DType.F32),      // the scalar definitions, in the training type
        "cpu-scalar-f64" => (Oracle.Backend, DType.F64),  // the oracle every other conformance test trusts
        _ => (Backends.Subjects.Single(s => s.Name == subject).Backend, DType.F32),
    };

    [Theory]
    [MemberData(nameof(Subjects))]
    public void LogitsLossesAndGradientsMatchPyTorch(string subject) => AssertMatches(subject, Part.Forward | Part.Backward);

    [Theory]
    [MemberData(nameof(Subjects))]
    public void ThreeTrainerStepsMatchPyTorch(string subject) => AssertMatches(subject, Part.Steps);

    private void AssertMatches(string subject, Part parts)
    {
        var (backend, dtype) = Open(subject);
        var mismatches = Check(Fixture.Value, Execute(backend, dtype, Fixture.Value), dtype == DType.F64 ? F64 : F32, parts, out var report);
        output.WriteLine(report);
        if (backend is Llm.Vulkan.VulkanBackend vk) Vulkan.VulkanTestDevice.AssertClean(vk);
        Assert.True(mismatches.Count == 0, $"{subject} differs from PyTorch:\n{string.Join("\n", mismatches)}");
    }

    /// <summary>The harness's own test: a GeLU whose cubic coefficient is 0.0447 (every other op the fast CPU
    /// backend's) must fail the forward check, and the same backend without the fault must pass everything.</summary>
    [Fact]
    public void AWrongGeluConstantIsCaught()
    {
        var f = Fixture.Value;
        var wrong = Check(f, Execute(new FaultyBackend(Fault.WrongGeluConstant), DType.F32, f), F32, Part.Forward, out var report);
        output.WriteLine(report);
        Assert.True(wrong.Count > 0, "GeLU with 0.0447 instead of 0.044715 passed the PyTorch fixture");
        Assert.Empty(Check(f, Execute(new FaultyBackend(Fault.None), DType.F32, f), F32, Part.All, out _));
    }

    /// <summary>Other wrong definitions, each injected through what a correct backend is given, so the result is
    /// exactly (or, for the variance, to within ε) what a backend with that bug computes: all must fail.</summary>
    [Theory]
    [InlineData("attention scaled by 1/hs")]        // q's weights and bias ÷ √hs: q·k/√hs becomes q·k/hs
    [InlineData("LayerNorm's unbiased variance")]   // gains × √((C−1)/C): x̂ over √(var·C/(C−1) + ε), ε aside
    [InlineData("LayerNorm ε 1e-6")]
    [InlineData("no gradient clipping")]
    [InlineData("no weight decay")]
    [InlineData("AdamW ε 1e-8")]
    [InlineData("β2 0.999")]
    public void AWrongDefinitionIsCaught(string mutation)
    {
        var f = Fixture.Value;
        int c = f.Config.Channels;
        double[] Scaled(double[] x, Func<int, bool> which, double by) => x.Select((v, i) => which(i) ? v * by : v).ToArray();
        var wrong = mutation switch
        {
            "attention scaled by 1/hs" => f with { Read = n => n.StartsWith("weights.") && n.Contains("c_attn")
                ? Scaled(f.Read(n), i => i % (3 * c) < c, 1 / Math.Sqrt(f.Config.HeadSize)) : f.Read(n) },
            "LayerNorm's unbiased variance" => f with { Read = n => n.StartsWith("weights.") && n.Contains("ln_") && n.EndsWith(".weight")
                ? Scaled(f.Read(n), _ => true, Math.Sqrt((c - 1.0) / c)) : f.Read(n) },
            "LayerNorm ε 1e-6" => f with { Config = f.Config with { LayerNormEpsilon = 1e-6f } },
            "no gradient clipping" => f with { Options = f.Options with { GradientClip = 0 } },
            "no weight decay" => f with { Options = f.Options with { WeightDecay = 0 } },
            "AdamW ε 1e-8" => f with { Options = f.Options with { Epsilon = 1e-8f } },
            "β2 0.999" => f with { Options = f.Options with { Beta2 = 0.999f } },
            _ => throw new ArgumentException(mutation),
        };
        var failures = Check(f, Execute(new CpuBackend(fastPaths: true), DType.F32, wrong), F32, Part.All, out var report);
        output.WriteLine($"{mutation}: {failures.Count} tensors fail\n{report}");
        Assert.True(failures.Count > 0, $"{mutation} passed the PyTorch fixture");
    }

    // ---- the fixture ------------------------------------------------------------------------------------------------

    private sealed record FixtureData(DecoderConfig Config, int Batch, int Time, int Steps, OptimizerOptions Options,
        int[][] Tokens, int[][] Targets, Func<string, double[]> Read, IReadOnlyList<ParameterSpec> Specs);

    private static readonly Lazy<FixtureData> Fixture = new(LoadFixture);

    private static string FixturePath => Path.Combine(AppContext.BaseDirectory, "Fixtures", "torch", "gpt2_tiny.safetensors");

    private static FixtureData LoadFixture()
    {
        using var file = SafeTensorsFile.Read(FixturePath);
        var meta = file.Metadata;
        int Int(string key) => int.Parse(meta[key], System.Globalization.CultureInfo.InvariantCulture);
        float Float(string key) => float.Parse(meta[key], System.Globalization.CultureInfo.InvariantCulture);
        var config = new DecoderConfig
        {
            VocabSize = Int("vocab_size"), ContextLength = Int("n_positions"), Layers = Int("n_layer"), Heads = Int("n_head"),
            Channels = Int("n_embd"), LayerNormEpsilon = Float("layer_norm_epsilon"),
        };
        var options = new OptimizerOptions
        {
            LearningRate = Float("learning_rate"), WarmupSteps = Int("warmup_steps"), Beta1 = Float("beta1"), Beta2 = Float("beta2"),
            Epsilon = Float("epsilon"), WeightDecay = Float("weight_decay"), GradientClip = Float("gradient_clip"),
        };
        int steps = Int("steps"), b = Int("batch"), t = Int("time");
        var all = new Dictionary<string, double[]>();
        foreach (var name in file.Names.Where(n => file.Info(n).DType == DType.F32))
        {
            var values = new double[file.Info(name).ElementCount];
            file.ReadDouble(name, values);  // verifies the tensor's CRC-32
            all[name] = values;
        }
        int[][] Ids(string name)
        {
            var ids = new int[steps * b * t];
            file.ReadInt32(name, ids);
            return Enumerable.Range(0, steps).Select(s => ids[(s * b * t)..((s + 1) * b * t)]).ToArray();
        }
        return new(config, b, t, steps, options, Ids("tokens"), Ids("targets"),
            name => all.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"{FixturePath}: no tensor '{name}'"),
            config.ParameterSpecs().ToList());
    }

    // ---- running a backend ------------------------------------------------------------------------------------------

    /// <summary>Batch 0's forward and backward (d(mean loss)/dp, as the Trainer seeds it), then three Trainer steps
    /// from the fixture's initial weights on batches 0, 1, 2.</summary>
    private static Run Execute(IBackend backend, DType dtype, FixtureData f)
    {
        var model = new Decoder(backend, f.Config, dtype);
        foreach (var p in model.Parameters.All) backend.UploadDoubles(f.Read("weights." + p.Name), p.Value);

        double[] logits, losses;
        int counted = f.Targets[0].Count(t => t != Trainer.IgnoreIndex);
        using (var tape = new Tape(backend))
        {
            var ids = tape.Temp(DType.I32, [f.Batch, f.Time]);
            var tgt = tape.Temp(DType.I32, [f.Batch, f.Time]);
            backend.Upload<int>(f.Tokens[0], ids);
            backend.Upload<int>(f.Targets[0], tgt);
            var logitsVar = model.Forward(tape, ids);                    // [B, T, V]
            var lossesVar = tape.CrossEntropy(logitsVar, tgt);           // [B*T]
            model.Parameters.ZeroGrad();
            var dLosses = tape.Temp(dtype, lossesVar.Shape);
            backend.Fill(dLosses, 1.0 / counted);                        // d(mean)/d(loss_n)
            tape.Backward(lossesVar, dLosses);
            logits = OpCheck.Download(backend, logitsVar.Value);
            losses = OpCheck.Download(backend, lossesVar.Value);
        }
        double loss = losses.Sum() / counted;
        var grads = model.Parameters.All.ToDictionary(p => p.Name, p => OpCheck.Download(backend, p.Grad!));

        var trainer = new Trainer(model, f.Options, totalSteps: f.Steps);
        var steps = Enumerable.Range(0, f.Steps).Select(s => trainer.Step([(f.Tokens[s], f.Targets[s])], f.Batch, f.Time)).ToList();
        return new(logits, losses, loss, grads, steps.Select(s => s.GradientNorm).ToArray(), steps.Select(s => s.Loss).ToArray(),
            model.Parameters.All.ToDictionary(p => p.Name, p => OpCheck.Download(backend, p.Value)),
            model.Parameters.All.ToDictionary(p => p.Name, p => OpCheck.Download(backend, trainer.Optimizer.MOf(p))),
            model.Parameters.All.ToDictionary(p => p.Name, p => OpCheck.Download(backend, trainer.Optimizer.VOf(p))));
    }

    // ---- comparing --------------------------------------------------------------------------------------------------

    /// <summary>Every element of every tensor against the fixture; returns one line per failing tensor (its worst
    /// element, index and both values) and, in <paramref name="report"/>, each tensor's worst |a − b| and its ratio to
    /// the bound.</summary>
    private static List<string> Check(FixtureData f, Run run, Bounds bounds, Part parts, out string report)
    {
        var failures = new List<string>();
        var cfg = f.Config;
        var context = new CheckContext([]);
        // the harness's comparison: each element within rtol·(|b| + RMS(b)), which implies NMSE ≤ 4·rtol² (not binding)
        void One(string name, int[] shape, double[] actual, double[] expected, double rtol)
        {
            try { Compare.Check(context, "PyTorch fixture", "subject", name, shape, actual, expected, new Tolerance(4 * rtol * rtol, rtol, "against PyTorch"), "gpt2_tiny.safetensors"); }
            catch (OpCheckException e) { failures.Add(e.Message.Split('\n')[0]); }
        }
        if (parts.HasFlag(Part.Forward))
        {
            One("logits", [f.Batch, f.Time, cfg.VocabSize], run.Logits, f.Read("logits"), bounds.Logits);
            One("losses", [f.Batch, f.Time], run.Losses, f.Read("losses"), bounds.Losses);
            One("loss", [1], [run.Loss], f.Read("loss"), bounds.Losses);
        }
        if (parts.HasFlag(Part.Backward))
            foreach (var s in f.Specs) One("grads." + s.Name, s.Shape, run.Grads[s.Name], f.Read("grads." + s.Name), bounds.Grads);
        if (parts.HasFlag(Part.Steps))
        {
            One("grad_norms", [f.Steps], run.GradNorms, f.Read("grad_norms"), bounds.Norms);
            One("step_losses", [f.Steps], run.StepLosses, f.Read("step_losses"), bounds.Losses);
            foreach (var s in f.Specs)
            {
                One("step3.weights." + s.Name, s.Shape, run.Weights[s.Name], f.Read("step3.weights." + s.Name), bounds.Weights);
                One("step3.m." + s.Name, s.Shape, run.M[s.Name], f.Read("step3.m." + s.Name), bounds.M);
                One("step3.v." + s.Name, s.Shape, run.V[s.Name], f.Read("step3.v." + s.Name), bounds.V);
            }
        }
        report = string.Join("\n", context.Worst.Select(w => $"  {w.Buffer,-34} worst {w.ElementRatio:F3} of bound (rtol {w.Tolerance.Element:E0})"));
        return failures;
    }
}
