using Llm.Autograd;
using Llm.Conformance.Harness;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>Frozen parameters: no gradient, no optimizer state, no backward work, and the trainable ones train exactly
/// as they would in the same model with nothing frozen.</summary>
public sealed class FrozenParameterTests
{
    private static readonly DecoderConfig Config = DecoderConfig.Micro;
    private const int B = 2, T = 16;

    /// <summary>Only the last block's FFN and the final norm train, as a fine-tuning adapter would.</summary>
    private static bool AllButLastFfn(string name) => !name.StartsWith("h.1.mlp.") && !name.StartsWith("ln_f.");

    private static Decoder Model(IBackend backend, Func<string, bool>? frozen)
    {
        var model = new Decoder(backend, Config, frozen: frozen);
        model.InitializeWeights(11);
        return model;
    }

    private static (int[] Inputs, int[] Targets) Batch()
    {
        var tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice[..(B * T + 1)]);
        return (tokens[..(B * T)], tokens[1..(B * T + 1)]);
    }

    private static float[] Get(IBackend backend, Tensor t)
    {
        var host = new float[t.Length];
        backend.DownloadFloats(t, host);
        return host;
    }

    private static Trainer TrainerOf(Decoder model) =>
        new(model, new OptimizerOptions { LearningRate = 1e-2f, WarmupSteps = 1 }, totalSteps: 10);

    [Fact]
    public void FrozenValuesStayBitIdenticalWhileTheOthersTrain()
    {
        var backend = new CpuBackend();
        var model = Model(backend, AllButLastFfn);
        var before = model.Parameters.All.ToDictionary(p => p.Name, p => Get(backend, p.Value));
        var trainer = TrainerOf(model);
        double first = double.NaN, last = double.NaN;
        for (int step = 0; step < 5; step++)
        {
            last = trainer.Step([Batch()], B, T).Loss;
            if (step == 0) first = last;
        }
        Assert.True(last < first, $"the trainable FFN should lower the loss: {first} → {last}");
        foreach (var p in model.Parameters.All)
        {
            var now = Get(backend, p.Value);
            if (p.Frozen) Assert.Equal(before[p.Name], now);
            else Assert.NotEqual(before[p.Name], now);
        }
        Assert.Contains(model.Parameters.All, p => p.Frozen);
        Assert.All(model.Parameters.Trainable, p => Assert.False(AllButLastFfn(p.Name)));
    }

    [Fact]
    public void TrainableGradientsEqualThoseOfTheModelWithNothingFrozen()
    {
        var backend = new CpuBackend();
        var frozen = Model(backend, AllButLastFfn);
        var whole = Model(backend, null);
        Assert.Equal(whole.Parameters.DownloadValues(), frozen.Parameters.DownloadValues());
        var (inputs, targets) = Batch();
        foreach (var model in new[] { frozen, whole })
        {
            using var tape = new Tape(backend);
            model.Parameters.ZeroGrad();
            var ids = tape.Temp(DType.I32, [B, T]);
            var tgt = tape.Temp(DType.I32, [B, T]);
            backend.Upload<int>(inputs, ids);
            backend.Upload<int>(targets, tgt);
            var losses = tape.CrossEntropy(model.Forward(tape, ids), tgt);
            var dLosses = tape.Temp(DType.F32, losses.Shape);
            backend.Fill(dLosses, 1.0 / losses.Value.Length);
            tape.Backward(losses, dLosses);
        }
        foreach (var p in frozen.Parameters.Trainable)
            Assert.Equal(Get(backend, whole.Parameters[p.Name].Grad!), Get(backend, p.Grad!));
    }

    [Fact]
    public void FrozenParametersHaveNoGradientOrOptimizerMemory()
    {
        var backend = new CpuBackend();
        var model = Model(backend, AllButLastFfn);
        var set = model.Parameters;
        long trainable = set.All.Where(p => !AllButLastFfn(p.Name)).Sum(p => (long)p.Value.Length);
        Assert.Equal(trainable, set.TrainableCount);
        Assert.True(trainable < set.Count / 4, $"{trainable} of {set.Count}: the test should freeze most of the model");
        var arena = Assert.Single(set.Arenas);
        Assert.Equal(set.Count, arena.Values.Length);
        Assert.Equal(trainable, arena.Grads!.Length);
        Assert.All(set.All, p => Assert.Equal(AllButLastFfn(p.Name), p.Grad is null));
        // trainable decayed, trainable undecayed, then frozen (in declaration order)
        Assert.Equal(set.Layout.OrderBy(p => p.Frozen).ThenBy(p => !p.Frozen && !p.Decay).Select(p => p.Name), set.Layout.Select(p => p.Name));
        Assert.Equal(trainable, set.DecayRuns().Sum(r => (long)r.Length));

        var adam = TrainerOf(model).Optimizer;
        Assert.Equal(trainable, adam.M.Single()!.Length);
        Assert.Equal(trainable, adam.V.Single()!.Length);
        Assert.Throws<ArgumentException>(() => adam.MOf(set["wte.weight"]));
    }

    [Fact]
    public void AnArenaOfFrozenParametersOnlyHasNoGradients()
    {
        var backend = new CpuBackend();
        var set = new ParameterSet(backend, [new("a.w", [2, 2], true), new("a.b", [2], false), new("b.w", [3, 2], true)],
            maxArenaElements: 6, frozen: name => name.StartsWith("b."));   // a.* in arena 0, b.* in arena 1
        Assert.Equal(6, set.Arenas[0].Trainable);
        Assert.Null(set.Arenas[1].Grads);
        var adam = new AdamW(set);
        Assert.Null(adam.M[1]);
        backend.Upload<float>([3, 0, 0, 0, 4, 0], set.Arenas[0].Grads!);
        Assert.Equal(5.0, AdamW.ClipGradientNorm(set, 0), 6);
        var frozenBefore = Get(backend, set["b.w"].Value);
        set.ZeroGrad();
        adam.Update(1e-2f);
        Assert.Equal(frozenBefore, Get(backend, set["b.w"].Value));
    }

    [Fact]
    public void TheTapeRecordsNoBackwardForFrozenWeights()
    {
        var backend = new FaultyBackend(Fault.None);
        // only the final norm trains: its LayerNorm, the head's MatMul and the cross-entropy are all that need backward
        var model = Model(backend, name => !name.StartsWith("ln_f."));
        var trainer = TrainerOf(model);
        using var tape = new Tape(backend);
        var (inputs, targets) = Batch();
        var ids = tape.Temp(DType.I32, [B, T]);
        var tgt = tape.Temp(DType.I32, [B, T]);
        backend.Upload<int>(inputs, ids);
        backend.Upload<int>(targets, tgt);
        var logits = model.Forward(tape, ids);
        Assert.Equal(2, tape.RecordedOps);
        var losses = tape.CrossEntropy(logits, tgt);
        Assert.Equal(3, tape.RecordedOps);
        tape.Reset();

        trainer.Step([Batch()], B, T);
        Assert.Equal(0, backend.EmbeddingBackwards);
        Assert.Equal(2, backend.LayerNormParameterGradients);   // ln_f's gain and bias; no block's norms

        var everything = Model(backend, null);
        new Trainer(everything, new OptimizerOptions(), totalSteps: 1).Step([Batch()], B, T);
        Assert.Equal(2, backend.EmbeddingBackwards);             // wte and wpe, once each
    }

    [Fact]
    public void FreezingEverythingIsRefused()
    {
        var model = Model(new CpuBackend(), _ => true);
        Assert.Null(model.Parameters.Arenas.Single().Grads);
        var error = Assert.Throws<ArgumentException>(() => TrainerOf(model));
        Assert.Contains("nothing to train", error.Message);
        using var tape = new Tape(model.Backend);
        var ids = tape.Temp(DType.I32, [1, 2]);
        model.Backend.Upload<int>([0, 0], ids);
        var logits = model.Forward(tape, ids);
        Assert.Equal(0, tape.RecordedOps);
        Assert.Throws<InvalidOperationException>(() => tape.Backward(logits, logits.Value));
    }

    /// <summary>The checkpoint holds every parameter; the optimizer state only the trainable ones' moments; a run
    /// resumed from them continues bit for bit.</summary>
    [Fact]
    public void ACheckpointedFrozenRunResumesBitForBit()
    {
        string root = Path.Combine(Path.GetTempPath(), "llm-frozen-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var backend = new CpuBackend();
            var whole = TrainerOf(Model(backend, AllButLastFfn));
            for (int i = 0; i < 4; i++) whole.Step([Batch()], B, T);

            var first = TrainerOf(Model(backend, AllButLastFfn));
            for (int i = 0; i < 2; i++) first.Step([Batch()], B, T);
            var adam = first.Optimizer;
            var set = first.Model.Parameters;
            var state = new TrainingState(2, adam.Step, 0, 0, 0, double.NaN, null, "{}")
            {
                Tensors = [.. set.Trainable.Select(adam.MOf), .. set.Trainable.Select(adam.VOf)],
            };
            string folder = Checkpoint.Save(root, 2, new HfConfig(Config, "byte"), set, state);

            using (var file = SafeTensorsFile.Read(Path.Combine(folder, Checkpoint.ModelFile)))
                Assert.All(set.All, p => Assert.True(file.Contains(p.Name) || file.Contains(Checkpoint.HfPrefix + p.Name), p.Name));
            string statePath = Path.Combine(folder, Checkpoint.TrainingStateFile);
            var saved = TrainingState.TensorNames(statePath);
            Assert.Equal(2 * set.Trainable.Count, saved.Count);

            var (model, _) = Decoder.Load(folder, backend, AllButLastFfn);
            var resumed = TrainerOf(model);
            resumed.Optimizer.Step = (int)TrainingState.Read(statePath).OptimizerStep;
            resumed.CompletedSteps = 2;
            TrainingState.ReadTensors(statePath, [.. model.Parameters.Trainable.Select(resumed.Optimizer.MOf),
                .. model.Parameters.Trainable.Select(resumed.Optimizer.VOf)]);
            for (int i = 0; i < 2; i++) resumed.Step([Batch()], B, T);
            Assert.Equal(whole.Model.Parameters.DownloadValues(), model.Parameters.DownloadValues());
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
