using Llm.Checks;
using Llm.Conformance.Harness;
using Llm.Cpu;
using Llm.IO;
using Llm.Models;
using Llm.Tensors;
using Llm.Text;
using Llm.Training;
using Xunit;

namespace Llm.Conformance.Training;

/// <summary>Runs that cannot clobber or lie: the non-finite guard, resume in its own folder with its own options,
/// no silent overwrite, pruning, and a data order that the saved state really drives.</summary>
public sealed class RunTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "llm-run-" + Guid.NewGuid().ToString("N")[..8]);
    public RunTests() => Directory.CreateDirectory(_dir);
    public void Dispose() { if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true); }

    private string Dir(string name) => Path.Combine(_dir, name);

    private TrainOptions Micro(string name, int steps = 4) => new()
    {
        Preset = "micro", Steps = steps, Batch = 2, Seq = 16, EvalEvery = 2, EvalBatches = 1, CheckpointEvery = 2, Seed = 3,
        Out = Dir(name), Optimizer = new OptimizerOptions { WarmupSteps = 1 },
    };

    // ---- the non-finite guard ------------------------------------------------------------------------------------

    [Fact]
    public void A_non_finite_gradient_norm_skips_the_step_and_leaves_the_weights()
    {
        var backend = new FaultyBackend(Fault.None) { NonFiniteSumOfSquares = call => call == 3 };  // the 3rd step's norm
        var model = new Decoder(backend, DecoderConfig.Micro);
        model.InitializeWeights(1);
        var trainer = new Trainer(model, new OptimizerOptions { WarmupSteps = 1 }, totalSteps: 5);
        var tokens = new ByteTokenizer().Encode(Corpus.PrideAndPrejudice[..100]);
        (int[], int[]) batch = (tokens[..32], tokens[1..33]);
        trainer.Step([batch], 2, 16);
        trainer.Step([batch], 2, 16);
        var before = model.Parameters.DownloadValues();
        var skipped = trainer.Step([batch], 2, 16);
        Assert.True(skipped.Skipped);
        Assert.True(double.IsNaN(skipped.GradientNorm));
        Assert.Equal(before, model.Parameters.DownloadValues());   // bit for bit: no update, no NaN
        var next = trainer.Step([batch], 2, 16);
        Assert.False(next.Skipped);
        Assert.Equal((4, 3, 1, 0), (trainer.CompletedSteps, trainer.Optimizer.Step, trainer.SkippedSteps, trainer.ConsecutiveSkips));
        Assert.Equal(trainer.Schedule.At(3), next.LearningRate);   // skipped steps still count for the schedule
        Assert.All(model.Parameters.DownloadValues(), w => Assert.True(float.IsFinite(w)));
    }

    [Fact]
    public void Many_non_finite_steps_in_a_row_stop_the_run_with_the_metrics_written()
    {
        var backend = new FaultyBackend(Fault.None) { NonFiniteSumOfSquares = call => call >= 3 };  // from step 3 on
        var run = TrainingRun.Start(backend, Micro("nan", steps: 20) with { MaxConsecutiveSkips = 3 });
        var events = new List<TrainingEvent>();
        var e = Assert.Throws<TrainingDivergedException>(() => run.Run(events.Add));
        Assert.Contains("3 steps in a row (the last: step 5)", e.Message);
        Assert.Contains("step_000004", e.Message);  // the last checkpoint: step 4 was skipped, its weights are step 2's
        var rows = TrainingRun.ReadMetrics(Dir("nan"));
        Assert.Equal([1, 2, 3, 4, 5], rows.Select(r => r.Step));
        Assert.Equal([false, false, true, true, true], rows.Select(r => r.Skipped));
        Assert.Equal(3, events.OfType<StepEvent>().Last().SkippedSteps);
        var saved = Checkpoint.LoadModel(Dir("nan"), new CpuBackend());
        Assert.All(saved.Parameters.DownloadValues(), w => Assert.True(float.IsFinite(w)));
        Assert.Equal("step_000004", File.ReadAllText(Path.Combine(Dir("nan"), "latest")).Trim());
    }

    // ---- resume -------------------------------------------------------------------------------------------------

    /// <summary>Trains the first half of <paramref name="options"/> and stops after its checkpoint.</summary>
    private static TrainingRun Half(IBackend backend, TrainOptions options)
    {
        var cts = new CancellationTokenSource();
        var run = TrainingRun.Start(backend, options);
        run.Run(e => { if (e is CheckpointEvent { Step: var s } && s == options.Steps / 2) cts.Cancel(); }, cts.Token);
        return run;
    }

    [Fact]
    public void Resume_continues_in_the_folder_it_resumes()
    {
        Half(new CpuBackend(), Micro("a"));
        // the run folder is moved: the checkpoint still names the old --out, the resumed run must write here
        Directory.Move(Dir("a"), Dir("moved"));
        var fromRun = TrainingRun.Resume(new CpuBackend(), Dir("moved"));
        Assert.Equal(Path.GetFullPath(Dir("moved")), fromRun.Options.Out);
        var fromStep = TrainingRun.Resume(new CpuBackend(), Path.Combine(Dir("moved"), "step_000002"));
        Assert.Equal(Path.GetFullPath(Dir("moved")), fromStep.Options.Out);
        fromStep.Run();
        Assert.Equal("step_000004", File.ReadAllText(Path.Combine(Dir("moved"), "latest")).Trim());
        Assert.False(Directory.Exists(Dir("a")));
        Assert.Equal([1, 2, 3, 4], TrainingRun.ReadMetrics(Dir("moved")).Select(r => r.Step));
    }

    [Theory]
    [InlineData("--batch")]
    [InlineData("--seq")]
    [InlineData("--lr")]
    [InlineData("--preset")]
    [InlineData("--tokenizer")]
    [InlineData("--data")]
    [InlineData("--warmup")]
    [InlineData("--accumulate")]
    [InlineData("--grad-clip")]
    [InlineData("--weight-decay")]
    [InlineData("--seed")]
    [InlineData("--out")]
    public void Resume_refuses_options_that_contradict_the_checkpoint(string option)
    {
        Half(new CpuBackend(), Micro("c"));
        File.WriteAllText(Dir("other.txt"), Corpus.PrideAndPrejudice[..5000]);
        var given = option switch
        {
            "--batch" => new ResumeOptions { Batch = 3 },
            "--seq" => new ResumeOptions { Seq = 8 },
            "--lr" => new ResumeOptions { LearningRate = 1e-4f },
            "--preset" => new ResumeOptions { Preset = "tiny" },
            "--tokenizer" => new ResumeOptions { Tokenizer = "gpt2" },
            "--data" => new ResumeOptions { DataPath = Dir("other.txt") },
            "--warmup" => new ResumeOptions { WarmupSteps = 7 },
            "--accumulate" => new ResumeOptions { AccumulationSteps = 2 },
            "--grad-clip" => new ResumeOptions { GradientClip = 0.5f },
            "--weight-decay" => new ResumeOptions { WeightDecay = 0 },
            "--seed" => new ResumeOptions { Seed = 4 },
            _ => new ResumeOptions { Out = Dir("elsewhere") },
        };
        var e = Assert.Throws<ArgumentException>(() => TrainingRun.Resume(new CpuBackend(), Dir("c"), given));
        Assert.StartsWith(option + " ", e.Message);
        // the same values as the checkpoint's are no contradiction
        var same = new ResumeOptions { Batch = 2, Seq = 16, Preset = "micro", Tokenizer = "byte", Seed = 3, Out = Dir("c"), WarmupSteps = 1 };
        Assert.Equal(2, TrainingRun.Resume(new CpuBackend(), Dir("c"), same).Trainer.CompletedSteps);
    }

    [Fact]
    public void Resume_says_what_it_changes_and_knows_when_there_is_nothing_to_do()
    {
        Half(new CpuBackend(), Micro("s"));
        var said = new List<string>();
        var longer = TrainingRun.Resume(new CpuBackend(), Dir("s"), new ResumeOptions { Steps = 6, EvalEvery = 3, KeepLast = 1 }, said.Add);
        Assert.Equal(["--steps 6 (the run had 4)", "--eval-every 3 (the run had 2)", "--keep-last 1 (the run had 3)"], said);
        Assert.Equal((6, 3, 1), (longer.Options.Steps, longer.Options.EvalEvery, longer.Options.KeepLast));
        Assert.False(longer.IsComplete);
        var shorter = TrainingRun.Resume(new CpuBackend(), Dir("s"), new ResumeOptions { Steps = 2 });
        Assert.True(shorter.IsComplete);
    }

    [Fact]
    public void Resume_refuses_a_changed_data_file()
    {
        File.WriteAllText(Dir("data.txt"), Corpus.PrideAndPrejudice[..20000]);
        Half(new CpuBackend(), Micro("d") with { DataPath = Dir("data.txt") });
        File.AppendAllText(Dir("data.txt"), "An extra line.");
        var e = Assert.Throws<InvalidDataException>(() => TrainingRun.Resume(new CpuBackend(), Dir("d")));
        Assert.Contains("changed since", e.Message);
        Assert.Contains("data.txt", e.Message);
    }

    [SkippableFact]
    public void Resume_on_Vulkan_reproduces_the_uninterrupted_Vulkan_run()
    {
        using var vk = Vulkan.VulkanTestDevice.Open();
        var whole = TrainingRun.Start(vk, Micro("vk-whole"));
        whole.Run();
        Half(vk, Micro("vk-split"));
        var resumed = TrainingRun.Resume(vk, Dir("vk-split"));
        resumed.Run();
        var a = TrainingRun.ReadMetrics(Dir("vk-whole"));
        var b = TrainingRun.ReadMetrics(Dir("vk-split"));
        Assert.Equal(a.Select(r => (r.Step, r.TrainLoss, r.ValidationLoss)), b.Select(r => (r.Step, r.TrainLoss, r.ValidationLoss)));
        Assert.Equal(whole.Model.Parameters.DownloadValues(), resumed.Model.Parameters.DownloadValues());
        Vulkan.VulkanTestDevice.AssertClean(vk);
    }

    // ---- the run folder -----------------------------------------------------------------------------------------

    [Fact]
    public void A_fresh_run_refuses_a_folder_that_holds_another_unless_told_to_overwrite()
    {
        TrainingRun.Start(new CpuBackend(), Micro("o")).Run();
        File.WriteAllText(Path.Combine(Dir("o"), "notes.txt"), "mine");
        var e = Assert.Throws<ArgumentException>(() => TrainingRun.Start(new CpuBackend(), Micro("o", steps: 2)));
        Assert.Contains("already holds a run", e.Message);
        Assert.Contains("--resume", e.Message);
        Assert.Contains("--overwrite", e.Message);
        Assert.Equal("step_000004", File.ReadAllText(Path.Combine(Dir("o"), "latest")).Trim());  // untouched

        TrainingRun.Start(new CpuBackend(), Micro("o", steps: 2), overwrite: true).Run();
        Assert.Equal(["latest", "metrics.csv", "notes.txt", "step_000002"], Directory.GetFileSystemEntries(Dir("o")).Select(Path.GetFileName).Order());
        Assert.Equal([1, 2], TrainingRun.ReadMetrics(Dir("o")).Select(r => r.Step));
    }

    [Fact]
    public void An_unwritable_run_folder_is_found_before_training()
    {
        File.WriteAllText(Dir("a-file"), "");
        var e = Assert.Throws<IOException>(() => TrainingRun.Start(new CpuBackend(), Micro("a-file/run")));
        Assert.Contains("a-file", e.Message);
        var asFolder = Assert.Throws<IOException>(() => TrainingRun.Start(new CpuBackend(), Micro("a-file")));
        Assert.Contains("is a file", asFolder.Message);
    }

    [Fact]
    public void Checkpoints_are_pruned_to_the_last_few_and_the_best()
    {
        // Trained on 'a's and validated on 'b's: the validation loss only gets worse, so the best checkpoint is the first.
        File.WriteAllText(Dir("ab.txt"), new string('a', 900) + new string('b', 100));
        var run = TrainingRun.Start(new CpuBackend(), Micro("p", steps: 10) with { DataPath = Dir("ab.txt"), KeepLast = 2, Optimizer = new() { WarmupSteps = 1, LearningRate = 1e-2f } });
        run.Run();
        Assert.Equal((2L, true), (run.BestCheckpoint()!.Value.Step, run.Metrics.Where(r => r.Step % 2 == 0).All(r => !double.IsNaN(r.ValidationLoss))));
        Assert.Equal(["step_000002", "step_000008", "step_000010"],
            RunFolder.StepFolders(Dir("p")).Select(f => Path.GetFileName(f.Folder)));

        var all = TrainingRun.Start(new CpuBackend(), Micro("q", steps: 6) with { KeepLast = 0 });
        all.Run();
        Assert.Equal(3, RunFolder.StepFolders(Dir("q")).Count);
    }

    // ---- the data order ------------------------------------------------------------------------------------------

    [Fact]
    public void Shuffled_epochs_serve_every_row_once_and_restore_from_the_saved_state()
    {
        var tokens = Enumerable.Range(0, 1000).ToArray();   // token = position: a row is known by its first token
        var data = new TokenDataset(tokens, 3, 10, validationFraction: 0.1, shuffleSeed: 9);
        int perEpoch = data.TrainBatchesPerEpoch;
        var firstEpoch = Enumerable.Range(0, perEpoch).SelectMany(_ => Rows(data.NextTrainBatch())).ToList();
        Assert.Equal(firstEpoch.Count, firstEpoch.Distinct().Count());     // no row twice
        Assert.True(firstEpoch.Count >= (900 - 10) / 10 - 2, $"{firstEpoch.Count} rows of an epoch");
        Assert.NotEqual(firstEpoch.Order(), firstEpoch);                     // not in order
        foreach (var batch in Enumerable.Range(0, 3).Select(_ => data.NextTrainBatch()))
            for (int i = 0; i < batch.Inputs.Length; i++) Assert.Equal(batch.Inputs[i] + 1, batch.Targets[i]);

        (long Position, ulong Order) saved = (data.Position, data.OrderState);
        var expected = Enumerable.Range(0, 2 * perEpoch).Select(_ => data.NextTrainBatch().Inputs).ToList();  // crosses an epoch
        var restored = new TokenDataset(tokens, 3, 10, validationFraction: 0.1, shuffleSeed: 9);
        restored.Restore(saved.Position, saved.Order);
        Assert.Equal(expected, Enumerable.Range(0, 2 * perEpoch).Select(_ => restored.NextTrainBatch().Inputs));

        var otherSeed = new TokenDataset(tokens, 3, 10, validationFraction: 0.1, shuffleSeed: 10);
        Assert.NotEqual(firstEpoch, Enumerable.Range(0, perEpoch).SelectMany(_ => Rows(otherSeed.NextTrainBatch())));

        static IEnumerable<int> Rows(TokenBatch b) => Enumerable.Range(0, b.B).Select(r => b.Inputs[r * b.T]);
    }
}
