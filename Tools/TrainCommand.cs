using System.CommandLine;
using Llm.Training;

namespace Llm.Tools;

/// <summary>`train`: the main job. Defaults train the tiny GPT-2 on the embedded Pride and Prejudice in a few minutes.</summary>
internal static class TrainCommand
{
    public static Command Create(TextWriter stdout)
    {
        var d = new TrainOptions();
        var preset = Cli.Opt("--preset", "model preset: tiny, micro or gpt2", d.Preset);
        var tokenizer = Cli.Opt("--tokenizer", "byte (vocab 256) or gpt2 (BPE, vocab 50257)", d.Tokenizer);
        var data = Cli.Opt<string?>("--data", "UTF-8 text file to train on (default: the embedded Pride and Prejudice)");
        var steps = Cli.Opt("--steps", "optimizer steps", d.Steps);
        var batch = Cli.Opt("--batch", "B sequences per micro-batch", d.Batch);
        var seq = Cli.Opt("--seq", "T tokens per sequence", d.Seq);
        var lr = Cli.Opt("--lr", "peak learning rate (warm-up, then cosine decay to 10 %)", d.Optimizer.LearningRate);
        var warmup = Cli.Opt("--warmup", "linear warm-up steps", d.Optimizer.WarmupSteps);
        var accumulate = Cli.Opt("--accumulate", "micro-batches per step (gradient accumulation)", d.Optimizer.AccumulationSteps);
        var clip = Cli.Opt("--grad-clip", "clip the global gradient norm at this value (0: off)", d.Optimizer.GradientClip);
        var decay = Cli.Opt("--weight-decay", "AdamW weight decay on matrices", d.Optimizer.WeightDecay);
        var evalEvery = Cli.Opt("--eval-every", "steps between validation passes", d.EvalEvery);
        var evalBatches = Cli.Opt("--eval-batches", "validation batches per pass", d.EvalBatches);
        var ckptEvery = Cli.Opt("--checkpoint-every", "steps between checkpoints", d.CheckpointEvery);
        var seed = Cli.Opt("--seed", "seed of the weight initialisation", d.Seed);
        var output = Cli.Opt("--out", "run folder for checkpoints, metrics.csv and loss.png", d.Out);
        var resume = new Option<string?>("--resume")
        {
            Description = "continue from a checkpoint (a step folder or a run folder); without a value, from --out",
            Arity = ArgumentArity.ZeroOrOne,
        };
        var cmd = new Command("train", "Train a GPT-2 on a text corpus, with validation, checkpoints and a loss curve.")
        { preset, tokenizer, data, steps, batch, seq, lr, warmup, accumulate, clip, decay, evalEvery, evalBatches, ckptEvery, seed, output, resume };
        cmd.SetAction(p =>
        {
            using var backend = Cli.CreateBackend(p, stdout);
            TrainingRun run;
            if (p.GetResult(resume) is not null)
            {
                string from = p.GetValue(resume) ?? p.GetValue(output)!;
                int? newSteps = p.GetResult(steps) is { Implicit: false } ? p.GetValue(steps) : null;
                string? newOut = p.GetResult(output) is { Implicit: false } ? p.GetValue(output) : null;
                run = TrainingRun.Resume(backend, from, newOut, newSteps);
                stdout.WriteLine($"resuming {from} at step {run.Trainer.Optimizer.Step} of {run.Options.Steps}");
            }
            else
            {
                run = TrainingRun.Start(backend, new TrainOptions
                {
                    Preset = p.GetValue(preset)!, Tokenizer = p.GetValue(tokenizer)!, DataPath = p.GetValue(data),
                    Steps = p.GetValue(steps), Batch = p.GetValue(batch), Seq = p.GetValue(seq),
                    EvalEvery = p.GetValue(evalEvery), EvalBatches = p.GetValue(evalBatches), CheckpointEvery = p.GetValue(ckptEvery),
                    Seed = p.GetValue(seed), Out = p.GetValue(output)!,
                    Optimizer = new OptimizerOptions
                    {
                        LearningRate = p.GetValue(lr), WarmupSteps = p.GetValue(warmup), AccumulationSteps = p.GetValue(accumulate),
                        GradientClip = p.GetValue(clip), WeightDecay = p.GetValue(decay),
                    },
                });
            }
            return TrainProgress.Run(run, backend.Name, stdout);
        });
        return cmd;
    }
}
