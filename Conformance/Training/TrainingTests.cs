using Llm.Cpu;
using Llm.Models;
using Llm.Text;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>The training loop as a whole: it can learn, and an interrupted run resumes bit for bit.</summary>
public sealed class TrainingTests
{
    private static readonly DecoderConfig Small = new() { VocabSize = 256, ContextLength = 16, Layers = 2, Heads = 2, Channels = 32 };

    [Fact]
    public void TinyModelOverfitsOneBatch()
    {
        var model = new Decoder(new CpuBackend(), Small);
        model.InitializeWeights(7);
        var trainer = new Trainer(model, new OptimizerOptions { LearningRate = 3e-3f, WarmupSteps = 1, WeightDecay = 0 }, totalSteps: 1000);
        var tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice[..200]);
        int B = 2, T = 16;
        var inputs = tokens[..(B * T)];
        var targets = tokens[1..(B * T + 1)];
        double first = 0, loss = double.NaN;
        for (int step = 0; step < 300; step++)
        {
            loss = trainer.Step([(inputs, targets)], B, T).Loss;
            if (step == 0) first = loss;
            if (loss < 0.05) break;
        }
        Assert.True(first > 4.0, $"an untrained model should be near ln(256) = 5.5 nats, got {first}");
        Assert.True(loss < 0.1, $"the model failed to memorise one batch: loss {loss} after 300 steps (started at {first})");
    }

    /// <summary>Trains <paramref name="options"/> whole into root/whole, and into root/split stopped at the step-3
    /// checkpoint then resumed from it; asserts the two agree bit for bit (metrics and final weights). Returns the resumed run.</summary>
    private static TrainingRun AssertResumeRepeatsTheWholeRun(string root, TrainOptions options)
    {
        var whole = TrainingRun.Start(new CpuBackend(), options with { Out = Path.Combine(root, "whole") });
        whole.Run();

        var cts = new CancellationTokenSource();
        var first = TrainingRun.Start(new CpuBackend(), options with { Out = Path.Combine(root, "split") });
        first.Run(e => { if (e is CheckpointEvent { Step: 3 }) cts.Cancel(); }, cts.Token);
        Assert.Equal(3, first.Trainer.Optimizer.Step);

        var resumed = TrainingRun.Resume(new CpuBackend(), Path.Combine(root, "split"));
        Assert.Equal(3, resumed.Trainer.Optimizer.Step);
        resumed.Run();

        var a = TrainingRun.ReadMetrics(Path.Combine(root, "whole"));
        var b = TrainingRun.ReadMetrics(Path.Combine(root, "split"));
        Assert.Equal(a.Select(r => (r.Step, r.TrainLoss, r.ValidationLoss)), b.Select(r => (r.Step, r.TrainLoss, r.ValidationLoss)));
        Assert.True(whole.Model.Parameters.DownloadValues().AsSpan().SequenceEqual(resumed.Model.Parameters.DownloadValues()),
            "final weights differ between the resumed and the uninterrupted run");
        return resumed;
    }

    [Fact]
    public void ResumeReproducesTheUninterruptedRunBitForBit()
    {
        string root = Path.Combine(Path.GetTempPath(), "llm-resume-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var options = new TrainOptions
            {
                Preset = "micro", Steps = 6, Batch = 2, Seq = 16, EvalEvery = 3, EvalBatches = 2, CheckpointEvery = 3, Seed = 5,
                Optimizer = new OptimizerOptions { WarmupSteps = 2 },
            };
            var resumed = AssertResumeRepeatsTheWholeRun(root, options);
            Assert.Equal(6, TrainingRun.ReadMetrics(Path.Combine(root, "whole")).Count);
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>With every dropout on, a resumed run still repeats the uninterrupted one bit for bit (the masks come from
    /// the run's seed and the step, not from state that a checkpoint could lose), and dropout does change the run.</summary>
    [Fact]
    public void ResumeWithDropoutReproducesTheUninterruptedRunBitForBit()
    {
        string root = Path.Combine(Path.GetTempPath(), "llm-resume-dropout-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            Directory.CreateDirectory(root);
            string ConfigWith(float p, string name)
            {
                string path = Path.Combine(root, name + ".json");
                new Llm.IO.HfConfig(DecoderConfig.Micro with { EmbeddingDropout = p, ResidualDropout = p, AttentionDropout = p }, "byte").Save(path);
                return path;
            }
            var options = new TrainOptions
            {
                ConfigPath = ConfigWith(0.2f, "dropout"), Steps = 6, Batch = 2, Seq = 16, EvalEvery = 3, EvalBatches = 2, CheckpointEvery = 3, Seed = 5,
                Optimizer = new OptimizerOptions { WarmupSteps = 2 },
            };
            var resumed = AssertResumeRepeatsTheWholeRun(root, options);
            Assert.Equal(0.2f, ((Decoder)resumed.Model).Config.AttentionDropout);
            var plain = TrainingRun.Start(new CpuBackend(), options with { ConfigPath = ConfigWith(0f, "plain"), Out = Path.Combine(root, "plain") });
            plain.Run();

            var a = TrainingRun.ReadMetrics(Path.Combine(root, "whole"));
            var c = TrainingRun.ReadMetrics(Path.Combine(root, "plain"));
            Assert.NotEqual(a[1].TrainLoss, c[1].TrainLoss);   // step 2's loss: the weights differ after a dropped step 1
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void DefaultRunBeatsTheUnigramBaselineQuickly()
    {
        string root = Path.Combine(Path.GetTempPath(), "llm-default-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            // the `train` defaults (tiny preset, byte tokenizer, Pride and Prejudice), cut to 300 steps
            var run = TrainingRun.Start(new CpuBackend(), new TrainOptions { Steps = 300, EvalBatches = 8, Out = root });
            run.Run();
            double val = run.ValidationLoss(), unigram = run.Data.TrainUnigramEntropy;
            Assert.True(val < 0.85 * unigram, $"validation loss {val:F3} after 300 steps is not well below the unigram baseline {unigram:F3}");
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void ScheduleWarmsUpThenDecaysToTheFloor()
    {
        var s = new LearningRateSchedule(1e-3f, WarmupSteps: 10, TotalSteps: 110);
        Assert.Equal(1e-4f, s.At(0), 1e-9f);
        Assert.Equal(1e-3f, s.At(9), 1e-9f);
        Assert.Equal(1e-3f, s.At(10), 1e-9f);
        Assert.Equal(0.55e-3f, s.At(60), 1e-7f);   // halfway down the cosine: floor + (peak - floor)/2
        Assert.Equal(1e-4f, s.At(110), 1e-9f);
        for (int i = 11; i < 110; i++) Assert.True(s.At(i) <= s.At(i - 1), $"not monotone at step {i}");
    }

    [Fact]
    public void GradientClippingBoundsTheGlobalNorm()
    {
        var backend = new CpuBackend();
        var set = new ParameterSet(backend, [new("a", [3], false), new("b", [2, 2], true)]);
        backend.Upload<float>([3, 0, 0, 0, 4, 0, 0], set.Arenas.Single().Grads!);
        double norm = AdamW.ClipGradientNorm(set, 1.0);
        Assert.Equal(5.0, norm, 6);
        Assert.Equal(1.0, Math.Sqrt(backend.SumOfSquares(set.Arenas.Single().Grads!)), 5);
        var g = new float[7];
        backend.Download<float>(set.Arenas.Single().Grads!, g);
        Assert.Equal(0.6f, g[0], 6);
        Assert.Equal(0.8f, g[4], 6);
    }

    /// <summary>Checkpoints from before per-parameter moments hold one flat adam.m / adam.v in the parameters'
    /// declaration order; the arenas now keep each decay group together, a different order, so loading must copy
    /// each parameter's slice into its own moments, not the flat block as is.</summary>
    [Fact]
    public void FlatMomentsInDeclarationOrderLoadIntoEachParameter()
    {
        var backend = new CpuBackend();
        var model = new Decoder(backend, Small);
        var adam = new AdamW(model.Parameters);
        int total = (int)model.Parameters.Count;
        float[] m = [.. Enumerable.Range(0, total).Select(i => (float)i)], v = [.. m.Select(x => -x)];
        var flatM = backend.Allocate(Tensors.DType.F32, [total], "adam.m");
        var flatV = backend.Allocate(Tensors.DType.F32, [total], "adam.v");
        backend.Upload<float>(m, flatM);
        backend.Upload<float>(v, flatV);
        Assert.NotEqual(model.Parameters.All.Select(p => p.Name), model.Parameters.Layout.Select(p => p.Name)); // the orders differ
        adam.LoadDeclarationOrder(flatM, flatV);
        int offset = 0;
        foreach (var p in model.Parameters.All)
        {
            var gotM = new float[p.Value.Length];
            var gotV = new float[p.Value.Length];
            backend.Download<float>(adam.MOf(p), gotM);
            backend.Download<float>(adam.VOf(p), gotV);
            Assert.Equal(m.AsSpan(offset, gotM.Length).ToArray(), gotM);
            Assert.Equal(v.AsSpan(offset, gotV.Length).ToArray(), gotV);
            offset += gotM.Length;
        }
    }
}
