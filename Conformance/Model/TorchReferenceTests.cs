// The model against PyTorch: Fixtures/torch/gpt2_tiny.safetensors, written by Tools/fixtures/torch_gpt2_fixtures.py
// (its header says how to rerun it), holds a tiny random GPT-2 (V=67, ctx=13, L=2, NH=3, C=27; B=2, T=11), its
// logits, losses and every gradient, and the weights and AdamW moments after three Trainer steps, all computed by
// torch in float64 and rounded to f32 once. Every other test compares the project with itself; these hold its
// definitions (GeLU's constant, LayerNorm's biased variance, 1/√hs, ε outside AdamW's root, decay on matrices only,
// the clip) to an implementation written outside it. Shapes: B batch, T time, V vocabulary, P one parameter's size.
using Llm.Autograd;
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
        double[] GradNorms, double[] StepLosses, Dictionary<string, double[]> Weights, Dictionary<string, double[]> M, Dictionary<string, double[]> V);

    /// <summary>
    /// Per element |a − b| ≤ rtol·(|b| + rms(b)): rtol of the element's own size plus rtol of its tensor's RMS, so an
    /// element that cancels to near zero is held to its tensor's scale, not to its own. One bound per quantity:
    /// <para>f32 against the exact value: each f32 operation rounds by ≤ ε = 6e-8 relative; a dot product of K ≤ 108
    /// terms errs by ~√K·ε ≈ 6e-7 of its terms' scale, and two blocks of LayerNorm (which divides by σ, amplifying
    /// the error of x − mean by |x|/σ), softmax and residual adds compound ~20 of those. Measured worst errors sit 3–10×
    /// below each bound (see the README blurb of the fixture script). The gradients pass through the backward's
    /// differences of near-equal sums (LayerNorm's dx, softmax's p(dy − Σp·dy)) and lose about one more digit.
    /// After three AdamW steps a weight has moved by ≲ 3·lr = 3e-2; its error is lr·δ(m̂/√v̂), where the ratio's
    /// relative error follows the gradient's, so 1e-5 of the weight's scale.</para>
    /// <para>Why these catch a wrong definition: GeLU's 0.044715 → 0.0447 moves GeLU's output by up to 2e-4
    /// relative and the logits by ~1e-5 of their RMS (≥ 10× the bound, <see cref="AWrongGeluConstantIsCaught"/>);
    /// an unbiased variance scales every LayerNorm output by √(26/27), 2e-2; 1/hs for 1/√hs triples the attention
    /// scores; ε = 1e-6 inside the root changes m̂/√v̂ by ~1/(2√v̂·1e6)… ≥ 1e-3 for the common |g| ≤ 1e-3; decay
    /// on a bias or none on a matrix moves it by lr·0.1·|w| ≈ 1e-4 of |w|.</para>
    /// <para>F64 (the definition) against the file: the file rounds to f32 (≤ 2⁻²⁴ relative) and torch's
    /// clip_grad_norm_ scales by max/(norm + 1e-6), the project by (float)(max/norm): 1e-6/norm ≈ 2e-7 in every
    /// clipped gradient, twice that in v; so 1e-7 before the optimizer and 1e-6 after it.</para>
    /// </summary>
    private sealed record Bounds(double Logits, double Losses, double Grads, double Norms, double Weights, double M, double V);

    private static readonly Bounds F32 = new(Logits: 4e-6, Losses: 4e-6, Grads: 1e-4, Norms: 1e-5, Weights: 1e-5, M: 1e-4, V: 2e-4);
    private static readonly Bounds F64 = new(Logits: 1e-7, Losses: 1e-7, Grads: 1e-7, Norms: 1e-6, Weights: 1e-6, M: 1e-6, V: 1e-6);

    public static TheoryData<string> Subjects()
    {
        var names = new TheoryData<string> { "cpu-scalar", "cpu-scalar-f64" };
        foreach (var s in Backends.Subjects) names.Add(s.Name);
        return names;
    }

    private static (IBackend Backend, DType DType) Open(string subject) => subject switch
    {
        "cpu-scalar" => (Backends.Oracle, DType.F32),      // the scalar definitions, in the training type
        "cpu-scalar-f64" => (Backends.Oracle, DType.F64),  // the oracle every other conformance test trusts
        _ => (Backends.Subjects.Single(s => s.Name == subject).Backend, DType.F32),
    };

    [Theory]
    [MemberData(nameof(Subjects))]
    public void LogitsLossesAndGradientsMatchPyTorch(string subject)
    {
        var (backend, dtype) = Open(subject);
        var mismatches = Check(Fixture.Value, Execute(backend, dtype, Fixture.Value), dtype == DType.F64 ? F64 : F32, forwardOnly: false, out var report);
        output.WriteLine(report);
        if (backend is Llm.Vulkan.VulkanBackend vk) Vulkan.VulkanTestDevice.AssertClean(vk);
        Assert.True(mismatches.Count == 0, $"{subject} differs from PyTorch:\n{string.Join("\n", mismatches)}");
    }

    /// <summary>The harness's own test: a GeLU whose cubic coefficient is 0.0447 (every other op the fast CPU
    /// backend's) must fail the fixture's forward check, and the same backend without the fault must pass.</summary>
    [Fact]
    public void AWrongGeluConstantIsCaught()
    {
        var wrong = Check(Fixture.Value, Execute(new FaultyBackend(Fault.WrongGeluConstant), DType.F32, Fixture.Value), F32, forwardOnly: true, out var report);
        output.WriteLine(report);
        Assert.True(wrong.Count > 0, "GeLU with 0.0447 instead of 0.044715 passed the PyTorch fixture");
        Assert.Empty(Check(Fixture.Value, Execute(new FaultyBackend(Fault.None), DType.F32, Fixture.Value), F32, forwardOnly: false, out _));
    }

    // ---- the fixture ------------------------------------------------------------------------------------------------

    private sealed record FixtureData(Gpt2Config Config, int Batch, int Time, int Steps, OptimizerOptions Options,
        int[][] Tokens, int[][] Targets, Func<string, double[]> Read, IReadOnlyList<ParameterSpec> Specs);

    private static readonly Lazy<FixtureData> Fixture = new(LoadFixture);

    private static string FixturePath => Path.Combine(AppContext.BaseDirectory, "Fixtures", "torch", "gpt2_tiny.safetensors");

    private static FixtureData LoadFixture()
    {
        using var file = SafeTensorsFile.Read(FixturePath);
        var meta = file.Metadata;
        int Int(string key) => int.Parse(meta[key], System.Globalization.CultureInfo.InvariantCulture);
        float Float(string key) => float.Parse(meta[key], System.Globalization.CultureInfo.InvariantCulture);
        var config = new Gpt2Config
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
        var model = new Gpt2(backend, f.Config, dtype);
        foreach (var p in model.Parameters.All) backend.UploadDoubles(f.Read("weights." + p.Name), p.Value);

        double[] logits, losses;
        using (var tape = new Tape(backend))
        {
            var ids = tape.Temp(DType.I32, [f.Batch, f.Time]);
            var tgt = tape.Temp(DType.I32, [f.Batch, f.Time]);
            backend.Upload<int>(f.Tokens[0], ids);
            backend.Upload<int>(f.Targets[0], tgt);
            var logitsVar = model.Forward(tape, ids);                    // [B, T, V]
            var lossesVar = tape.CrossEntropy(logitsVar, tgt);           // [B*T]
            int counted = f.Targets[0].Count(t => t != Trainer.IgnoreIndex);
            model.Parameters.ZeroGrad();
            var dLosses = tape.Temp(dtype, lossesVar.Shape);
            backend.Fill(dLosses, 1.0 / counted);                        // d(mean)/d(loss_n)
            tape.Backward(lossesVar, dLosses);
            logits = Download(backend, logitsVar.Value);
            losses = Download(backend, lossesVar.Value);
        }
        double loss = losses.Sum() / f.Targets[0].Count(t => t != Trainer.IgnoreIndex);
        var grads = model.Parameters.All.ToDictionary(p => p.Name, p => Download(backend, p.Grad));

        var trainer = new Trainer(model, f.Options, totalSteps: f.Steps);
        var steps = Enumerable.Range(0, f.Steps).Select(s => trainer.Step([(f.Tokens[s], f.Targets[s])], f.Batch, f.Time)).ToList();
        return new(logits, losses, loss, grads, steps.Select(s => s.GradientNorm).ToArray(), steps.Select(s => s.Loss).ToArray(),
            model.Parameters.All.ToDictionary(p => p.Name, p => Download(backend, p.Value)),
            model.Parameters.All.ToDictionary(p => p.Name, p => Download(backend, trainer.Optimizer.MOf(p))),
            model.Parameters.All.ToDictionary(p => p.Name, p => Download(backend, trainer.Optimizer.VOf(p))));
    }

    private static double[] Download(IBackend backend, Tensor t)
    {
        var wide = new double[t.Length];
        if (t.DType == DType.F64) { backend.Download<double>(t, wide); return wide; }
        var narrow = new float[t.Length];
        backend.Download<float>(t, narrow);
        for (int i = 0; i < narrow.Length; i++) wide[i] = narrow[i];
        return wide;
    }

    // ---- comparing --------------------------------------------------------------------------------------------------

    /// <summary>Every element of every tensor against the fixture; returns one line per failing tensor (its worst
    /// element, index and both values) and, in <paramref name="report"/>, each tensor's worst |a − b| and its ratio to
    /// the bound.</summary>
    private static List<string> Check(FixtureData f, Run run, Bounds bounds, bool forwardOnly, out string report)
    {
        var failures = new List<string>();
        var lines = new List<string>();
        var cfg = f.Config;
        void One(string name, int[] shape, double[] actual, double[] expected, double rtol)
        {
            if (actual.Length != expected.Length) { failures.Add($"{name}: {actual.Length} elements, PyTorch {expected.Length}"); return; }
            double rms = Math.Sqrt(expected.Sum(x => x * x) / Math.Max(1, expected.Length));
            int bad = 0, worst = 0;
            double worstRatio = -1, worstErr = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                double err = Math.Abs(actual[i] - expected[i]), bound = rtol * (Math.Abs(expected[i]) + rms);
                double ratio = bound > 0 ? err / bound : err == 0 ? 0 : double.PositiveInfinity;
                if (!(err <= bound)) bad++;  // NaN fails too
                if (!(ratio <= worstRatio)) { worstRatio = ratio; worst = i; worstErr = err; }
            }
            if (name == "logits" || name == "losses") { var ex = expected; var ac = actual; lines.Add($"DIAG {name} max err/rms {Enumerable.Range(0, ex.Length).Max(i => Math.Abs(ac[i]-ex[i]))/rms:E3} rms err/rms {Math.Sqrt(Enumerable.Range(0, ex.Length).Sum(i => (ac[i]-ex[i])*(ac[i]-ex[i]))/ex.Length)/rms:E3}"); }
            lines.Add($"  {name,-34} worst |a-b| {worstErr:E2} = {worstRatio:F3} of bound (rtol {rtol:E0}, rms {rms:E2})");
            if (bad > 0)
                failures.Add($"{name}{Index(worst, shape)}: {actual[worst]:R} vs PyTorch {expected[worst]:R}, |a-b| {worstErr:E3} > " +
                    $"{rtol:E0}·(|b| + rms {rms:E2}); {bad} of {expected.Length} elements outside");
        }
        One("logits", [f.Batch, f.Time, cfg.VocabSize], run.Logits, f.Read("logits"), bounds.Logits);
        One("losses", [f.Batch, f.Time], run.Losses, f.Read("losses"), bounds.Losses);
        One("loss", [1], [run.Loss], f.Read("loss"), bounds.Losses);
        if (!forwardOnly)
        {
            foreach (var s in f.Specs) One("grads." + s.Name, s.Shape, run.Grads[s.Name], f.Read("grads." + s.Name), bounds.Grads);
            One("grad_norms", [f.Steps], run.GradNorms, f.Read("grad_norms"), bounds.Norms);
            One("step_losses", [f.Steps], run.StepLosses, f.Read("step_losses"), bounds.Losses);
            foreach (var s in f.Specs)
            {
                One("step3.weights." + s.Name, s.Shape, run.Weights[s.Name], f.Read("step3.weights." + s.Name), bounds.Weights);
                One("step3.m." + s.Name, s.Shape, run.M[s.Name], f.Read("step3.m." + s.Name), bounds.M);
                One("step3.v." + s.Name, s.Shape, run.V[s.Name], f.Read("step3.v." + s.Name), bounds.V);
            }
        }
        report = string.Join("\n", lines);
        return failures;
    }

    /// <summary>A flat index as [i, j, ..] in the tensor's shape.</summary>
    private static string Index(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--) { idx[d] = flat % shape[d]; flat /= shape[d]; }
        return "[" + string.Join(", ", idx) + "]";
    }
}
